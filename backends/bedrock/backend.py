"""The bedrock backend's client: customization jobs through boto3 for every family, inference through each
family's runtime (Claude: the anthropic SDK; Nova and Llama: Bedrock's Converse API)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from fto.backends import aws_errors
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.bedrock import mapping
from fto.backends.bedrock.families import Family, family_of
from fto.orchestrator.data.stats import measure
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.secrets import redact
from fto.schemas import Completion, Conversation, JobEvent, JobSpec, Message, ProviderJob, ProviderUpdates, Record

T = TypeVar("T")


class BedrockOptions(BackendOptions):
    """The `bedrock` (or `anthropic`) section of a job file: base model, region, role, bucket and endpoints."""

    model: str = Field(
        default="anthropic.claude-3-haiku-20240307-v1:0:200k",
        description="Bedrock base model to customize: anthropic.claude-*, amazon.nova-*, meta.llama3-*",
    )
    region: str = Field(default="us-west-2", description="AWS region (Claude fine-tuning runs in us-west-2)")
    role_arn: str | None = Field(default=None, description="IAM role Bedrock assumes to read and write S3")
    s3_bucket: str | None = Field(default=None, description="bucket for training data and job output")
    s3_prefix: str = Field(default="fto", description="key prefix inside the bucket")
    grader_role_arn: str | None = Field(
        default=None, description="RFT: IAM role the grader's Lambda function runs as (lambda.amazonaws.com trusts it)"
    )
    early_stopping_threshold: float | None = Field(default=None, description="Bedrock: 0–0.1 (default 0.001)")
    early_stopping_patience: int | None = Field(default=None, description="Bedrock: 1–10 epochs (default 2)")
    learning_rate_warmup_steps: int | None = Field(default=None, description="Nova: 0–100 steps (default 10)")
    max_records: int | None = Field(
        default=None, gt=0, description="training + validation records (default: the family's AWS quota, raisable)"
    )
    inference_model: str | None = Field(
        default=None, description="provisioned throughput ARN to query the custom model (Bedrock requires one)"
    )
    base_inference_model: str | None = Field(
        default=None, description="model id or inference profile to query the base model on demand"
    )
    endpoint_url: str | None = Field(default=None, description="Bedrock and S3 endpoint (a VPC endpoint, or a test)")
    runtime_url: str | None = Field(default=None, description="Bedrock runtime endpoint for inference")
    anthropic_base_url: str | None = Field(default=None, description="Anthropic API endpoint, for claude-* models")
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(
        default=0, ge=0, description="the SDKs' own retries, on top of fto's (off: fto retries transient errors)"
    )
    min_poll_interval: float = Field(default=30.0, gt=0, description="seconds between polls while a job changes")
    max_poll_interval: float = Field(default=300.0, gt=0, description="seconds between polls while it does not")


class BedrockBackend(Backend[BedrockOptions]):
    """Claude, Nova and Llama fine-tuned by Amazon Bedrock model customization jobs, and queried on Bedrock."""

    requires = ("boto3", "anthropic")

    Options: ClassVar[type[BackendOptions]] = BedrockOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "rft"})  # RFT: Nova 2 Lite (provider.json's rft.models)
    max_concurrency: int = 4
    max_requests_per_second: float = 2.0

    def __init__(self, name: str, options: BedrockOptions):
        super().__init__(name, options)
        self.min_poll_interval, self.max_poll_interval = self.options.min_poll_interval, self.options.max_poll_interval
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_judge(cls, name: str, model: str, base_url: str | None) -> Backend[Any]:
        if not model.startswith(("anthropic.", "arn:")) and not os.environ.get("ANTHROPIC_API_KEY"):
            raise ConfigError("the judge needs ANTHROPIC_API_KEY in the environment (never in job files)")
        return cls(name, BedrockOptions(model=model, anthropic_base_url=base_url))

    @property
    def provider_key(self) -> str:
        return f"bedrock {self.options.region} {self.options.endpoint_url or ''}".strip()

    def _aws(self, service: str) -> Any:
        with self._lock:  # boto3's default session is not safe to make clients from in several threads at once
            return self._clients.get(service) or self._make_aws(service)

    def _make_aws(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[service] = boto3.client(
                service,
                region_name=self.options.region,
                endpoint_url=self.options.runtime_url if service == "bedrock-runtime" else self.options.endpoint_url,
                config=Config(retries={"max_attempts": self.options.max_retries + 1, "mode": "standard"},
                              read_timeout=self.options.timeout, connect_timeout=min(self.options.timeout, 10)),
            )  # fmt: skip
        return self._clients[service]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return aws_errors.call(self.name, what, fn)

    # checks and data ---------------------------------------------------------------------------------

    @property
    def family(self) -> Family:
        return family_of(self.options.model, self.name)

    def check(self, spec: JobSpec) -> None:
        self.check_installed()
        family = self.family
        if spec.method not in ("sft", "rft"):
            raise UnsupportedError(
                f"method {spec.method!r}: Bedrock fine-tunes {family.label} with supervised examples (method: sft)"
                " and Amazon Nova 2 Lite with a reward (method: rft)",
                backend=self.name,
            )
        super().check(spec)  # RFT: the grader and model provider.json says Bedrock takes
        needed = ("role_arn", "s3_bucket", "grader_role_arn") if spec.method == "rft" else ("role_arn", "s3_bucket")
        missing = [name for name in needed if not getattr(self.options, name)]
        if missing:
            raise ConfigError(
                f"Bedrock needs {' and '.join(missing)} in the {self.name} section (the S3 bucket holds the data; "
                "the role lets Bedrock read it; RFT's grader runs as a Lambda function under grader_role_arn)",
                field=f"backends.{self.name}",
            )
        if spec.method == "rft":
            from fto.backends.bedrock.reward import rft_config

            rft_config(spec, "arn:aws:lambda:checked-offline", self.name)  # the ranges, before any upload
        else:
            family.hyperparameters(spec, self.options, True, self.name)
        import boto3

        if boto3.Session().get_credentials() is None:  # said now, not after the data is prepared
            raise ConfigError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
                field=self.name,
            )

    def ignored(self, spec: JobSpec) -> list[str]:
        family = self.family
        if spec.method == "rft":  # RFT's hyperparameters are rft_config's: epochs, batch size, learning rate
            mine = ("learning_rate_multiplier", "warmup_ratio", "max_seq_length", "lora")
            return [f"hyperparameters.{n} is not a Bedrock RFT setting (it takes epochs, batch_size, learning_rate)"
                    for n in mine if n in spec.hyperparameters.model_fields_set]  # fmt: skip
        taken = ", ".join(k.source.removeprefix("hyperparameters.") for k in family.knobs)
        return [
            f"{name} is not a Bedrock setting for {family.label} (it takes {taken})" for name in family.unused(spec)
        ]

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        """The family's JSONL, after the checks Bedrock would otherwise fail the job on, hours later."""
        family = self.family
        _, card = self.describe().model(self.options.model)
        if len(train) < family.min_records:
            raise DataError(
                f"Bedrock needs at least {family.min_records} training records for {family.label}; "
                f"the training split has {len(train)}",
                file=spec.data.train,
            )
        most = self.options.max_records or family.max_records
        if len(train) + len(validation) > most:
            raise DataError(
                f"Bedrock takes at most {most} training and validation records together for {family.label}; "
                f"this job has {len(train) + len(validation)} (the quota can be raised: then set max_records)",
                file=spec.data.train,
            )
        if spec.method == "rft":  # prompts and the fields the grader reads, as the grader's Lambda receives them
            return PreparedData.write(train, validation, workdir, "rft")
        if family.single_turn:
            train, validation = _single_turn(train, spec, family), _single_turn(validation, spec, family)
        limit = card.max_tokens_per_example if card else None
        if limit:
            counter = self.token_counter(self.options.model)  # cl100k, an estimate for Claude
            for record in [*train, *validation]:
                total, _ = measure(record, counter)
                if total > limit:
                    raise DataError(
                        f"about {total} tokens: over Bedrock's {limit} per record for {self.options.model} "
                        f"(an estimate: {family.label}'s tokenizer is not used offline)",
                        file=spec.data.train,
                        line=record.source_line,
                    )
        return PreparedData.write(train, validation, workdir, family.training_format)

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._put(prepared.train),
            validation_file=self._put(prepared.validation) if prepared.validation else None,
        )

    def _put(self, path: Path) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # same content, same key: re-uploads are free
        key = f"{self.options.s3_prefix.strip('/')}/data/{digest}/{path.name}"
        self._call(f"upload {path.name}", lambda: self._aws("s3").upload_file(str(path), self.options.s3_bucket, key))
        return f"s3://{self.options.s3_bucket}/{key}"

    # jobs --------------------------------------------------------------------------------------------

    def _job_name(self, job_id: str) -> str:
        return f"fto-{job_id}"  # our id in Bedrock's unique job name: `find` needs nothing else

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        name = self._job_name(job_id)
        model_name = re.sub(r"[^A-Za-z0-9.+-]", "-", f"{spec.suffix or spec.name}-{job_id}")[:63]
        request: dict[str, Any] = {
            "jobName": name,
            "customModelName": model_name,
            "roleArn": self.options.role_arn,
            "baseModelIdentifier": self.options.model,
            "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": uploaded.train_file},
            "outputDataConfig": {
                "s3Uri": f"s3://{self.options.s3_bucket}/{self.options.s3_prefix.strip('/')}/output/{job_id}/"
            },
            "clientRequestToken": job_id,
            "jobTags": [{"key": "fto_job_id", "value": job_id}]
            + [{"key": k, "value": v} for k, v in spec.metadata.items()],
        }
        if spec.method == "rft":
            from fto.backends.bedrock.reward import rft_config

            request["customizationType"] = "REINFORCEMENT_FINE_TUNING"
            request["customizationConfig"] = {"rftConfig": rft_config(spec, self._grader_function(spec), self.name)}
        else:
            request["hyperParameters"] = self.family.hyperparameters(
                spec, self.options, uploaded.validation_file is not None, self.name
            )
        if uploaded.validation_file:
            request["validationDataConfig"] = {"validators": [{"s3Uri": uploaded.validation_file}]}
        self._call("create customization job", lambda: self._aws("bedrock").create_model_customization_job(**request))
        return name  # Bedrock accepts the job name wherever it takes the ARN

    def _grader_function(self, spec: JobSpec) -> str:
        """Create (or find, by its content-derived name) the Lambda function that runs the reward grader, and let
        Bedrock invoke it; returns its ARN."""
        from fto.backends.bedrock.reward import HANDLER, RUNTIME, function_name, limits, package
        from fto.orchestrator.graders.offered import reward_grader

        grader = reward_grader(spec)
        code = package(grader)
        name = function_name(grader, code)
        lam = self._aws("lambda")
        try:
            return str(self._call("find grader function", lambda: lam.get_function(FunctionName=name))
                       ["Configuration"]["FunctionArn"])  # fmt: skip
        except BackendError as exc:
            if exc.status_code != 404:
                raise
        timeout, memory = limits(grader)
        created = self._call(
            "create grader function",
            lambda: lam.create_function(
                FunctionName=name, Runtime=RUNTIME, Handler=HANDLER, Role=self.options.grader_role_arn,
                Code={"ZipFile": code}, Timeout=timeout, MemorySize=memory, Publish=True,
                Description=f"fto reward grader {grader.name!r} ({grader.type}) for Bedrock RFT",
                Tags={"fto_grader": grader.name},
            ),
        )  # fmt: skip
        self._call(
            "let Bedrock invoke the grader",
            lambda: lam.add_permission(FunctionName=name, StatementId="bedrock-rft", Action="lambda:InvokeFunction",
                                       Principal="bedrock.amazonaws.com"),
        )  # fmt: skip
        return str(created["FunctionArn"])

    def find(self, job_id: str) -> str | None:
        from botocore.exceptions import ClientError

        name = self._job_name(job_id)

        def lookup() -> str | None:
            try:
                self._aws("bedrock").get_model_customization_job(jobIdentifier=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return None
                raise
            return name

        return self._call("find customization job", lookup)  # a timeout here is retried like any other

    def _job(self, provider_job_id: str) -> dict[str, Any]:
        return self._call(
            "get customization job",
            lambda: self._aws("bedrock").get_model_customization_job(jobIdentifier=provider_job_id),
        )

    def get(self, provider_job_id: str) -> ProviderJob:
        return self._state(self._job(provider_job_id))

    def _state(self, job: dict[str, Any]) -> ProviderJob:
        state = mapping.status(job)
        return ProviderJob(
            status=state,
            base_model=self.options.model,
            fine_tuned_model=job.get("outputModelArn") if state.value == "succeeded" else None,
            error=job.get("failureMessage") if state.value == "failed" else None,
        )

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """Bedrock has no events API: an event is recorded when the job's stage changes, and when it ends, its
        step-wise losses are read from the output Bedrock writes to S3."""
        job = self._job(provider_job_id)
        state = self._state(job)
        stage = mapping.stage_text(job)
        updates = ProviderUpdates(cursor=stage)
        if stage != cursor:
            level: Literal["info", "error"] = "error" if state.status.value == "failed" else "info"
            message = stage + (f": {job['failureMessage']}" if level == "error" and job.get("failureMessage") else "")
            updates.events.append(JobEvent(created_at=datetime.now(UTC), level=level, message=message))
            if state.status.value == "succeeded":
                updates.metrics.extend(self._step_metrics(job))
        return state, updates

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def _step_metrics(self, job: dict[str, Any]) -> list[Any]:
        uri = job.get("outputDataConfig", {}).get("s3Uri", "")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        listed = self._call(
            "list job output", lambda: self._aws("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        ).get("Contents", [])
        for item in listed:
            if item["Key"].endswith("step_wise_training_metrics.csv"):
                get_object = partial(self._aws("s3").get_object, Bucket=bucket, Key=item["Key"])
                body = self._call("read training metrics", get_object)
                return mapping.step_metrics(body["Body"].read().decode())
        return []

    def cancel(self, provider_job_id: str) -> None:
        self._call(
            "stop customization job",
            lambda: self._aws("bedrock").stop_model_customization_job(jobIdentifier=provider_job_id),
        )

    # inference ---------------------------------------------------------------------------------------

    def _anthropic_client(self, bedrock: bool) -> Any:
        key = "bedrock-runtime" if bedrock else "anthropic"
        if key not in self._clients:
            if bedrock:
                from anthropic import AnthropicBedrock

                self._clients[key] = AnthropicBedrock(
                    aws_region=self.options.region,
                    base_url=self.options.runtime_url,
                    timeout=self.options.timeout,
                    max_retries=self.options.max_retries,
                )
            else:
                from anthropic import Anthropic

                api_key = os.environ.get("ANTHROPIC_API_KEY")
                if not api_key:
                    raise ConfigError(
                        "set ANTHROPIC_API_KEY to query claude-* models (keys are never read from job files)",
                        field=self.name,
                    )
                self._clients[key] = Anthropic(
                    api_key=api_key,
                    base_url=self.options.anthropic_base_url,
                    timeout=self.options.timeout,
                    max_retries=self.options.max_retries,
                )
        return self._clients[key]

    def inference_model(self, model: str) -> tuple[str, str]:
        """(model id to call, runtime: "anthropic" for the Anthropic API, "bedrock-claude" or "converse").

        Custom models (ARNs) need provisioned throughput; a base model is called by its on-demand id (or the
        inference profile named as base_inference_model), without the customization variant (`:200k`).
        """
        runtime = self.family.runtime if self._is_bedrock_family() else "anthropic"
        if model.startswith("arn:"):
            target = self.options.inference_model or model
        elif model == self.options.model and self.options.base_inference_model:
            target = self.options.base_inference_model
        elif model.startswith(("anthropic.", "amazon.", "meta.", "us.", "eu.", "apac.")):
            target = re.sub(r":\d+k$", "", model)
        else:
            return model, "anthropic"  # claude-* by the Anthropic API's name (a judge, a direct comparison)
        return target, "bedrock-claude" if runtime == "anthropic" else "converse"

    def _is_bedrock_family(self) -> bool:
        try:
            self.family  # noqa: B018
        except UnsupportedError:
            return False
        return True

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        target, runtime = self.inference_model(model)
        if runtime == "converse":
            return self._converse(target, messages, params)
        import anthropic

        system = "\n".join(m.content or "" for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content or ""} for m in messages if m.role in ("user", "assistant")]
        try:
            response = self._anthropic_client(runtime == "bedrock-claude").messages.create(
                model=target,
                max_tokens=params.max_new_tokens,
                messages=turns,
                **({"system": system} if system else {}),
                extra_body={"temperature": params.temperature},  # this SDK release has no temperature argument
            )
        except anthropic.APIStatusError as exc:
            raise BackendError(
                redact(f"messages: {exc.message} ({exc.status_code})"),
                backend=self.name,
                status_code=exc.status_code,
                retryable=exc.status_code in (408, 409, 429) or exc.status_code >= 500,
            ) from None
        except anthropic.APIConnectionError as exc:
            raise BackendError(f"messages: {exc}", backend=self.name, retryable=True) from None
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Completion(
            text=text, input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens
        )

    def _converse(self, target: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """One reply through Bedrock's Converse API (Nova, Llama; base on demand, custom on provisioned throughput)."""
        system = [{"text": m.content or ""} for m in messages if m.role == "system"]
        turns = [{"role": m.role, "content": [{"text": m.content or ""}]} for m in messages
                 if m.role in ("user", "assistant")]  # fmt: skip
        request: dict[str, Any] = {
            "modelId": target,
            "messages": turns,
            "inferenceConfig": {"maxTokens": params.max_new_tokens, "temperature": params.temperature},
        }
        if system:
            request["system"] = system
        response = self._call("converse", lambda: self._aws("bedrock-runtime").converse(**request))
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        usage = response.get("usage", {})
        return Completion(
            text="".join(b.get("text", "") for b in blocks),
            input_tokens=usage.get("inputTokens"),
            output_tokens=usage.get("outputTokens"),
        )


def _single_turn(records: Sequence[Record], spec: JobSpec, family: Family) -> list[Record]:
    """Prompt/completion records: the system prompt folded into the prompt; more than one exchange refused."""
    out: list[Record] = []
    for record in records:
        if not isinstance(record, Conversation):
            out.append(record)
            continue
        system = [m.content or "" for m in record.messages if m.role == "system"]
        turns = [m for m in record.messages if m.role != "system"]
        if [m.role for m in turns] != ["user", "assistant"]:
            raise DataError(
                f"{family.label} on Bedrock trains on prompt/completion pairs: one user turn and one answer "
                f"(this record has {len(turns)} turns)",
                file=spec.data.train,
                line=record.source_line,
            )
        prompt = "\n\n".join([*system, turns[0].content or ""])
        out.append(record.model_copy(update={"messages": [Message(role="user", content=prompt), turns[1]]}))
    return out

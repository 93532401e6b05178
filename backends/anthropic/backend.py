"""The anthropic backend's client: Bedrock customization jobs through boto3, Claude through the anthropic SDK."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import anthropic
import boto3
from pydantic import Field

from fto.backends.anthropic import mapping
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.orchestrator.data.stats import measure
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.secrets import redact
from fto.schemas import Completion, JobEvent, JobSpec, Message, ProviderJob, ProviderUpdates, Record

T = TypeVar("T")
RETRYABLE_AWS = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException", "TooManyRequests"}


class AnthropicOptions(BackendOptions):
    """The `anthropic` section of a job file: Bedrock region, role, bucket and the endpoints to use."""

    model: str = Field(
        default="anthropic.claude-3-haiku-20240307-v1:0:200k", description="Bedrock base model to customize"
    )
    region: str = Field(default="us-west-2", description="AWS region (Claude fine-tuning runs in us-west-2)")
    role_arn: str | None = Field(default=None, description="IAM role Bedrock assumes to read and write S3")
    s3_bucket: str | None = Field(default=None, description="bucket for training data and job output")
    s3_prefix: str = Field(default="fto", description="key prefix inside the bucket")
    early_stopping_threshold: float | None = Field(default=None, description="Bedrock: 0–0.1 (default 0.001)")
    early_stopping_patience: int | None = Field(default=None, description="Bedrock: 1–10 epochs (default 2)")
    max_records: int = Field(
        default=10000, gt=0, description="training + validation records; an AWS quota you can have raised"
    )
    inference_model: str | None = Field(
        default=None, description="provisioned throughput ARN to query the custom model (Bedrock requires one)"
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


class AnthropicBackend(Backend[AnthropicOptions]):
    """Claude fine-tuned by Amazon Bedrock model customization jobs, and queried through the anthropic SDK."""

    Options: ClassVar[type[BackendOptions]] = AnthropicOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft"})  # Bedrock fine-tunes Claude with SFT only
    max_concurrency: int = 4
    max_requests_per_second: float = 2.0

    def __init__(self, name: str, options: AnthropicOptions):
        super().__init__(name, options)
        self.min_poll_interval, self.max_poll_interval = self.options.min_poll_interval, self.options.max_poll_interval
        self._clients: dict[str, Any] = {}

    @classmethod
    def for_judge(cls, name: str, model: str, base_url: str | None) -> Backend[Any]:
        if not model.startswith(("anthropic.", "arn:")) and not os.environ.get("ANTHROPIC_API_KEY"):
            raise ConfigError("the judge needs ANTHROPIC_API_KEY in the environment (never in job files)")
        return cls(name, AnthropicOptions(model=model, anthropic_base_url=base_url))

    @property
    def provider_key(self) -> str:
        return f"bedrock {self.options.region} {self.options.endpoint_url or ''}".strip()

    def _aws(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[service] = boto3.client(
                service,
                region_name=self.options.region,
                endpoint_url=self.options.endpoint_url,
                config=Config(retries={"max_attempts": self.options.max_retries + 1, "mode": "standard"},
                              read_timeout=self.options.timeout, connect_timeout=min(self.options.timeout, 10)),
            )  # fmt: skip
        return self._clients[service]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn()
        except NoCredentialsError:
            raise ConfigError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE", field=self.name
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise BackendError(
                redact(f"{what}: {code}: {error.get('Message', '')}"),
                backend=self.name,
                status_code=status,
                retryable=code in RETRYABLE_AWS or (status or 0) >= 500,
            ) from None
        except BotoCoreError as exc:
            raise BackendError(redact(f"{what}: {exc}"), backend=self.name, retryable=True) from None

    # checks and data ---------------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        if spec.method != "sft":
            raise UnsupportedError(
                f"method {spec.method!r}: Bedrock fine-tunes Claude with supervised examples only (method: sft)",
                backend=self.name,
            )
        missing = [name for name in ("role_arn", "s3_bucket") if not getattr(self.options, name)]
        if missing:
            raise ConfigError(
                f"Bedrock needs {' and '.join(missing)} in the {self.name} section (the S3 bucket holds the data; "
                "the role lets Bedrock read it)",
                field=f"backends.{self.name}",
            )
        mapping.hyperparameters(spec, self._early_stopping(), True, self.name)

        if boto3.Session().get_credentials() is None:  # said now, not after the data is prepared
            raise ConfigError(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
                field=self.name,
            )

    def ignored(self, spec: JobSpec) -> list[str]:
        return [
            f"hyperparameters.{name} is for local training; Bedrock chooses it (use learning_rate_multiplier)"
            for name in mapping.ignored_settings(spec)
        ]

    def _early_stopping(self) -> dict[str, float | None]:
        return {"threshold": self.options.early_stopping_threshold, "patience": self.options.early_stopping_patience}

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        """Bedrock's Claude JSONL, after the checks Bedrock would otherwise fail the job on, hours later."""
        rules = self.describe().data
        _, card = self.describe().model(self.options.model)
        if len(train) < rules.min_examples:
            raise DataError(
                f"Bedrock needs at least {rules.min_examples} training records for Claude; "
                f"the training split has {len(train)}",
                file=spec.data.train,
            )
        if len(train) + len(validation) > self.options.max_records:
            raise DataError(
                f"Bedrock takes at most {self.options.max_records} training and validation records together; "
                f"this job has {len(train) + len(validation)} (the quota can be raised: then set max_records)",
                file=spec.data.train,
            )
        limit = card.max_tokens_per_example if card else None
        if limit:
            counter = self.token_counter(self.options.model)  # cl100k, an estimate for Claude
            for record in [*train, *validation]:
                total, _ = measure(record, counter)
                if total > limit:
                    raise DataError(
                        f"about {total} tokens: over Bedrock's {limit} per record for {self.options.model} "
                        "(an estimate: Claude's tokenizer is not public)",
                        file=spec.data.train,
                        line=record.source_line,
                    )
        return PreparedData.write(train, validation, workdir, "bedrock_claude")

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
            "hyperParameters": mapping.hyperparameters(
                spec, self._early_stopping(), uploaded.validation_file is not None, self.name
            ),
            "clientRequestToken": job_id,
            "jobTags": [{"key": "fto_job_id", "value": job_id}]
            + [{"key": k, "value": v} for k, v in spec.metadata.items()],
        }
        if uploaded.validation_file:
            request["validationDataConfig"] = {"validators": [{"s3Uri": uploaded.validation_file}]}
        self._call("create customization job", lambda: self._aws("bedrock").create_model_customization_job(**request))
        return name  # Bedrock accepts the job name wherever it takes the ARN

    def find(self, job_id: str) -> str | None:
        from botocore.exceptions import ClientError

        name = self._job_name(job_id)
        try:
            self._aws("bedrock").get_model_customization_job(jobIdentifier=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        return name

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

    def inference_model(self, model: str) -> tuple[str, bool]:
        """(model id to call, whether through Bedrock). Custom models need provisioned throughput; the base
        model is called by its on-demand id, without the customization variant (`:200k`)."""
        if model.startswith("arn:"):
            return (self.options.inference_model or model), True
        if model.startswith("anthropic."):
            return re.sub(r":\d+k$", "", model), True
        return model, False

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:

        target, bedrock = self.inference_model(model)
        system = "\n".join(m.content or "" for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content or ""} for m in messages if m.role in ("user", "assistant")]
        try:
            response = self._anthropic_client(bedrock).messages.create(
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

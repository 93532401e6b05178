"""The `sagemaker` backend: Amazon SageMaker AI's serverless model customization of open models (SFT, DPO; LoRA or
full), where AWS's fine-tuning moved from Bedrock.

A job is `CreateTrainingJob` with a `ServerlessJobConfig` (the base model's SageMaker Public Hub ARN, the technique,
LoRA or not), data in S3 as channels `train` / `validation`, and the tuned model registered in a model package
group (`ModelPackageConfig`); the shapes are botocore's service model. The job's name is fto's job id, so a retried
create is refused by SageMaker rather than run twice, and `find` is one describe. The recipe's hyperparameters are
named as sagemaker-train 1.27.0 names them (`max_epochs`, `global_batch_size`, `learning_rate`); any other recipe
value goes in `hyperparameters:` of the section. Eval calls the SageMaker endpoint serving the model (`endpoint_name`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from fto.backends import aws_errors
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.orchestrator.data.formats.chat import dump_messages
from fto.orchestrator.errors import BackendError, ConfigError, UnsupportedError
from fto.schemas import Completion, JobEvent, JobSpec, JobStatus, Message, ProviderJob, ProviderUpdates, Record

T = TypeVar("T")
STATUSES = {
    "InProgress": JobStatus.RUNNING,
    "Completed": JobStatus.SUCCEEDED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.CANCELLING,
    "Stopped": JobStatus.CANCELLED,
}
TECHNIQUES = {"sft": "SFT", "dpo": "DPO"}


class SageMakerOptions(BackendOptions):
    """The `sagemaker` section of a job file: Hub model, role, bucket, model package group, LoRA or full."""

    model: str = Field(
        default="meta-textgeneration-llama-3-1-8b-instruct", description="the base model's SageMaker Public Hub name"
    )
    model_version: str | None = Field(default=None, description="its Hub version (default: the latest)")
    region: str = Field(default="us-west-2", description="AWS region")
    role_arn: str | None = Field(default=None, description="IAM role SageMaker assumes to read data and write models")
    s3_bucket: str | None = Field(default=None, description="bucket for training data and outputs")
    prefix: str = Field(default="fto", description="key prefix inside the bucket")
    model_package_group: str | None = Field(default=None, description="model package group ARN the tuned model joins")
    peft: Literal["lora", "full"] = Field(default="lora", description="a LoRA adapter, or every weight")
    accept_eula: bool = Field(default=False, description="accept the base model's licence (gated models need it)")
    sequence_length: str | None = Field(default=None, pattern=r"^\d+K$", description="e.g. 8K: picks the recipe")
    hyperparameters: dict[str, str] = Field(default_factory=dict, description="other recipe values, by their names")
    endpoint_name: str | None = Field(default=None, description="SageMaker endpoint serving the tuned model (eval)")
    base_endpoint_name: str | None = Field(default=None, description="SageMaker endpoint serving the base (eval)")
    endpoint_url: str | None = Field(default=None, description="SageMaker API endpoint (a VPC endpoint, or a test)")
    s3_url: str | None = Field(default=None, description="S3 endpoint (a VPC endpoint, or a test)")
    runtime_url: str | None = Field(default=None, description="SageMaker runtime endpoint for inference")
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one request")


class SageMakerBackend(Backend[SageMakerOptions]):
    """Customizes open models with SageMaker AI's serverless training jobs, through boto3."""

    Options: ClassVar[type[BackendOptions]] = SageMakerOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo"})
    requires = ("boto3",)
    min_poll_interval: float = 30.0
    max_poll_interval: float = 300.0

    def __init__(self, name: str, options: SageMakerOptions):
        super().__init__(name, options)
        if options.endpoint_url:  # a test or VPC endpoint: answers at once
            self.min_poll_interval, self.max_poll_interval = 0.2, 1.0
        self._clients: dict[str, Any] = {}

    @property
    def provider_key(self) -> str:
        return f"sagemaker {self.options.region} {self.options.endpoint_url or ''}".strip()

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            url = {"sagemaker": self.options.endpoint_url, "s3": self.options.s3_url,
                   "sagemaker-runtime": self.options.runtime_url}[service]  # fmt: skip
            config = Config(read_timeout=self.options.timeout, retries={"max_attempts": 1})
            self._clients[service] = boto3.client(service, region_name=self.options.region, endpoint_url=url,
                                                  config=config)  # fmt: skip
        return self._clients[service]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return aws_errors.call(self.name, what, fn)

    @property
    def base_model_arn(self) -> str:
        """The base model in SageMaker Public Hub (SageMaker takes the latest version when none is named)."""
        arn = f"arn:aws:sagemaker:{self.options.region}:aws:hub-content/SageMakerPublicHub/Model/{self.options.model}"
        return f"{arn}/{self.options.model_version}" if self.options.model_version else arn

    # checks and data -----------------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        for option in ("role_arn", "s3_bucket", "model_package_group"):
            if not getattr(self.options, option):
                raise ConfigError(
                    f"SageMaker needs {option} in the {self.name} section", field=f"backends.{self.name}.{option}"
                )
        _, card = self.describe().model(self.options.model)
        if card and self.options.peft == "full" and card.note.startswith("LoRA only"):
            raise UnsupportedError(f"{self.options.model} is customized with LoRA only (peft: lora)", backend=self.name)
        self.hyperparameters(spec)

    def ignored(self, spec: JobSpec) -> list[str]:
        hp = spec.hyperparameters
        return ["hyperparameters.learning_rate_multiplier is OpenAI's; SageMaker's recipe takes learning_rate"] * (
            hp.learning_rate_multiplier != "auto"
        )

    def hyperparameters(self, spec: JobSpec) -> dict[str, str]:
        """The recipe's values, as strings (SageMaker's HyperParameters map), within the provider's ranges."""
        hp, rule = spec.hyperparameters, self.describe().epochs
        values: dict[str, str] = {}
        if hp.epochs != "auto":
            if not rule.min <= hp.epochs <= rule.max:
                raise UnsupportedError(
                    f"hyperparameters.epochs = {hp.epochs} is outside SageMaker's range {rule.min}–{rule.max}",
                    backend=self.name,
                )
            values["max_epochs"] = str(hp.epochs)
        if hp.batch_size != "auto":
            values["global_batch_size"] = str(hp.batch_size)
        if hp.learning_rate is not None:
            values["learning_rate"] = str(hp.learning_rate)
        return values | self.options.hyperparameters

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        return PreparedData.write(train, validation, workdir, "preference" if spec.method == "dpo" else "chat")

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._put(prepared.train),
            validation_file=self._put(prepared.validation) if prepared.validation else None,
        )

    def _put(self, path: Path) -> str:
        """The file in S3 under its content's hash: the same data is one object, however often it is sent."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        key = f"{self.options.prefix}/data/{digest}/{path.name}"
        bucket = self.options.s3_bucket
        self._call(f"upload {path.name}", lambda: self._client("s3").upload_file(str(path), bucket, key))
        return f"s3://{bucket}/{key}"

    # jobs ----------------------------------------------------------------------------------------------

    @staticmethod
    def job_name(job_id: str) -> str:
        """The training job's name: fto's job id, so SageMaker refuses a second create of the same job."""
        return f"fto-{job_id}"[:63]

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        channels = [("train", uploaded.train_file)] + ([("validation", uploaded.validation_file)]
                                                       if uploaded.validation_file else [])  # fmt: skip
        serverless: dict[str, Any] = {
            "BaseModelArn": self.base_model_arn,
            "JobType": "FineTuning",
            "CustomizationTechnique": TECHNIQUES[spec.method],
            "AcceptEula": self.options.accept_eula,
        }
        if self.options.peft == "lora":
            serverless["Peft"] = "LORA"
        if self.options.sequence_length:
            serverless["SequenceLength"] = self.options.sequence_length
        name = self.job_name(job_id)
        request = {
            "TrainingJobName": name,
            "RoleArn": self.options.role_arn,
            "InputDataConfig": [
                {"ChannelName": channel, "DataSource": {"S3DataSource": {
                    "S3Uri": uri, "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}}}
                for channel, uri in channels
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{self.options.s3_bucket}/{self.options.prefix}/output/"},
            "ServerlessJobConfig": serverless,
            "ModelPackageConfig": {"ModelPackageGroupArn": self.options.model_package_group},
            "HyperParameters": self.hyperparameters(spec),
            "Tags": [{"Key": "fto_job_id", "Value": job_id}],
        }  # fmt: skip
        self._call("create training job", lambda: self._client("sagemaker").create_training_job(**request))
        return name

    def find(self, job_id: str) -> str | None:
        from botocore.exceptions import ClientError

        name = self.job_name(job_id)
        try:
            self._client("sagemaker").describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
                return None
            raise
        return name

    def _describe(self, provider_job_id: str) -> dict[str, Any]:
        client = self._client("sagemaker")
        found: dict[str, Any] = self._call(
            "describe training job", lambda: client.describe_training_job(TrainingJobName=provider_job_id)
        )
        return found

    def get(self, provider_job_id: str) -> ProviderJob:
        job = self._describe(provider_job_id)
        status = STATUSES.get(job["TrainingJobStatus"], JobStatus.RUNNING)
        return ProviderJob(
            status=status,
            base_model=self.options.model,
            fine_tuned_model=job.get("OutputModelPackageArn") if status == JobStatus.SUCCEEDED else None,
            error=job.get("FailureReason"),
        )

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        """SageMaker's secondary status transitions, as events, each once."""
        job = self._describe(provider_job_id)
        transitions = job.get("SecondaryStatusTransitions") or []
        seen = int(cursor or 0)
        events = [
            JobEvent(created_at=t.get("StartTime") or datetime.now(UTC),
                     message=f"{t['Status']}" + (f": {t['StatusMessage']}" if t.get("StatusMessage") else ""))
            for t in transitions[seen:]
        ]  # fmt: skip
        return ProviderUpdates(events=events, metrics=[], checkpoints=[], cursor=str(len(transitions)))

    def cancel(self, provider_job_id: str) -> None:
        client = self._client("sagemaker")
        self._call("stop training job", lambda: client.stop_training_job(TrainingJobName=provider_job_id))

    # inference -----------------------------------------------------------------------------------------

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """A chat completion from the endpoint serving `model` (OpenAI's messages API, as SageMaker's LMI and
        vLLM containers take it)."""
        endpoint = self.options.base_endpoint_name if model == self.options.model else self.options.endpoint_name
        if not endpoint:
            which = "base_endpoint_name" if model == self.options.model else "endpoint_name"
            raise ConfigError(f"to query {model}, name the SageMaker endpoint serving it as {which}", field=self.name)
        body = {"messages": dump_messages(list(messages)), "max_tokens": params.max_new_tokens,
                "temperature": params.temperature}  # fmt: skip
        client = self._client("sagemaker-runtime")
        answer = self._call(
            "invoke endpoint",
            lambda: client.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                           Accept="application/json", Body=json.dumps(body)),
        )  # fmt: skip
        try:
            reply = json.loads(answer["Body"].read())
            usage = reply.get("usage") or {}
            text = reply["choices"][0]["message"]["content"] or ""
            return Completion(text=text, input_tokens=usage.get("prompt_tokens"),
                              output_tokens=usage.get("completion_tokens"))  # fmt: skip
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"endpoint {endpoint} answered in no chat-completion shape ({exc})",
                               backend=self.name) from None  # fmt: skip

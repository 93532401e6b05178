"""The `fireworks` backend: Fireworks AI fine-tuning through the `fireworks-ai` SDK.

Data becomes a Fireworks dataset (id from its content, so the same data is uploaded once); jobs are created under
fto's own job id (Fireworks lets the caller choose it), which makes a retried create safe and `find` a lookup.
Supervised jobs and DPO jobs; cancel and resume. Fine-tuned (LoRA) models are served on an on-demand deployment:
name it as `deployment` in the job file, and eval queries `MODEL#DEPLOYMENT` through the OpenAI-compatible API.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field

from fto.backends import chat_response, sdk_errors
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.fireworks import mapping
from fto.orchestrator.data.formats.chat import dump_messages
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.network import is_loopback
from fto.schemas import (
    Checkpoint,
    Completion,
    JobEvent,
    JobSpec,
    JobStatus,
    Message,
    Metric,
    ProviderJob,
    ProviderUpdates,
    Record,
)
from fto.schemas.provider import Price

if TYPE_CHECKING:  # the SDK loads on first use
    import fireworks

T = TypeVar("T")
MB = 1024 * 1024


class FireworksOptions(BackendOptions):
    """The `fireworks` section of a job file: account, base model, output model, deployment for inference."""

    model: str = Field(default="accounts/fireworks/models/llama-v3p1-8b-instruct", description="base model")
    account_id: str | None = Field(default=None, description="Fireworks account (default: FIREWORKS_ACCOUNT_ID)")
    base_url: str | None = Field(default=None, description="API root (default https://api.fireworks.ai)")
    api_key_env: str = Field(default="FIREWORKS_API_KEY", description="environment variable holding the key")
    output_model: str | None = Field(default=None, description="id of the fine-tuned model (default: from the job)")
    deployment: str | None = Field(
        default=None,
        description="on-demand deployment serving the fine-tuned LoRA model (accounts/A/deployments/D); eval needs one",
    )
    max_context_length: int | None = Field(default=None, gt=0, description="training context length")
    early_stop: bool = Field(default=False, description="stop when the validation loss stops improving")
    uploads_above_bytes: int = Field(
        default=150 * MB, gt=0, description="larger files go through a signed upload URL (one request takes 150 MB)"
    )
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one request")
    max_retries: int = Field(default=0, ge=0, description="the SDK's own retries, on top of fto's")
    max_concurrency: int = Field(default=8, gt=0, description="concurrent requests (eval calls, polls)")


class FireworksBackend(Backend[FireworksOptions]):
    """Fine-tunes on Fireworks AI (supervised and DPO, LoRA) and queries the result through a deployment."""

    requires = ("fireworks",)

    Options: ClassVar[type[BackendOptions]] = FireworksOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo", "rft"})
    min_poll_interval: float = 10.0
    max_poll_interval: float = 120.0

    def __init__(self, name: str, options: FireworksOptions):
        super().__init__(name, options)
        self.max_concurrency = options.max_concurrency
        if options.base_url and is_loopback(options.base_url):
            self.min_poll_interval, self.max_poll_interval = 0.2, 1.0
        self._client: fireworks.Fireworks | None = None

    @classmethod
    def inference_price(cls, model: str, base_model: str | None = None) -> Price | None:
        """Base models from the table; a fine-tuned one on a deployment is billed by GPU hour, not per token: its
        calls are priced at the base's serverless rate, as a point of comparison."""
        return super().inference_price(model.split("#", 1)[0], base_model)

    @property
    def account(self) -> str:
        account = self.options.account_id or os.environ.get("FIREWORKS_ACCOUNT_ID")
        if not account:
            raise ConfigError(
                f"set account_id in the {self.name} section or FIREWORKS_ACCOUNT_ID in the environment",
                field=f"backends.{self.name}.account_id",
            )
        return account

    @property
    def provider_key(self) -> str:
        return f"fireworks {self.options.base_url or 'https://api.fireworks.ai'} {self.account}"

    @property
    def client(self) -> fireworks.Fireworks:
        import fireworks

        if self._client is None:
            key = os.environ.get(self.options.api_key_env)
            if not key and not (self.options.base_url and is_loopback(self.options.base_url)):
                raise ConfigError(
                    f"set {self.options.api_key_env} in the environment (keys are never read from job files)",
                    field=self.name,
                )
            self._client = fireworks.Fireworks(
                api_key=key or "unused-on-loopback",
                account_id=self.account,
                base_url=self.options.base_url,
                timeout=self.options.timeout,
                max_retries=self.options.max_retries,
            )
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import fireworks

        return sdk_errors.call(fireworks, self.name, what, fn)

    def _name(self, kind: str, resource: str) -> str:
        return f"accounts/{self.account}/{kind}/{resource}"

    # checks and data ---------------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        self.client  # noqa: B018 — a missing key or account is said now, before anything is uploaded
        mapping.training(spec, self.options.model, None, self.options.max_context_length)  # ranges

    def ignored(self, spec: JobSpec) -> list[str]:
        return [
            f"hyperparameters.{name} is not a Fireworks setting (it takes learning_rate itself)"
            for name in mapping.LOCAL_ONLY
            if name in spec.hyperparameters.model_fields_set
        ]

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        minimum = self.describe().data.min_examples
        if len(train) < minimum:
            raise DataError(
                f"Fireworks needs at least {minimum} training examples; the training split has {len(train)}",
                file=spec.data.train,
            )
        fmt = {"dpo": "preference", "rft": "rft"}.get(spec.method, "chat")
        return PreparedData.write(train, validation, workdir, fmt)

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._dataset(prepared.train, prepared.train_examples),
            validation_file=self._dataset(prepared.validation, prepared.validation_examples)
            if prepared.validation
            else None,
        )

    def _dataset(self, path: Path, examples: int) -> str:
        """A dataset named after the file's content; created and filled unless it already is."""
        import fireworks

        content = path.read_bytes()
        dataset_id = mapping.resource_id(f"fto-{hashlib.sha256(content).hexdigest()[:16]}-{path.stem}")
        try:
            existing = self.client.datasets.get(dataset_id)
            if existing.state == "READY":
                return self._name("datasets", dataset_id)
        except fireworks.NotFoundError:
            self._call(
                f"create dataset for {path.name}",
                lambda: self.client.datasets.create(
                    dataset_id=dataset_id,
                    dataset={"user_uploaded": {}, "example_count": str(examples), "format": "CHAT"},
                ),
            )
        if len(content) <= self.options.uploads_above_bytes:
            self._call(
                f"upload {path.name}",
                lambda: self.client.datasets.upload(dataset_id, file=(path.name, content, "application/jsonl")),
            )
        else:
            self._signed_upload(dataset_id, path, content)
        return self._name("datasets", dataset_id)

    def _signed_upload(self, dataset_id: str, path: Path, content: bytes) -> None:
        """A large file: a signed URL from Fireworks, the bytes PUT there, then Fireworks checks the upload."""
        import httpx

        endpoint = self._call(
            "get upload URL",
            lambda: self.client.datasets.get_upload_endpoint(
                dataset_id, filename_to_size={path.name: str(len(content))}
            ),
        )
        url = (endpoint.filename_to_signed_urls or {}).get(path.name)
        if not url:
            raise BackendError(f"Fireworks gave no upload URL for {path.name}", backend=self.name, retryable=True)
        try:
            answer = httpx.put(
                url, content=content, headers={"Content-Type": "application/octet-stream"}, timeout=self.options.timeout
            )
        except httpx.HTTPError as exc:
            raise BackendError(f"upload {path.name}: {exc}", backend=self.name, retryable=True) from None
        if answer.status_code >= 300:
            raise BackendError(
                f"upload {path.name}: storage answered {answer.status_code}",
                backend=self.name,
                status_code=answer.status_code,
                retryable=answer.status_code >= 500,
            )
        self._call("validate upload", lambda: self.client.datasets.validate_upload(dataset_id, body={}))

    def has_files(self, uploaded: UploadedData) -> bool:
        import fireworks

        try:
            for name in filter(None, (uploaded.train_file, uploaded.validation_file)):
                if self.client.datasets.get(name.rsplit("/", 1)[-1]).state != "READY":
                    return False
        except fireworks.NotFoundError:
            return False
        return True

    # jobs --------------------------------------------------------------------------------------------

    def _output_model(self, spec: JobSpec, job_id: str) -> str:
        return mapping.resource_id(self.options.output_model or f"{spec.suffix or spec.name}-{job_id}")

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        """Create the job under our id: a second create of the same job is refused by Fireworks, never doubled."""
        job = mapping.resource_id(job_id)
        settings = mapping.training(
            spec, self.options.model, self._output_model(spec, job_id), self.options.max_context_length
        )
        display = f"fto {spec.name} {job_id}"[:60]
        kind = {"dpo": "dpoJobs", "rft": "reinforcementFineTuningJobs"}.get(spec.method, "supervisedFineTuningJobs")
        create: Callable[[], Any]
        if spec.method == "rft":
            create = partial(self._create_rft, spec, uploaded, job, display, settings)
        elif spec.method == "dpo":
            beta = spec.hyperparameters.beta
            loss: dict[str, Any] = {"method": "DPO", **({"dpo": {"beta": beta}} if beta != "auto" else {})}
            create = lambda: self.client.dpo_jobs.create(  # noqa: E731
                dataset=uploaded.train_file, dpo_job_id=job, display_name=display, training_config=settings,  # type: ignore[arg-type]
                loss_config=loss,  # type: ignore[arg-type]
            )  # fmt: skip
        else:
            extra: dict[str, Any] = {"early_stop": self.options.early_stop}
            if uploaded.validation_file:
                extra["evaluation_dataset"] = uploaded.validation_file
            create = lambda: self.client.supervised_fine_tuning_jobs.create(  # noqa: E731
                dataset=uploaded.train_file, supervised_fine_tuning_job_id=job, display_name=display,
                **settings, **extra,
            )  # fmt: skip
        try:
            self._call("create job", create)
        except BackendError as exc:
            if exc.status_code != 409:  # 409: this job id exists already: the earlier create reached Fireworks
                raise
        return self._name(kind, job)

    def _create_rft(self, spec: JobSpec, uploaded: UploadedData, job: str, display: str,
                    settings: dict[str, Any]) -> Any:  # fmt: skip
        """The reward as a Fireworks evaluator (fto's grader code, found again by its content), then the job."""
        from fto.backends.fireworks.reward import evaluator

        evaluator_id, body = evaluator(spec)
        try:
            self._call(
                "create evaluator",
                lambda: self.client.evaluators.create(
                    evaluator=body,  # type: ignore[arg-type]
                    evaluator_id=evaluator_id,
                ),
            )
        except BackendError as exc:
            if exc.status_code != 409:  # 409: the same grader's evaluator exists already
                raise
        rft = spec.rft
        assert rft is not None  # the job file's check requires it for method: rft
        inference: dict[str, Any] = {"temperature": rft.temperature}
        if rft.samples_per_prompt != "auto":
            inference["response_candidates_count"] = rft.samples_per_prompt
        if rft.max_new_tokens != "auto":
            inference["max_output_tokens"] = rft.max_new_tokens
        beta = spec.hyperparameters.beta
        extra: dict[str, Any] = {"evaluation_dataset": uploaded.validation_file} if uploaded.validation_file else {}
        return self.client.reinforcement_fine_tuning_jobs.create(
            dataset=uploaded.train_file, evaluator=self._name("evaluators", evaluator_id),
            reinforcement_fine_tuning_job_id=job, display_name=display, training_config=settings,  # type: ignore[arg-type]
            inference_parameters=inference,  # type: ignore[arg-type]
            loss_config={"method": "GRPO", **({"kl_beta": beta} if beta != "auto" else {})},
            **extra,
        )  # fmt: skip

    def find(self, job_id: str) -> str | None:
        job = mapping.resource_id(job_id)
        kinds = (("supervisedFineTuningJobs", self.client.supervised_fine_tuning_jobs),
                 ("dpoJobs", self.client.dpo_jobs),
                 ("reinforcementFineTuningJobs", self.client.reinforcement_fine_tuning_jobs))  # fmt: skip
        for kind, resource in kinds:
            try:
                self._call("get job", lambda r=resource: r.get(job))  # type: ignore[misc]
                return self._name(kind, job)
            except BackendError as exc:
                if exc.status_code != 404:
                    raise
        return None

    def _resource(self, provider_job_id: str) -> tuple[Any, str]:
        """The SDK resource for a job name, and the job's own id."""
        _, _, kind, job = provider_job_id.split("/", 3)
        resources = {"dpoJobs": self.client.dpo_jobs, "reinforcementFineTuningJobs":
                     self.client.reinforcement_fine_tuning_jobs}  # fmt: skip
        return resources.get(kind, self.client.supervised_fine_tuning_jobs), job

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.poll(provider_job_id, None)[0]

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """Fireworks has no events API: an event is recorded whenever the state or its message changes, progress
        becomes a metric (percent of the job, epoch), and the output model a checkpoint when the job ends."""
        resource, job_id = self._resource(provider_job_id)
        job = self._call("get job", lambda: resource.get(job_id))
        state = mapping.status(job.state)
        message = (job.status.message if job.status else None) or ""
        progress = getattr(job, "job_progress", None)
        percent = progress.percent if progress else None
        mark = f"{job.state}|{message}|{percent}"
        updates = ProviderUpdates(cursor=mark)
        now = datetime.now(UTC)
        previous = (cursor or "||").split("|")
        if previous[:2] != mark.split("|")[:2]:
            level = "error" if state == JobStatus.FAILED else "info"
            text = str(job.state) + (f": {message}" if message else "")
            updates.events.append(JobEvent(created_at=now, level=level, message=text))  # type: ignore[arg-type]
        if percent is not None and str(percent) != previous[-1]:
            updates.metrics.append(Metric(step=percent, total_steps=100, epoch=getattr(progress, "epoch", None)))
        config = getattr(job, "training_config", None)
        output = getattr(job, "output_model", None) or getattr(config, "output_model", None)
        if output and not output.startswith("accounts/"):
            output = self._name("models", output)
        if state == JobStatus.SUCCEEDED and previous[0] != str(job.state) and output:
            updates.checkpoints.append(Checkpoint(step=percent or 100, model=output, created_at=now))
        return (
            ProviderJob(
                status=state,
                base_model=self.options.model,
                fine_tuned_model=output if state == JobStatus.SUCCEEDED else None,
                error=(message or f"Fireworks reports {job.state}") if state == JobStatus.FAILED else None,
            ),
            updates,
        )

    def cancel(self, provider_job_id: str) -> None:
        resource, job_id = self._resource(provider_job_id)
        self._call("cancel job", lambda: resource.cancel(job_id, body={}))

    def resume(self, provider_job_id: str) -> None:
        resource, job_id = self._resource(provider_job_id)
        self._call("resume job", lambda: resource.resume(job_id, body={}))

    # inference ---------------------------------------------------------------------------------------

    def inference_model(self, model: str) -> str:
        """Base models by name (serverless); a fine-tuned one on the deployment the job file names."""
        if model == self.options.model or "#" in model:
            return model
        if not self.options.deployment:
            raise UnsupportedError(
                f"Fireworks serves the fine-tuned (LoRA) model {model} only on an on-demand deployment: create one "
                f"(firectl create deployment {model}) and name it as `deployment` in the {self.name} section",
                backend=self.name,
            )
        return f"{model}#{self.options.deployment}"

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        target = self.inference_model(model)
        response = self._call(
            "chat completion",
            lambda: self.client.chat.completions.create(
                model=target,
                messages=dump_messages(list(messages)),  # type: ignore[arg-type]
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                seed=params.seed,
            ),
        )
        return chat_response.completion(response, self.name)

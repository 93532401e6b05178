"""The `together` backend: Together AI's fine-tuning API through the `together` SDK.

Data goes up in Together's own JSONL (chat `messages`; DPO pairs as `input` / `preferred_output` /
`non_preferred_output`), checked by the SDK before upload. Our job id rides in the model-name suffix, which is how
`find` recognises a job after a crash. Fine-tuned models are queried through Together's OpenAI-compatible chat
endpoint: serverless LoRA by the output model's name, or a dedicated endpoint named in the job file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import Field

from fto.backends import chat_response, sdk_errors
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.together import mapping
from fto.orchestrator.data.formats.chat import dump_messages
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.network import is_loopback
from fto.schemas import Completion, JobSpec, JobStatus, Message, ProviderJob, ProviderUpdates, Record
from fto.schemas.provider import Price

if TYPE_CHECKING:  # the SDK loads on first use: `fto data stats --for together` needs only the price table
    import together

T = TypeVar("T")


class TogetherOptions(BackendOptions):
    """The `together` section of a job file: base model, LoRA or full training, evals, checkpoints, inference."""

    model: str = Field(default="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", description="base model")
    base_url: str | None = Field(default=None, description="API root without /v1 (default https://api.together.xyz)")
    api_key_env: str = Field(default="TOGETHER_API_KEY", description="environment variable holding the key")
    lora: bool = Field(default=True, description="LoRA adapters (false: full fine-tuning, where the model allows)")
    n_evals: int = Field(default=0, ge=0, description="evaluations on the validation file during training")
    n_checkpoints: int = Field(default=1, ge=1, description="checkpoints kept (each can be queried or resumed)")
    train_on_inputs: bool | Literal["auto"] = Field(default="auto", description="SFT: train on the user turns too")
    from_checkpoint: str | None = Field(
        default=None, description="continue from an earlier job: JOB_ID, OUTPUT_MODEL_NAME, or either :STEP"
    )
    base_inference_model: str | None = Field(
        default=None, description="serverless model to query as the base (fine-tuning names differ: *-Reference)"
    )
    inference_endpoint: str | None = Field(
        default=None,
        description="dedicated endpoint serving the fine-tuned model, where serverless LoRA is not offered",
    )
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one request")
    max_retries: int = Field(default=0, ge=0, description="the SDK's own retries, on top of fto's")
    max_concurrency: int = Field(default=8, gt=0, description="concurrent requests (eval calls, polls)")


class TogetherBackend(Backend[TogetherOptions]):
    """Fine-tunes open models on Together AI (SFT and DPO, LoRA or full) and queries them."""

    requires = ("together",)

    Options: ClassVar[type[BackendOptions]] = TogetherOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo"})
    min_poll_interval: float = 10.0
    max_poll_interval: float = 120.0

    def __init__(self, name: str, options: TogetherOptions):
        super().__init__(name, options)
        self.max_concurrency = options.max_concurrency
        if options.base_url and is_loopback(options.base_url):
            self.min_poll_interval, self.max_poll_interval = 0.2, 1.0
        self._client: together.Together | None = None
        self._limits: Any = None

    @classmethod
    def inference_price(cls, model: str, base_model: str | None = None) -> Price | None:
        """Base models from the table; a fine-tuned one (`ACCOUNT/BASE-SUFFIX`) at its base's LoRA price."""
        known = super().inference_price(model, base_model)
        if known:
            return known
        for name, card in cls.describe().models.items():
            if name.rsplit("/", 1)[-1] in model:
                return card.fine_tuned_inference_usd_per_1m or card.inference_usd_per_1m
        return None

    @property
    def provider_key(self) -> str:
        return f"together {self.options.base_url or 'https://api.together.xyz'}"

    @property
    def client(self) -> together.Together:
        import together

        if self._client is None:
            key = os.environ.get(self.options.api_key_env)
            if not key and not (self.options.base_url and is_loopback(self.options.base_url)):
                raise ConfigError(
                    f"set {self.options.api_key_env} in the environment (keys are never read from job files)",
                    field=self.name,
                )
            self._client = together.Together(
                api_key=key or "unused-on-loopback",
                base_url=self.options.base_url,
                timeout=self.options.timeout,
                max_retries=self.options.max_retries,
            )
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import together

        return sdk_errors.call(together, self.name, what, fn)

    # checks and data ---------------------------------------------------------------------------------

    def _model_limits(self) -> Any:
        if self._limits is None:
            self._limits = self._call(
                "model limits", lambda: self.client.fine_tuning.model_limits(model_name=self.options.model)
            )
        return self._limits

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        if not spec.data.validation and self.options.n_evals:
            raise UnsupportedError("n_evals needs validation data (data.validation) to evaluate on", backend=self.name)
        from fto.orchestrator import retry

        limits = retry.call(self._model_limits)  # Together's own ranges for this model, said before upload
        mapping.check_limits(mapping.training_arguments(spec, self.options), limits, self.name)

    def ignored(self, spec: JobSpec) -> list[str]:
        return [
            f"hyperparameters.{name} is a multiplier for other providers; Together takes learning_rate itself"
            for name in mapping.LOCAL_ONLY
            if name in spec.hyperparameters.model_fields_set
        ]

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        minimum = self.describe().data.min_examples
        if len(train) < minimum:
            raise DataError(
                f"Together needs at least {minimum} training examples; the training split has {len(train)}",
                file=spec.data.train,
            )
        return PreparedData.write(train, validation, workdir, "preference" if spec.method == "dpo" else "chat")

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._upload(prepared.train),
            validation_file=self._upload(prepared.validation) if prepared.validation else None,
        )

    def _upload(self, path: Path) -> str:
        # check=True: the SDK's own format check runs first, so a file Together would reject never leaves
        def send() -> str:
            from together.lib.types.error import FileTypeError

            try:
                return self.client.files.upload(file=path, purpose="fine-tune", check=True).id
            except FileTypeError as exc:
                raise DataError(f"Together's file check refused it: {exc}", file=str(path)) from None

        return self._call(f"upload {path.name}", send)

    def has_files(self, uploaded: UploadedData) -> bool:
        import together

        try:
            for file_id in filter(None, (uploaded.train_file, uploaded.validation_file)):
                self.client.files.retrieve(file_id)
        except together.NotFoundError:
            return False
        return True

    def price_quote(self, spec: JobSpec, uploaded: UploadedData) -> str | None:
        """Together's own estimate for this job (`/fine-tunes/estimate-price`); refused beyond the account's limit."""
        args = mapping.training_arguments(spec, self.options)
        method = {"method": "dpo"} if spec.method == "dpo" else {"method": "sft", "train_on_inputs": "auto"}
        kind: dict[str, Any] = {"type": "Full"}
        if self.options.lora:
            kind = {"type": "Lora", "lora_r": args["lora_r"], "lora_alpha": args["lora_alpha"]}
        extra: dict[str, Any] = {"validation_file": uploaded.validation_file} if uploaded.validation_file else {}
        if self.options.from_checkpoint:
            extra["from_checkpoint"] = self.options.from_checkpoint
        estimate = self._call(
            "estimate price",
            lambda: self.client.fine_tuning.estimate_price(
                training_file=uploaded.train_file,
                model=self.options.model,
                n_epochs=args.get("n_epochs", 1),
                n_evals=self.options.n_evals,
                training_method=method,  # type: ignore[arg-type]
                training_type=kind,  # type: ignore[arg-type]
                **extra,
            ),
        )
        price = getattr(estimate, "estimated_total_price", None)
        if price is None:
            return None
        if getattr(estimate, "allowed_to_proceed", True) is False:
            raise BackendError(
                f"Together estimates ${price:,.2f} for this job, beyond what the account may spend "
                f"(limit ${getattr(estimate, 'user_limit', 0) or 0:,.2f}); nothing was started",
                backend=self.name,
            )
        tokens = getattr(estimate, "estimated_train_token_count", None)
        return f"Together estimates ${price:,.2f}" + (f" for {int(tokens):,} training tokens" if tokens else "")

    # jobs --------------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        args = mapping.training_arguments(spec, self.options)
        job = self._call(
            "create job",
            lambda: self.client.fine_tuning.create(
                training_file=uploaded.train_file,
                validation_file=uploaded.validation_file or "",
                model=None if self.options.from_checkpoint else self.options.model,  # the SDK takes one or the other
                suffix=mapping.suffix(spec, job_id),
                model_limits=self._model_limits(),
                **args,  # no wandb_* arguments: metrics stay with Together and fto
            ),
        )
        return job.id

    def find(self, job_id: str) -> str | None:
        page = self._call("list jobs", lambda: self.client.fine_tuning.list())
        for job in page.data:
            if (getattr(job, "suffix", None) or "").endswith(job_id):
                return job.id
        return None

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.poll(provider_job_id, None)[0]

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """The job, then what is new since `cursor` (events seen, last metric step, checkpoints seen)."""
        seen = json.loads(cursor) if cursor else {"events": 0, "step": -1, "checkpoints": 0}
        job = self._call("get job", lambda: self.client.fine_tuning.retrieve(provider_job_id))
        events = self._call("list events", lambda: self.client.fine_tuning.list_events(provider_job_id)).data
        rows = self._call("list metrics", lambda: self.client.fine_tuning.list_metrics(provider_job_id)).metrics
        saved = self._call("list checkpoints", lambda: self.client.fine_tuning.list_checkpoints(provider_job_id)).data
        state = mapping.status(job.status)
        total = next((e.total_steps for e in reversed(events) if getattr(e, "total_steps", None)), None)
        new_metrics = [m for m in mapping.metrics(rows or [], total) if m.step > seen["step"]]
        errors = [e.message for e in events if e.level == "error" or e.type == "job_error"]
        updates = ProviderUpdates(
            events=[mapping.event(e) for e in events[seen["events"] :]],
            metrics=new_metrics,
            checkpoints=[mapping.checkpoint(c, provider_job_id) for c in saved[seen["checkpoints"] :]],
            cursor=json.dumps(
                {
                    "events": len(events),
                    "step": max([seen["step"], *(m.step for m in new_metrics)]),
                    "checkpoints": len(saved),
                }
            ),
        )
        return (
            ProviderJob(
                status=state,
                base_model=job.model,
                fine_tuned_model=job.x_model_output_name if state == JobStatus.SUCCEEDED else None,
                trained_tokens=job.token_count,
                error=(errors[-1] if errors else "Together reports an error") if state == JobStatus.FAILED else None,
            ),
            updates,
        )

    def cancel(self, provider_job_id: str) -> None:
        self._call("cancel job", lambda: self.client.fine_tuning.cancel(provider_job_id))

    # inference ---------------------------------------------------------------------------------------

    def inference_model(self, model: str) -> str:
        """The name to send: the base's serverless name, the dedicated endpoint, or the model itself."""
        if model == self.options.model:
            return self.options.base_inference_model or model
        return self.options.inference_endpoint or model

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        response = self._call(
            "chat completion",
            lambda: self.client.chat.completions.create(
                model=self.inference_model(model),
                messages=dump_messages(list(messages)),  # type: ignore[arg-type]
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                seed=params.seed,
            ),
        )
        return chat_response.completion(response, self.name)

"""The local backend: LoRA fine-tuning with transformers + peft in a detached worker process per job.

Importing this package must stay cheap (no torch): the CLI and the poller use it on every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, TrainingSetup, UploadedData
from fto.backends.local.folder import JobFolder, kept_copy
from fto.backends.tokenizers import Counter
from fto.orchestrator.data.formats import Format
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.paths import backend_dir
from fto.schemas import Completion, JobSpec, JobStatus, Message, ProviderJob, ProviderUpdates, Record
from fto.schemas.provider import Price

EMBEDDED_MODEL = "embedded:tiny-llama"


def _hidden_size(folder: Path) -> int | None:
    """The width of a model folder's network (an adapter folder: its base's), when its config says."""
    for name in ("config.json", "adapter_config.json"):
        path = folder / name
        if path.is_file():
            config = json.loads(path.read_text())
            if "hidden_size" in config:
                return int(config["hidden_size"])
            base = config.get("base_model_name_or_path")
            if base and Path(base).is_dir() and Path(base) != folder:
                return _hidden_size(Path(base))
    return None


class LocalOptions(BackendOptions):
    """The `local` section of a job file: the base model, device, tuning mode and the trainer's knobs."""

    model: str = Field(
        default=EMBEDDED_MODEL,
        description=f"a model folder, a model in the Hugging Face cache, or {EMBEDDED_MODEL!r} (built on the spot)",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int | None = Field(default=None, gt=0, description="CPU threads for torch; default: all cores")
    tuning: Literal["lora", "qlora", "full"] = Field(
        default="lora", description="qlora needs a CUDA GPU and bitsandbytes"
    )
    packing: bool = Field(default=True, description="false: plain padded batches, in the data's order")
    batching: Literal["auto", "packed", "buckets"] = Field(
        default="auto",
        description="micro-batches: packed rows (pad-free, block-diagonal attention) or length buckets (padded "
        "neighbours, causal attention only; less attention work, smaller matrix products); auto: packed",
    )
    attention: Literal["auto", "varlen", "sdpa", "flash_attention_2", "eager"] = Field(
        default="auto",
        description="auto: flash-attention's variable-length kernels on CUDA when installed (else SDPA); on CPU "
        "varlen, SDPA's causal kernel on each packed example alone",
    )
    frozen_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="CPU: the dtype the frozen base weights multiply in (adapters, norms, attention and the loss "
        "stay float32); auto: bfloat16 where the CPU multiplies it natively (AVX512-BF16, AMX)",
    )
    batch_tokens: int = Field(default=4096, gt=0, description="tokens per micro-batch; steps accumulate micro-batches")
    step_tokens: int | None = Field(
        default=None, gt=0, description="tokens per optimizer step (instead of hyperparameters.batch_size examples)"
    )
    schedule: Literal["cosine", "linear"] = "cosine"
    checkpoint_every: int = Field(default=50, ge=0, description="steps between checkpoints (0: only at the end)")
    early_stopping_patience: int | None = Field(default=None, gt=0, description="epochs without a better valid loss")
    merge: bool = Field(default=False, description="also save the merged model in the transformers layout")
    processes: int = Field(default=1, gt=0, description="train with this many processes (torchrun, DDP)")
    shard: bool = Field(default=False, description="with processes > 1: FSDP, for models that do not fit one device")
    max_workers: int | None = Field(
        default=None,
        gt=0,
        description="jobs of this backend training at once; the rest wait, queued (default: 1 on CPU, 1 per GPU)",
    )


class LocalBackend(Backend[LocalOptions]):
    """Fine-tunes with transformers + peft in a detached worker process per job, on this machine."""

    hosted: ClassVar[bool] = False  # the data never leaves this machine
    Options: ClassVar[type[BackendOptions]] = LocalOptions
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "peft")
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo", "rft"})
    min_poll_interval: float = 0.5  # reading a few files is cheap
    max_poll_interval: float = 2.0
    max_concurrency: int = 16
    max_requests_per_second: float = 200.0

    def __init__(self, name: str, options: LocalOptions):
        super().__init__(name, options)
        self.root = backend_dir(name)
        self._generator: Any = None  # loaded lazily: it imports torch

    @classmethod
    def token_counter(cls, model: str | None, tokenizer: str | None = None) -> Counter:
        """The model's own tokenizer; the embedded model trains its tokenizer per job, so it is estimated."""
        if tokenizer is None and model and not model.startswith("embedded:"):
            tokenizer = model
        return super().token_counter(model, tokenizer)

    @classmethod
    def model_note(cls, model: str) -> str | None:
        if model.startswith("embedded:"):
            return (
                f"{model} is built on the spot with random weights: its base model knows nothing, so a base score "
                "near 0 is expected; the fine-tuned score is what training taught it"
            )
        return None

    @classmethod
    def inference_price(cls, model: str, base_model: str | None = None) -> Price | None:
        return 0.0, 0.0  # your own hardware: no per-token bill

    @classmethod
    def training_format(cls, model: str | None = None, max_length: int = 4096) -> Format:
        """Token ids and labels through `model`'s chat template (`fto data convert --to local --model M`)."""
        if not model or model.startswith("embedded:"):
            raise DataError(
                "writing the local format needs --model: a model folder (or Hugging Face cache entry) with a "
                "tokenizer and chat template. The embedded model's tokenizer is trained per job, so it has none yet"
            )
        from fto.backends.local.tokenized import TokenIds

        return TokenIds(model, max_length)

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        self._check_model(spec)
        if spec.method in ("dpo", "rft") and self.options.tuning == "full":
            raise UnsupportedError(
                f"{spec.method.upper()} needs the base model as its reference; with tuning: full that is a second "
                "copy in memory. Use tuning: lora (the reference is the base with the adapter switched off)",
                backend=self.name,
            )
        if spec.method == "rft" and self.options.processes > 1:
            raise UnsupportedError("RFT trains in one process (processes: 1); sampling is batched within it",
                                   backend=self.name)  # fmt: skip

    def training_setup(self, spec: JobSpec) -> TrainingSetup | None:
        """The model's shape from its config.json (the embedded model's from its sizes), as this backend trains it:
        no gradient checkpointing, micro-batches of `batch_tokens`, fp32 frozen weights unless bf16 is asked."""
        from fto.backends.local.sizes import AUTO_BATCH_SIZE, SIZE, VOCAB_SIZE
        from fto.orchestrator.plan.memory import config_of

        model, hp = self.options.model, spec.hyperparameters
        embedded = model == EMBEDDED_MODEL
        config: dict[str, Any] | None = {**SIZE, "vocab_size": VOCAB_SIZE} if embedded else config_of(model)
        if config is None:
            return None
        vocab, hidden = int(config["vocab_size"]), int(config["hidden_size"])
        return TrainingSetup(
            config=config,
            tuning=self.options.tuning,
            rank=hp.lora.r,
            tokens=self.options.batch_tokens,
            batch_size=AUTO_BATCH_SIZE if hp.batch_size == "auto" else hp.batch_size,
            checkpointing=False,
            from_files=not embedded,
            trained_in_full=2 * vocab * hidden if embedded and self.options.tuning != "full" else 0,
        )

    def _check_model(self, spec: JobSpec) -> None:
        """The model exists (before any job is recorded), and a LoRA rank fits its width."""
        from fto.backends.local.hub import cached_model, servable

        model = self.options.model
        field = f"backends.{self.name}.model"
        if model == EMBEDDED_MODEL:
            from fto.backends.local.sizes import SIZE

            width: int | None = SIZE["hidden_size"]
        else:
            problem = servable(model)
            if problem:
                raise ConfigError(problem, field=field)
            folder = Path(model) if Path(model).is_dir() else Path(cached_model(model))
            width = _hidden_size(folder)
        rank = spec.hyperparameters.lora.r
        if width and self.options.tuning != "full" and rank > width:
            raise ConfigError(
                f"lora.r {rank} is more than the model's width ({width}): a higher rank adds nothing; at most {width}",
                field="hyperparameters.lora.r",
            )

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        # The worker reads OpenAI's JSONL formats and renders them with the model's own chat template.
        fmt = {"dpo": "preference", "rft": "rft"}.get(spec.method, "chat")
        return PreparedData.write(train, validation, workdir, fmt)

    def upload(self, prepared: PreparedData) -> UploadedData:
        """Copy into a content-addressed file area, so the same data is stored once."""
        return UploadedData(
            train_file=str(kept_copy(self.root, prepared.train)),
            validation_file=str(kept_copy(self.root, prepared.validation)) if prepared.validation else None,
        )

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        folder = self._folder(job_id)
        if folder.config.exists():  # submitted before (a retried submit): never start a second worker
            return job_id
        folder.path.mkdir(parents=True, exist_ok=True)
        config = {
            "spec": spec.model_dump(mode="json"),
            "options": self.options.model_dump(mode="json"),
            "train_file": uploaded.train_file,
            "validation_file": uploaded.validation_file,
        }
        tmp = folder.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=1))
        os.replace(tmp, folder.config)
        folder.write_status(JobStatus.QUEUED)
        self._spawn(folder)
        return job_id

    def _spawn(self, folder: JobFolder, resume: bool = False) -> None:
        processes = self.options.processes
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        worker = [*launcher, "-m", "fto.backends.local.worker", str(folder.path)]
        folder.spawn(worker, *(["--resume"] if resume else []))

    def _folder(self, provider_job_id: str) -> JobFolder:
        return JobFolder(self.root / "jobs" / provider_job_id)

    def find(self, job_id: str) -> str | None:
        return job_id if self._folder(job_id).config.exists() else None

    def resume(self, provider_job_id: str) -> None:
        """Start a worker that continues from the job's last checkpoint."""
        folder = self._folder(provider_job_id)
        if folder.worker_alive():
            raise BackendError("the job is still running", backend=self.name)
        folder.cancel_file.unlink(missing_ok=True)
        folder.write_status(JobStatus.QUEUED, error=None)
        self._spawn(folder, resume=True)

    def get(self, provider_job_id: str) -> ProviderJob:
        folder = self._folder(provider_job_id)
        state = folder.state()
        if state is None:
            raise BackendError(f"no local job folder at {folder.path}", backend=self.name)
        return state

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        events, metrics, cursor = self._folder(provider_job_id).read_since(cursor)
        return ProviderUpdates(events=events, metrics=metrics, cursor=cursor)

    def cancel(self, provider_job_id: str) -> None:
        folder = self._folder(provider_job_id)
        folder.cancel_file.touch()
        pid = folder.read_status().get("pid")
        if pid and folder.worker_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # the worker stops at the next step and records "cancelled"

    def log(self, provider_job_id: str) -> str | None:
        """The worker's own output: Python warnings, torch's messages, a crash's traceback."""
        try:
            return self._folder(provider_job_id).log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        return self.generator().reference_losses(model, conversations)

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        return self.complete_many(model, [messages], params)[0]

    def export(self, provider_job_id: str, model: str, target: str, out: Path | None) -> list[str]:
        """merged, ollama, vllm or gguf (backends/local/export.py); torch loads only for merged and gguf."""
        from fto.backends.local import export

        return export.export(model, target, out or Path.cwd() / f"{provider_job_id}-{target}")

    def complete_many(
        self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams
    ) -> list[Completion]:
        return self.generator().generate(model, prompts, params)

    def generator(self) -> Any:
        """The loaded models and their batched generation (torch is imported on first use)."""
        if self._generator is None:
            from fto.backends.local.generate import Generator  # torch is imported only when generating

            self._generator = Generator(device=self.options.device)
        return self._generator

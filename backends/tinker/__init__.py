"""The `tinker` backend: fto's SFT, DPO and RFT run as training loops on a Tinker-compatible service — Tinker itself,
Together's post-training sessions, or another `fto serve` — through the tinker SDK.

A job here has no provider-side job to poll: its loop is the job. `submit` starts a detached driver process
(driver.py) that runs fto.loop's recipe against the service and writes status, events and metrics into a job
folder, exactly as the local trainer's worker does, so the poller, `fto status`, `fto cancel` and the dashboard
read it the same way. The fine-tuned model is the sampler the loop saves (a tinker:// path); eval samples from it
through the same SDK. The API key is read from the environment by the driver, never written down.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.local.folder import JobFolder, kept_copy
from fto.orchestrator.errors import BackendError, ConfigError
from fto.orchestrator.paths import backend_dir
from fto.schemas import Completion, JobSpec, JobStatus, Message, ProviderJob, ProviderUpdates, Record

TINKER_URL = "https://tinker.thinkingmachines.dev/services/tinker-prod"


class TinkerOptions(BackendOptions):
    """The `tinker` section of a job file: the service, its key variable, the base model and the LoRA rank."""

    model: str = Field(default="", description="base model, as the service names it (default: the first it offers)")
    base_url: str | None = Field(
        default=None,
        description=f"the service's root: Tinker, Together's, or `fto serve`'s (default: $TINKER_BASE_URL, "
        f"else {TINKER_URL})",
    )
    api_key_env: str = Field(default="TINKER_API_KEY", description="environment variable holding the key")
    rank: int | None = Field(default=None, gt=0, le=512, description="LoRA rank (default: hyperparameters.lora.r)")
    learning_rate: float = Field(default=1e-4, gt=0, description="Adam's step when hyperparameters.learning_rate "
                                 "is not set")  # fmt: skip
    batch_size: int = Field(default=8, gt=0, description="examples per step when hyperparameters.batch_size is auto")

    def url(self) -> str:
        """The service's root: the section's, else $TINKER_BASE_URL, else Tinker's."""
        return self.base_url or os.environ.get("TINKER_BASE_URL") or TINKER_URL


class TinkerBackend(Backend[TinkerOptions]):
    """SFT, DPO and RFT (GRPO, the job's grader as the reward) as loops on a Tinker-compatible service."""

    Options: ClassVar[type[BackendOptions]] = TinkerOptions
    options: TinkerOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo", "rft"})
    requires: ClassVar[tuple[str, ...]] = ("tinker",)
    min_poll_interval: float = 0.5  # a folder on this machine: cheap to read
    max_poll_interval: float = 5.0
    max_concurrency: int = 8

    def __init__(self, name: str, options: TinkerOptions):
        super().__init__(name, options)
        self.root = backend_dir(name)
        self._samplers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def provider_key(self) -> str:
        return f"tinker:{self.options.url()}"

    def check(self, spec: JobSpec) -> None:
        """Also: a key for a service off this machine, before anything is recorded (the driver reads it later)."""
        super().check(spec)
        if not os.environ.get(self.options.api_key_env) and not _loopback(self.options.url()):
            raise ConfigError(f"set {self.options.api_key_env} to your key for {self.options.url()}",
                              field=f"backends.{self.name}.api_key_env")  # fmt: skip

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        return PreparedData.write(
            train, validation, workdir, {"dpo": "preference", "rft": "rft"}.get(spec.method, "chat")
        )

    def upload(self, prepared: PreparedData) -> UploadedData:
        """The files stay on this machine: the driver reads them and sends tokens, step by step."""
        return UploadedData(
            train_file=str(kept_copy(self.root, prepared.train)),
            validation_file=str(kept_copy(self.root, prepared.validation)) if prepared.validation else None,
        )

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        folder = self._folder(job_id)
        if folder.config.exists():  # a retried submit: never a second driver
            return job_id
        folder.path.mkdir(parents=True, exist_ok=True)
        config = {"spec": spec.model_dump(mode="json"), "options": self.options.model_dump(mode="json"),
                  "train_file": uploaded.train_file, "validation_file": uploaded.validation_file}  # fmt: skip
        tmp = folder.config.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=1))
        os.replace(tmp, folder.config)
        folder.write_status(JobStatus.QUEUED, base_model=self.options.model or None)
        folder.spawn([sys.executable, "-m", "fto.backends.tinker.driver", str(folder.path)])
        return job_id

    def _folder(self, provider_job_id: str) -> JobFolder:
        return JobFolder(self.root / "jobs" / provider_job_id)

    def find(self, job_id: str) -> str | None:
        return job_id if self._folder(job_id).config.exists() else None

    def get(self, provider_job_id: str) -> ProviderJob:
        state = self._folder(provider_job_id).state()
        if state is None:
            raise BackendError(f"no job folder for {provider_job_id}", backend=self.name)
        return state

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        events, metrics, cursor = self._folder(provider_job_id).read_since(cursor)
        return ProviderUpdates(events=events, metrics=metrics, cursor=cursor)

    def cancel(self, provider_job_id: str) -> None:
        """The driver stops before its next step (the service keeps the states it saved)."""
        self._folder(provider_job_id).cancel_file.touch()

    def log(self, provider_job_id: str) -> str | None:
        return self._folder(provider_job_id).log_tail(40) or None

    # eval ------------------------------------------------------------------------------------------------

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """A reply from a saved sampler (tinker://…) or a base model, through the service's sampling API."""
        from tinker import types

        sampler, tokenizer = self._sampler(model)
        rendered = tokenizer.apply_chat_template(
            [m.model_dump(exclude_none=True) for m in messages], tokenize=False, add_generation_prompt=True
        )
        prompt = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        sampling = types.SamplingParams(max_tokens=params.max_new_tokens, temperature=params.temperature,
                                        seed=params.seed)  # fmt: skip
        reply = sampler.sample(types.ModelInput.from_ints(prompt), 1, sampling).result()
        tokens = list(reply.sequences[0].tokens)
        text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Completion(text=text, input_tokens=len(prompt), output_tokens=len(tokens))

    def _sampler(self, model: str) -> tuple[Any, Any]:
        with self._lock:
            if model not in self._samplers:
                import tinker

                service = tinker.ServiceClient(base_url=self.options.url(), api_key=self._key())
                if model.startswith("tinker://"):
                    sampler = service.create_sampling_client(model_path=model).result()
                else:
                    sampler = service.create_sampling_client(base_model=model).result()
                self._samplers[model] = (sampler, _tokenizer(self.options.url(), self._key(), sampler))
            found: tuple[Any, Any] = self._samplers[model]
            return found

    def _key(self) -> str:
        key = os.environ.get(self.options.api_key_env)
        if key:
            return key
        if _loopback(self.options.url()):
            return "tml-loopback"  # fto serve on this machine needs none
        raise BackendError(f"set {self.options.api_key_env} to your key for {self.options.url()}", backend=self.name)


def _tokenizer(url: str, key: str, sampler: Any) -> Any:
    """The sampler's tokenizer: from the folder the service names as its base model where that folder is on this
    machine (`fto serve`: its embedded model has no Hugging Face id), else by the base model's name."""
    import tinker

    info = tinker.RestClient(base_url=url, api_key=key).get_sampler(sampler._sampling_session_id).result()
    if Path(info.base_model).is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(info.base_model)
    return sampler.get_tokenizer()


def _loopback(url: str) -> bool:
    from urllib.parse import urlparse

    return (urlparse(url).hostname or "") in ("127.0.0.1", "localhost", "::1")

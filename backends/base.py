"""The one interface every backend implements. The orchestrator only ever talks to this."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.data.write import write_records
from orchestrator.errors import UnsupportedError
from schemas import Completion, JobSpec, Message, ProviderJob, ProviderUpdates, Record


class BackendOptions(BaseModel):
    """A backend's section of the job file. Subclasses add their own options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="base model, in the backend's own naming")


class GenerationParams(BaseModel):
    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0


class PreparedData(BaseModel):
    """Training data written in the backend's own format, ready to upload."""

    train: Path
    validation: Path | None = None
    train_examples: int
    validation_examples: int = 0

    @classmethod
    def write(cls, train: Sequence[Record], validation: Sequence[Record], workdir: Path, fmt: str) -> PreparedData:
        """train.jsonl (and validation.jsonl, when there is validation data) in `fmt`, under `workdir`."""
        workdir.mkdir(parents=True, exist_ok=True)
        write_records(train, workdir / "train.jsonl", fmt)
        validation_path = None
        if validation:
            validation_path = workdir / "validation.jsonl"
            write_records(validation, validation_path, fmt)
        return cls(
            train=workdir / "train.jsonl",
            validation=validation_path,
            train_examples=len(train),
            validation_examples=len(validation),
        )


class UploadedData(BaseModel):
    """What the provider calls the uploaded files."""

    train_file: str
    validation_file: str | None = None


class Backend(ABC):
    """A place to fine-tune and query models: a hosted API or the local trainer.

    Subclasses register under the `fto.backends` entry-point group; nothing else in fto names them.
    """

    Options: ClassVar[type[BackendOptions]] = BackendOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft"})
    # Polling: quick while a job changes, backing off to the slow interval while it does not.
    min_poll_interval: ClassVar[float] = 5.0
    max_poll_interval: ClassVar[float] = 60.0
    # What the provider tolerates from one fto process.
    max_concurrency: ClassVar[int] = 8
    max_requests_per_second: ClassVar[float] = 5.0

    def __init__(self, name: str, options: BackendOptions):
        self.name = name
        self.options = options

    @property
    def provider_key(self) -> str:
        """Which provider (and account) requests go to: limits on concurrency and rate apply per key."""
        return type(self).__qualname__

    def check(self, spec: JobSpec) -> None:
        """Refuse, before anything is uploaded, a job this backend cannot run."""
        if spec.method not in self.methods:
            raise UnsupportedError(
                f"method {spec.method!r} is not supported (supported: {', '.join(sorted(self.methods))})",
                backend=self.name,
            )

    def ignored(self, spec: JobSpec) -> list[str]:
        """Settings of the job file this backend does not use (recorded as warnings on the job, not refused):
        the local trainer's knobs, say, which a hosted service chooses itself."""
        return []

    @abstractmethod
    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        """Write the examples in this backend's own format under `workdir`."""

    @abstractmethod
    def upload(self, prepared: PreparedData) -> UploadedData:
        """Hand the prepared files to the provider."""

    @abstractmethod
    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        """Start a fine-tuning job; return the provider's job id. `job_id` is ours, for idempotency."""

    def find(self, job_id: str) -> str | None:
        """The provider's id for the job we submitted under our `job_id`, if it has one.

        After a crash between sending a create request and storing its answer, this is how fto learns whether the
        job exists, so it never submits twice. Backends whose provider keeps our id (metadata, suffix, client
        token) implement it; the default cannot tell, and fto then refuses to resubmit.
        """
        raise NotImplementedError

    @abstractmethod
    def get(self, provider_job_id: str) -> ProviderJob:
        """The job's current state, in our terms."""

    @abstractmethod
    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        """Events, metrics and checkpoints newer than `cursor`, and the cursor to pass next time."""

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """State and news in one go; providers that answer both in one request override this."""
        updates = self.updates(provider_job_id, cursor)
        state = self.get(provider_job_id)
        if state.status.terminal:  # catch what was written just before the end
            late = self.updates(provider_job_id, updates.cursor)
            updates = ProviderUpdates(
                events=updates.events + late.events,
                metrics=updates.metrics + late.metrics,
                checkpoints=updates.checkpoints + late.checkpoints,
                cursor=late.cursor or updates.cursor,
            )
        return state, updates

    async def apoll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """The poller's entry point; SDK-based backends run in a worker thread, native async ones override."""
        return await asyncio.to_thread(self.poll, provider_job_id, cursor)

    @abstractmethod
    def cancel(self, provider_job_id: str) -> None:
        """Ask the provider to stop the job."""

    def pause(self, provider_job_id: str) -> None:
        """Stop a running job so that `resume` can continue it, where the provider can."""
        raise UnsupportedError("pausing jobs is not supported", backend=self.name)

    def resume(self, provider_job_id: str) -> None:
        """Continue a paused, cancelled or crashed job where it stopped, where the provider can."""
        raise UnsupportedError("resuming jobs is not supported", backend=self.name)

    def reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        """Per conversation, the model's mean token loss on its last assistant turn (for perplexity).

        Only backends with access to the model's probabilities can answer; others refuse.
        """
        raise UnsupportedError("this backend cannot score the likelihood of a reference answer", backend=self.name)

    @abstractmethod
    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """One assistant reply from `model` (base or fine-tuned) to `messages`."""

    def complete_many(
        self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams
    ) -> list[Completion]:
        """Replies to many prompts, `max_concurrency` at a time; backends that can batch override this."""

        def timed(messages: Sequence[Message]) -> Completion:
            started = time.perf_counter()
            reply: Completion | str = self.complete(model, messages, params)
            if isinstance(reply, str):  # plugins written before Completion existed return the text alone
                reply = Completion(text=reply)
            if reply.seconds is None:
                reply = reply.model_copy(update={"seconds": time.perf_counter() - started})
            return reply

        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(prompts)))) as pool:
            return list(pool.map(timed, prompts))

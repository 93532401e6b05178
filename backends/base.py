"""The one interface every backend implements. The orchestrator only ever talks to this."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fto.backends.tokenizers import ESTIMATE_ENCODING, Counter, model_counter, tiktoken_counter
from fto.orchestrator import retry
from fto.orchestrator.data.formats import Format, get_format
from fto.orchestrator.data.write import write_records
from fto.orchestrator.errors import ConfigError, DataError, UnsupportedError
from fto.orchestrator.paths import fto_home
from fto.schemas import Completion, JobListing, JobSpec, Message, ProviderJob, ProviderUpdates, Record
from fto.schemas.provider import Price, ProviderInfo


class BackendOptions(BaseModel):
    """A backend's section of the job file. Subclasses add their own options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(description="base model, in the backend's own naming")


OptionsT = TypeVar("OptionsT", bound=BackendOptions)


class GenerationParams(BaseModel):
    """How to generate one reply."""

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


class TrainingSetup(BaseModel):
    """What memory planning needs to know of a local training run."""

    config: dict[str, Any]  # the model's config.json
    tuning: str  # lora, qlora or full
    rank: int
    tokens: int  # per micro-batch, at most
    batch_size: int  # examples per step
    checkpointing: bool
    trained_in_full: int = 0  # parameters trained besides the adapters
    from_files: bool = True  # loaded from a weights file (False: built in memory)
    tokens_per_second: float | None = None  # measured on this machine, where known


class UploadedData(BaseModel):
    """What the provider calls the uploaded files."""

    train_file: str
    validation_file: str | None = None


class Backend(ABC, Generic[OptionsT]):
    """A place to fine-tune and query models: a hosted API or the local trainer.

    Subclasses register under the `fto.backends` entry-point group; nothing else in fto names them. Everything
    fto knows about a provider comes from its backend: `describe()` (data rules, limits, models, prices, read
    from the `provider.json` beside the backend's module), `token_counter`, `inference_price` and
    `training_format`. Subclasses name their options type: `class MyBackend(Backend[MyOptions])`.
    """

    Options: ClassVar[type[BackendOptions]] = BackendOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft"})
    # The modules (import names) of the provider's SDK: a missing one is named, with the extra that installs it,
    # before anything is read or sent.
    requires: ClassVar[tuple[str, ...]] = ()
    # Whether training data leaves this machine for a provider (sensitive data then needs the user's consent).
    hosted: ClassVar[bool] = True
    # Polling: quick while a job changes, backing off to the slow interval while it does not.
    min_poll_interval: float = 5.0
    max_poll_interval: float = 60.0
    batch_poll: bool = False  # True where the provider lists many jobs in one request (see `alist`)
    # What the provider tolerates from one fto process.
    max_concurrency: int = 8
    max_requests_per_second: float = 5.0

    def __init__(self, name: str, options: OptionsT):
        self.name = name
        self.options: OptionsT = options

    # what the provider is -------------------------------------------------------------------------------

    @classmethod
    def describe(cls) -> ProviderInfo:
        """The provider's data rules, limits, models and prices (`provider.json` beside the backend's module)."""
        return _provider_info(cls)

    @classmethod
    def token_counter(cls, model: str | None, tokenizer: str | None = None) -> Counter:
        """The tokenizer this provider uses for `model` (a labelled estimate where it is not public).

        `tokenizer` names a model folder whose own tokenizer counts instead.
        """
        if tokenizer:
            return model_counter(tokenizer)
        info = cls.describe()
        _, card = info.model(model)
        encoding = (card.encoding if card else None) or ESTIMATE_ENCODING
        return tiktoken_counter(encoding, info.tokens_exact and card is not None, model or info.label)

    @classmethod
    def inference_price(cls, model: str, base_model: str | None = None) -> Price | None:
        """USD per 1M (input, output) tokens to query `model`, or None when the provider's table lacks it.

        A model the table lacks that was tuned from `base_model` costs what the table says tuned models of that base
        cost (or the base's own price, where the provider charges the same).
        """
        cards = cls.describe().models
        if model in cards:
            return cards[model].inference_usd_per_1m
        base = cards.get(base_model) if base_model else None
        return (base.fine_tuned_inference_usd_per_1m or base.inference_usd_per_1m) if base else None

    @classmethod
    def training_format(cls, model: str | None = None, max_length: int = 4096) -> Format:
        """The format this provider's training files are written in (`fto data convert --to NAME`).

        `model` and `max_length` matter to formats that tokenize (the local trainer's).
        """
        return get_format(cls.describe().training_format)

    @classmethod
    def model_note(cls, model: str) -> str | None:
        """What a reader of a comparison should know about `model` (say, that it starts from random weights)."""
        return None

    @classmethod
    def notice(cls, options: BackendOptions | None = None) -> str | None:
        """What users must hear before sending work here (a service closing, say), shown by `fto backends` and at
        submit; `options` narrows it to one configured endpoint. Refusing is `check`'s job."""
        return None

    @classmethod
    def for_judge(cls, name: str, model: str, base_url: str | None) -> Backend[Any]:
        """This backend set up to ask `model` for verdicts (`eval.judge`), at `base_url` when given."""
        raise UnsupportedError("this backend cannot act as a judge", backend=name)

    # jobs -----------------------------------------------------------------------------------------------

    @property
    def provider_key(self) -> str:
        """Which provider (and account) requests go to: limits on concurrency and rate apply per key."""
        return type(self).__qualname__

    def check_installed(self) -> None:
        """Refuse, naming the extra to install, when the provider's SDK (`requires`) is missing."""
        from fto.backends.registry import missing_requirement

        problem = missing_requirement(type(self))
        if problem:
            raise ConfigError(f"the {self.name} backend {problem}", field=f"backends.{self.name}")

    def check(self, spec: JobSpec) -> None:
        """Refuse, before anything is uploaded, a job this backend cannot run."""
        self.check_installed()
        if spec.method == "rft":  # one line on what stands in the way: no RFT there, that grader, that model
            from fto.orchestrator.graders.offered import check_rft

            check_rft(self.describe(), spec, self.name, self.rft_model())
        if spec.method not in self.methods:
            raise UnsupportedError(
                f"method {spec.method!r} is not supported (supported: {', '.join(sorted(self.methods))})",
                backend=self.name,
            )

    def rft_model(self) -> str | None:
        """The base model RFT would train, checked against provider.json's list (None: not checked here)."""
        return getattr(self.options, "model", None)

    def ignored(self, spec: JobSpec) -> list[str]:
        """Settings of the job file this backend does not use (recorded as warnings on the job, not refused):
        the local trainer's knobs, say, which a hosted service chooses itself."""
        return []

    def ignored_settings(self, spec: JobSpec) -> list[str]:
        """Everything `ignored` says, and the rft settings the provider does not take (its provider.json)."""
        from fto.orchestrator.graders.offered import ignored_rft_settings

        return self.ignored(spec) + ignored_rft_settings(self.describe(), spec)

    @abstractmethod
    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        """Write the examples in this backend's own format under `workdir`."""

    @abstractmethod
    def upload(self, prepared: PreparedData) -> UploadedData:
        """Hand the prepared files to the provider."""

    def has_files(self, uploaded: UploadedData) -> bool:
        """Whether the provider still holds files uploaded earlier (fto reuses uploads of the same content, and
        providers delete files). Backends that can ask, do; the default trusts the earlier upload."""
        return True

    def price_quote(self, spec: JobSpec, uploaded: UploadedData) -> str | None:
        """The provider's own price for this job, once its data is uploaded (recorded as an event), where the
        provider quotes one; raising refuses the job (more than the account may spend, say)."""
        return None

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

    async def alist(self, changed_since: str | None, page: str | None, cursors: Mapping[str, str | None]) -> JobListing:
        """Batch poll: one page of the provider's jobs (its list endpoint), only those changed since `changed_since`
        (a `JobListing.as_of` from before) where the provider can filter so; `None`: all of them. `cursors` are the
        poller's, by provider job id: a list that carries each job's news gives those after its cursor.

        The poller asks this every `min_poll_interval` instead of one request per job; it polls a job itself only
        when its listing changed and did not carry its news. Backends that set `batch_poll` implement it."""
        raise NotImplementedError

    @abstractmethod
    def cancel(self, provider_job_id: str) -> None:
        """Ask the provider to stop the job."""

    def pause(self, provider_job_id: str) -> None:
        """Stop a running job so that `resume` can continue it, where the provider can."""
        raise UnsupportedError("pausing jobs is not supported", backend=self.name)

    def resume(self, provider_job_id: str) -> None:
        """Continue a paused, cancelled or crashed job where it stopped, where the provider can."""
        raise UnsupportedError("resuming jobs is not supported", backend=self.name)

    def training_setup(self, spec: JobSpec) -> TrainingSetup | None:
        """How this backend would train `spec` on this machine's hardware (the model's config.json shape, LoRA or
        full, precision, micro-batch tokens, checkpointing), for `fto plan`'s memory estimate; hosted: None."""
        return None

    def release(self, provider_job_id: str) -> list[str]:
        """Free what a finished job still holds at the provider and is billed for (a deployment serving its model);
        `fto cancel` calls it on finished jobs. One line per thing freed; nothing held: none."""
        return []

    def done_with(self, model: str) -> list[str]:
        """Eval has every answer it needs from `model`: free what was made only to serve it (one line per thing
        freed). Providers that serve fine-tuned models from billed deployments implement it."""
        return []

    def log(self, provider_job_id: str) -> str | None:
        """The provider's own log of the job (`fto logs --raw`), where it keeps one; None where it does not."""
        return None

    def export(self, provider_job_id: str, model: str, target: str, out: Path | None) -> list[str]:
        """Take a fine-tuned `model` to where models run (`fto export`); returns lines telling the user what was
        written or what to do. Hosted models stay with their provider: the default says how to call them."""
        label = self.describe().label
        return [
            f"{label} serves this model: nothing to download. Call it as `{model}` through {label}'s API "
            f"(backend {self.name}; its page in docs/ says how), or compare it: fto eval EXPERIMENT --target "
            f"{self.name}:{model}"
        ]

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
            reply: Completion | str = retry.call(lambda: self.complete(model, messages, params))
            if isinstance(reply, str):  # plugins written before Completion existed return the text alone
                reply = Completion(text=reply)
            if reply.seconds is None:
                reply = reply.model_copy(update={"seconds": time.perf_counter() - started})
            return reply

        with ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrency, len(prompts)))) as pool:
            return list(pool.map(timed, prompts))


@cache
def _provider_info(cls: type[Backend[Any]]) -> ProviderInfo:
    """A backend's provider.json, with the entry of the same name in `$FTO_HOME/providers.json` laid over it."""
    package = cls.__module__ if _is_package(cls.__module__) else cls.__module__.rpartition(".")[0]
    resource = files(package).joinpath("provider.json") if package else None
    data: dict[str, Any] = {}
    if resource is not None and resource.is_file():
        data = json.loads(resource.read_text(encoding="utf-8"))
    data.setdefault("name", package.rsplit(".", 1)[-1])
    data.setdefault("label", data["name"])
    override = fto_home() / "providers.json"
    if override.is_file():
        try:
            user = json.loads(override.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", file=str(override), line=exc.lineno) from None
        entry = user.get(data["name"]) if isinstance(user, dict) else None
        if isinstance(entry, dict):
            data = _merged(data, entry)
    try:
        return ProviderInfo.model_validate({k: v for k, v in data.items() if not k.startswith("_")})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"provider description of {data['name']}: {where}: {error['msg']}") from None


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` laid over `base`, object by object (so one model's price can change alone)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _is_package(module: str) -> bool:
    return hasattr(sys.modules.get(module), "__path__")


def forget_provider_info() -> None:
    """Read provider descriptions again (after `$FTO_HOME/providers.json` changed)."""
    _provider_info.cache_clear()

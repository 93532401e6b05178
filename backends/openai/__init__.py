"""The `openai` backend: OpenAI's fine-tuning API through the openai SDK, and any service that speaks it.

`base_url` points it at an OpenAI-compatible service (such as `fto serve`), `azure_endpoint` at Azure OpenAI.
The key is read from the environment variable named by `api_key_env`, never from the job file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field

from fto.backends import chat_response, sdk_errors
from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.openai import mapping
from fto.orchestrator.clock import today
from fto.orchestrator.data.formats.chat import dump_messages
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.network import is_loopback
from fto.schemas import Completion, JobEvent, JobSpec, Message, Metric, ProviderJob, ProviderUpdates, Record
from fto.schemas.provider import Price

if TYPE_CHECKING:  # the SDK loads on first use: `fto data stats --for openai` needs only the price table
    import openai

T = TypeVar("T")
MB = 1024 * 1024
# OpenAI's fine-tuning is closing: no new jobs after LAST_NEW_JOBS; these models and their fine-tunes retire after.
LAST_NEW_JOBS = date(2027, 1, 6)
RETIREMENT = date(2027, 1, 14)
RETIRING = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")
ALTERNATIVES = (
    "azure (the same models), together, fireworks, nebius, vertex or bedrock: "
    "`fto migrate EXPERIMENT --to azure` writes the job file and maps the models"
)
MAX_PAGES = 20  # per list and poll: 2,000 events; a longer backlog is read over the next polls


class OpenAIOptions(BackendOptions):
    """The `openai` section of a job file: base model, endpoint (OpenAI, Azure or compatible), key variable, limits."""

    model: str = Field(default="gpt-4o-mini-2024-07-18", description="base model to fine-tune")
    base_url: str | None = Field(default=None, description="an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1")
    organization: str | None = None
    project: str | None = None
    api_key_env: str = Field(default="OPENAI_API_KEY", description="environment variable holding the key")
    azure_endpoint: str | None = Field(default=None, description="Azure OpenAI: https://NAME.openai.azure.com")
    api_version: str = Field(default="2025-04-01-preview", description="Azure OpenAI API version")
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one request")
    max_retries: int = Field(
        default=0, ge=0, description="the SDK's own retries, on top of fto's (off: fto retries transient errors)"
    )
    uploads_above_bytes: int = Field(
        default=512 * MB, gt=0, description="larger files go through the Uploads API (the Files API stops at 512 MB)"
    )
    part_bytes: int = Field(default=64 * MB, gt=0, le=64 * MB, description="Uploads API part size (at most 64 MB)")
    max_concurrency: int = Field(default=8, gt=0, description="concurrent requests (eval calls, polls)")


class OpenAIBackend(Backend[OpenAIOptions]):
    """Fine-tunes through OpenAI's fine-tuning API with the openai SDK (also Azure OpenAI and compatible services)."""

    Options: ClassVar[type[BackendOptions]] = OpenAIOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo", "rft"})
    min_poll_interval: float = 10.0  # jobs take minutes to hours; OpenAI's limits are per minute
    max_poll_interval: float = 120.0
    max_requests_per_second: float = 5.0

    def __init__(self, name: str, options: OpenAIOptions):
        super().__init__(name, options)
        self.max_concurrency = self.options.max_concurrency
        if self.options.base_url and is_loopback(
            self.options.base_url
        ):  # a local `fto serve`: no rate limits to respect
            self.min_poll_interval, self.max_poll_interval = 0.5, 2.0
        self._client: openai.OpenAI | None = None

    @classmethod
    def inference_price(cls, model: str, base_model: str | None = None) -> Price | None:
        """Base models from the table; fine-tuned ones (`ft:BASE:ORG:SUFFIX:ID`) at their base's fine-tuned price."""
        if model.startswith("ft:"):
            card = cls.describe().models.get(model.split(":")[1])
            return card.fine_tuned_inference_usd_per_1m if card else None
        return super().inference_price(model, base_model)

    @classmethod
    def notice(cls, options: BackendOptions | None = None) -> str | None:
        """OpenAI's closing dates, for jobs sent to OpenAI itself (not to Azure or a compatible service)."""
        if isinstance(options, OpenAIOptions) and (options.base_url or options.azure_endpoint):
            return None
        if today() > LAST_NEW_JOBS:
            return f"OpenAI accepts no new fine-tuning jobs since {LAST_NEW_JOBS:%Y-%m-%d}: use {ALTERNATIVES}"
        return (
            f"OpenAI accepts no new fine-tuning jobs after {LAST_NEW_JOBS:%Y-%m-%d} and retires "
            f"{', '.join(RETIRING)} and their fine-tunes on {RETIREMENT:%Y-%m-%d}; consider {ALTERNATIVES}"
        )

    @classmethod
    def for_judge(cls, name: str, model: str, base_url: str | None) -> Backend[Any]:
        options = OpenAIOptions(model=model, base_url=base_url)
        if not os.environ.get(options.api_key_env):  # a judge always needs a key, even on loopback
            raise ConfigError(f"the judge needs {options.api_key_env} in the environment (never in job files)")
        return cls(name, options)

    @property
    def provider_key(self) -> str:
        where = self.options.azure_endpoint or self.options.base_url or "https://api.openai.com/v1"
        return f"openai {where} {self.options.organization or ''} {self.options.project or ''}".strip()

    @property
    def client(self) -> openai.OpenAI:
        import openai

        if self._client is None:
            key = os.environ.get(self.options.api_key_env)
            common: dict[str, Any] = {"timeout": self.options.timeout, "max_retries": self.options.max_retries}
            if self.options.azure_endpoint:
                if not key:
                    raise ConfigError(f"set {self.options.api_key_env} to your Azure OpenAI key", field=self.name)
                self._client = openai.AzureOpenAI(
                    azure_endpoint=self.options.azure_endpoint,
                    api_version=self.options.api_version,
                    api_key=key,
                    **common,
                )
            else:
                if not key and not (self.options.base_url and is_loopback(self.options.base_url)):
                    raise ConfigError(
                        f"set {self.options.api_key_env} in the environment (keys are never read from job files)",
                        field=self.name,
                    )
                self._client = openai.OpenAI(
                    api_key=key or "unused-on-loopback",
                    base_url=self.options.base_url,
                    organization=self.options.organization,
                    project=self.options.project,
                    **common,
                )
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One SDK call, its failures turned into ours: retryable or not, with the wait the provider asked for."""
        import openai

        return sdk_errors.call(openai, self.name, what, fn)

    # checks and data ---------------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        if self.goes_to_openai() and today() > LAST_NEW_JOBS:
            raise UnsupportedError(
                f"OpenAI accepts no new fine-tuning jobs since {LAST_NEW_JOBS:%Y-%m-%d}: use {ALTERNATIVES}",
                backend=self.name,
            )
        self.client  # noqa: B018 — a missing key is said now, before anything is recorded or uploaded
        self.method(spec)  # raises on out-of-range hyperparameters
        mapping.metadata(spec, "fto-xxxxxxxxxx", self.name)

    def method(self, spec: JobSpec) -> dict[str, Any]:
        """The create request's `method` for this job (a compatible host with its own hyperparameters overrides)."""
        return mapping.method(spec, self.name)

    def goes_to_openai(self) -> bool:
        """Whether jobs go to OpenAI itself (closing), not to Azure or a compatible service."""
        return not (self.options.base_url or self.options.azure_endpoint)

    def rft_model(self) -> str | None:
        """OpenAI's own list of RFT models applies to OpenAI; a compatible service or Azure deployment decides."""
        return self.options.model if self.goes_to_openai() else None

    def ignored(self, spec: JobSpec) -> list[str]:
        return [
            f"hyperparameters.{name} is for local training; OpenAI chooses it (use learning_rate_multiplier)"
            for name in mapping.ignored_settings(spec)
        ]

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        minimum = self.describe().data.min_examples
        if len(train) < minimum:
            raise DataError(
                f"OpenAI needs at least {minimum} training examples; the training split has {len(train)}",
                file=spec.data.train,
            )
        fmt = {"dpo": "preference", "rft": "rft"}.get(spec.method, "chat")
        return PreparedData.write(train, validation, workdir, fmt)

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._upload(prepared.train),
            validation_file=self._upload(prepared.validation) if prepared.validation else None,
        )

    def _upload(self, path: Path) -> str:
        size = path.stat().st_size
        if size > self.options.uploads_above_bytes:  # the Uploads API: parts, then one file (up to 8 GB)
            upload = self._call(
                f"upload {path.name}",
                lambda: self.client.uploads.upload_file_chunked(
                    file=path, mime_type="application/jsonl", purpose="fine-tune", part_size=self.options.part_bytes
                ),
            )
            if upload.status != "completed" or not upload.file:
                raise BackendError(f"upload of {path.name} ended {upload.status}", backend=self.name)
            return upload.file.id

        def send() -> str:
            with open(path, "rb") as f:
                return self.client.files.create(file=(path.name, f), purpose="fine-tune", **self._file_params()).id

        return self._call(f"upload {path.name}", send)

    # jobs --------------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        params: dict[str, Any] = {
            "model": self.options.model,
            "training_file": uploaded.train_file,
            "method": self.method(spec),
            "seed": spec.seed,
            "metadata": mapping.metadata(spec, job_id, self.name),
        }
        if uploaded.validation_file:
            params["validation_file"] = uploaded.validation_file
        if spec.suffix:
            params["suffix"] = spec.suffix
        return self._call("create job", lambda: self.client.fine_tuning.jobs.create(**params)).id

    def find(self, job_id: str) -> str | None:
        page = self._call("list jobs", lambda: self.client.fine_tuning.jobs.list(metadata={"fto_job_id": job_id}))
        found = [job.id for job in page.data if (job.metadata or {}).get("fto_job_id") == job_id]
        return found[0] if found else None

    def get(self, provider_job_id: str) -> ProviderJob:
        job = self._call("get job", lambda: self.client.fine_tuning.jobs.retrieve(provider_job_id))
        return ProviderJob(
            status=mapping.status(job.status),
            base_model=job.model,
            fine_tuned_model=job.fine_tuned_model,
            trained_tokens=job.trained_tokens,
            error=mapping.error_text(job.error),
        )

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        """Events and checkpoints newer than the cursor (the newest ids seen), oldest first.

        At most MAX_PAGES pages per list and poll: a backlog beyond that is read on the next polls (the cursor keeps
        where reading stopped), and a provider whose pages do not advance is stopped, with a warning event.
        """
        seen = json.loads(cursor) if cursor else {}
        warnings: list[str] = []
        lists = {
            "event": lambda after: self.client.fine_tuning.jobs.list_events(provider_job_id, limit=100, **after),
            "checkpoint": lambda after: self.client.fine_tuning.jobs.checkpoints.list(
                provider_job_id, limit=100, **after
            ),
        }
        found: dict[str, list[Any]] = {}
        next_cursor: dict[str, Any] = {}
        for kind, list_page in lists.items():
            gap = seen.get(f"{kind}_gap")  # [continue after this id, down to this one]: left by an earlier poll
            older, gap = self._newer(list_page, gap[1], gap[0], warnings) if gap else ([], None)
            newer, new_gap = self._newer(list_page, seen.get(kind), None, warnings)
            found[kind] = older + newer
            next_cursor[kind] = newer[-1].id if newer else seen.get(kind)
            if new_gap:  # the newest pages were read; the older part of this backlog waits for the next poll
                gap = [new_gap, seen.get(kind)]
            if gap:
                next_cursor[f"{kind}_gap"] = gap
        converted = [mapping.event(e) for e in found["event"]]
        now = datetime.now(UTC)
        events = [e for e in converted if isinstance(e, JobEvent)]
        events += [JobEvent(created_at=now, level="warning", message=text) for text in warnings]
        return ProviderUpdates(
            events=events,
            metrics=[m for m in converted if isinstance(m, Metric)],
            checkpoints=[mapping.checkpoint(c) for c in found["checkpoint"]],
            cursor=json.dumps(next_cursor),
        )

    def _newer(
        self,
        list_page: Callable[[dict[str, Any]], Any],
        last_seen: str | None,
        start_after: str | None,
        warnings: list[str],
    ) -> tuple[list[Any], str | None]:
        """Items newer than `last_seen` (from `start_after` down, when given), oldest first; and the id to continue
        after when the page budget ran out first (None when everything was read).

        OpenAI lists newest first and pages backwards with `after`.
        """
        found: list[Any] = []
        ids: set[str] = set()
        after: dict[str, Any] = {"after": start_after} if start_after else {}
        for _ in range(MAX_PAGES):
            page = self._call("list events", partial(list_page, after))
            fresh = [item for item in page.data if item.id not in ids]
            for item in fresh:
                if item.id == last_seen:
                    return found[::-1], None
                found.append(item)
                ids.add(item.id)
            if not page.has_more or not page.data:
                return found[::-1], None
            if not fresh:  # the page repeats what was read: following `after` would never end
                warnings.append(
                    f"the provider's list did not advance past {page.data[-1].id} although it said has_more; "
                    "stopped reading it for this poll"
                )
                return found[::-1], None
            after = {"after": page.data[-1].id}
        return found[::-1], after["after"]

    def cancel(self, provider_job_id: str) -> None:
        self._call("cancel job", lambda: self.client.fine_tuning.jobs.cancel(provider_job_id))

    def pause(self, provider_job_id: str) -> None:
        self._call("pause job", lambda: self.client.fine_tuning.jobs.pause(provider_job_id))

    def resume(self, provider_job_id: str) -> None:
        self._call("resume job", lambda: self.client.fine_tuning.jobs.resume(provider_job_id))

    # inference ---------------------------------------------------------------------------------------

    def _file_params(self) -> dict[str, Any]:
        """What a file upload carries besides the file and its purpose (services that want more override this)."""
        return {}

    def _serving(self, model: str) -> tuple[openai.OpenAI, str]:
        """The client and model name that answer for `model` (services that serve models elsewhere override)."""
        return self.client, model

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        client, served = self._serving(model)
        response = self._call(
            "chat completion",
            lambda: client.chat.completions.create(
                model=served,
                messages=dump_messages(list(messages)),  # type: ignore[arg-type]
                max_completion_tokens=params.max_new_tokens,
                temperature=params.temperature,
                seed=params.seed,
            ),
        )
        return chat_response.completion(response, self.name)

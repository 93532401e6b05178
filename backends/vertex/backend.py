"""The `vertex` backend itself (the package's __init__ stays light: its data format loads without the SDK).

Data goes to Cloud Storage (google-cloud-storage) as Gemini's tuning JSONL, under a name taken from its content
(the same data is uploaded once). Jobs carry fto's job id as a label, which is how `find` recognises one after a
crash. Supervised tuning and preference tuning; the tuned model is queried on the endpoint Vertex deploys it to.
Credentials: Application Default Credentials, or an OAuth access token from the variable `access_token_env` names.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.backends.sdk_errors import retry_after
from fto.backends.vertex import mapping
from fto.orchestrator.data.formats import Format, get_format
from fto.orchestrator.errors import BackendError, ConfigError, DataError, UnsupportedError
from fto.orchestrator.secrets import redact
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

T = TypeVar("T")


class VertexOptions(BackendOptions):
    """The `vertex` section of a job file: project, region, bucket, Gemini model and tuning settings."""

    model: str = Field(
        default="gemini-2.5-flash",
        description="base model: Gemini, or an open model (meta/llama3_1@llama-3.1-8b-instruct)",
    )
    project: str | None = Field(default=None, description="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    location: str = Field(default="us-central1", description="Vertex AI region the job runs in")
    bucket: str | None = Field(default=None, description="Cloud Storage bucket for the training data")
    prefix: str = Field(default="fto", description="object name prefix inside the bucket")
    adapter_size: Literal[1, 2, 4, 8, 16, 32] | None = Field(
        default=None, description="LoRA adapter size (default: hyperparameters.lora.r when it is a valid size)"
    )
    export_last_checkpoint_only: bool = Field(default=False, description="keep only the final checkpoint")
    tuning_mode: Literal["lora", "full"] = Field(
        default="lora", description="open models: a LoRA adapter, or every weight (Gemini takes LoRA only)"
    )
    access_token_env: str | None = Field(
        default=None, description="variable holding an OAuth access token (else Application Default Credentials)"
    )
    base_url: str | None = Field(default=None, description="Vertex AI endpoint (a private one, or a test)")
    storage_url: str | None = Field(default=None, description="Cloud Storage endpoint (an emulator, or a test)")
    timeout: float = Field(default=60.0, gt=0, description="seconds to wait for one request")
    max_concurrency: int = Field(default=8, gt=0, description="concurrent requests (eval calls, polls)")


class VertexBackend(Backend[VertexOptions]):
    """Tunes Gemini on Vertex AI (supervised or preference tuning) and queries the tuned endpoint."""

    requires = ("google.genai", "google.cloud.storage")

    Options: ClassVar[type[BackendOptions]] = VertexOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft", "dpo", "rft"})
    min_poll_interval: float = 30.0
    max_poll_interval: float = 300.0

    def __init__(self, name: str, options: VertexOptions):
        super().__init__(name, options)
        self.max_concurrency = options.max_concurrency
        if options.base_url and _loopback(options.base_url):
            self.min_poll_interval, self.max_poll_interval = 0.2, 1.0
        self._genai: Any = None
        self._storage: Any = None
        # One client per backend, made under a lock: a google-genai Client closes its connections when dropped,
        # so a second one made by a racing eval thread would pull the rug from the first thread's call.
        self._lock = threading.Lock()

    @property
    def project(self) -> str:
        project = self.options.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigError(
                f"set project in the {self.name} section or GOOGLE_CLOUD_PROJECT in the environment",
                field=f"backends.{self.name}.project",
            )
        return project

    @property
    def provider_key(self) -> str:
        return f"vertex {self.options.base_url or ''} {self.project} {self.options.location}".strip()

    def _credentials(self) -> Any:
        if self.options.access_token_env:
            token = os.environ.get(self.options.access_token_env)
            if not token:
                raise ConfigError(
                    f"set {self.options.access_token_env} to an OAuth access token (gcloud auth print-access-token)",
                    field=self.name,
                )
            from google.oauth2.credentials import Credentials

            return Credentials(token=token)
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError:
            raise ConfigError(
                "no Google Cloud credentials: run `gcloud auth application-default login`, set "
                "GOOGLE_APPLICATION_CREDENTIALS, or name a token variable as access_token_env",
                field=self.name,
            ) from None
        return credentials

    @property
    def genai(self) -> Any:
        with self._lock:
            return self._genai or self._make_genai()

    def _make_genai(self) -> Any:
        if self._genai is None:
            from google import genai
            from google.genai import types

            self._genai = genai.Client(
                vertexai=True,
                project=self.project,
                location=self.options.location,
                credentials=self._credentials(),
                http_options=types.HttpOptions(
                    base_url=self.options.base_url, timeout=int(self.options.timeout * 1000)
                ),
            )
        return self._genai

    @property
    def storage(self) -> Any:
        with self._lock:
            return self._storage or self._make_storage()

    def _make_storage(self) -> Any:
        if self._storage is None:
            from google.cloud import storage

            options = {"api_endpoint": self.options.storage_url} if self.options.storage_url else None
            self._storage = storage.Client(
                project=self.project, credentials=self._credentials(), client_options=options
            )
        return self._storage

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One SDK call; Google's failures (Vertex and Cloud Storage) become ours, retryable or not."""
        from google.api_core import exceptions as gcs
        from google.genai import errors

        try:
            return fn()
        except errors.APIError as exc:
            code = int(exc.code or 0)
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            raise BackendError(
                redact(f"{what}: {exc.message or exc.status} ({code})"),
                backend=self.name,
                status_code=code,
                retryable=code in (408, 429) or code >= 500,
                retry_after=retry_after(headers.get("retry-after")) if code == 429 else None,
            ) from None
        except gcs.GoogleAPICallError as exc:
            code = int(exc.code or 0)
            raise BackendError(
                redact(f"{what}: {exc.message} ({code})"),
                backend=self.name,
                status_code=code,
                retryable=code in (408, 429) or code >= 500,
            ) from None
        except _http_errors()[0]:
            raise BackendError(f"{what}: timed out", backend=self.name, retryable=True) from None
        except _http_errors()[1] as exc:
            raise BackendError(f"{what}: cannot reach Google Cloud: {exc}", backend=self.name, retryable=True) from None

    # checks and data ---------------------------------------------------------------------------------

    @classmethod
    def training_format(cls, model: str | None = None, max_length: int = 4096) -> Format:
        """Gemini's contents for Gemini; open models read OpenAI-style chat messages."""
        return get_format("chat" if model and mapping.is_open(model) else "gemini")

    def check(self, spec: JobSpec) -> None:
        if mapping.is_open(self.options.model) and spec.method != "sft":
            raise UnsupportedError(
                f"Vertex tunes open models ({self.options.model}) with supervised tuning only, not {spec.method}",
                backend=self.name,
            )
        super().check(spec)
        if not self.options.bucket:
            raise ConfigError(
                f"Vertex AI reads training data from Cloud Storage: set bucket in the {self.name} section",
                field=f"backends.{self.name}.bucket",
            )
        self.project  # noqa: B018 — said now, before anything is uploaded
        self._credentials()
        mapping.tuning_config(spec, self.options, "job-check", None)  # ranges

    def ignored(self, spec: JobSpec) -> list[str]:
        return [
            f"hyperparameters.{name} is for local training; Vertex takes learning_rate_multiplier"
            for name in mapping.LOCAL_ONLY
            if name in spec.hyperparameters.model_fields_set
        ]

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        rules = self.describe().data
        if len(train) < rules.min_examples:
            raise DataError(
                f"Vertex AI needs at least {rules.min_examples} training examples; the training split has {len(train)}",
                file=spec.data.train,
            )
        if len(validation) > mapping.MAX_VALIDATION:
            raise DataError(
                f"Vertex AI takes at most {mapping.MAX_VALIDATION} validation examples; this job holds out "
                f"{len(validation)} (lower data.validation)",
                file=spec.data.train,
            )
        fmt = {"dpo": "gemini_preference", "rft": "gemini_rft"}.get(spec.method, "gemini")
        if mapping.is_open(self.options.model):  # Model Garden's open models read chat messages
            fmt = "chat"
        return PreparedData.write(train, validation, workdir, fmt)

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(
            train_file=self._put(prepared.train),
            validation_file=self._put(prepared.validation) if prepared.validation else None,
        )

    def _blob(self, uri: str) -> Any:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return self.storage.bucket(bucket).blob(name)

    def _put(self, path: Path) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # same content, same object: uploaded once
        uri = f"gs://{self.options.bucket}/{self.options.prefix.strip('/')}/data/{digest}/{path.name}"
        blob = self._blob(uri)
        if not self._call(f"look for {path.name}", blob.exists):
            self._call(
                f"upload {path.name}", lambda: blob.upload_from_filename(str(path), content_type="application/jsonl")
            )
        return uri

    def has_files(self, uploaded: UploadedData) -> bool:
        return all(
            self._call("look for uploaded data", self._blob(uri).exists)
            for uri in filter(None, (uploaded.train_file, uploaded.validation_file))
        )

    # jobs --------------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        from google.genai import types

        config = mapping.tuning_config(spec, self.options, job_id, uploaded.validation_file)
        with warnings.catch_warnings():  # the SDK calls its tuning API experimental; the API itself is GA
            warnings.simplefilter("ignore")
            job = self._call(
                "create tuning job",
                lambda: self.genai.tunings.tune(
                    base_model=self.options.model,
                    training_dataset=types.TuningDataset(gcs_uri=uploaded.train_file),
                    config=config,
                ),
            )
        return str(job.name)

    def find(self, job_id: str) -> str | None:
        from google.genai import types

        listed = self._call(
            "list tuning jobs",
            lambda: list(
                self.genai.tunings.list(config=types.ListTuningJobsConfig(filter=f'labels.fto_job_id="{job_id}"'))
            ),
        )
        found = [job.name for job in listed if (job.labels or {}).get("fto_job_id") == job_id]
        return found[0] if found else None

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.poll(provider_job_id, None)[0]

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """Vertex has no events API: an event when the state changes (and once for the data statistics Vertex
        computes), a metric point and a checkpoint for each new checkpoint of the tuned model."""
        job = self._call("get tuning job", lambda: self.genai.tunings.get(name=provider_job_id))
        state = mapping.status(job.state)
        seen = json.loads(cursor) if cursor else {"state": None, "checkpoints": 0, "stats": False}
        now = datetime.now(UTC)
        events: list[JobEvent] = []
        state_name = getattr(job.state, "value", str(job.state))
        if state_name != seen["state"]:
            error = job.error.message if job.error and job.error.message else None
            text = state_name + (f": {error}" if error else "")
            events.append(JobEvent(created_at=now, level="error" if error else "info", message=text))
        stats = mapping.data_stats(job)
        if stats and not seen["stats"]:
            events.append(JobEvent(created_at=now, message=stats))
        saved = list(job.tuned_model.checkpoints or []) if job.tuned_model else []
        fresh = saved[seen["checkpoints"] :]
        updates = ProviderUpdates(
            events=events,
            metrics=[Metric(step=int(c.step or 0), epoch=float(c.epoch) if c.epoch else None) for c in fresh],
            checkpoints=[
                Checkpoint(step=int(c.step or 0), model=c.endpoint or "", created_at=now) for c in fresh if c.endpoint
            ],
            cursor=json.dumps({"state": state_name, "checkpoints": len(saved), "stats": seen["stats"] or bool(stats)}),
        )
        tuned = job.tuned_model.endpoint if job.tuned_model else None
        return (
            ProviderJob(
                status=state,
                base_model=job.base_model or self.options.model,
                fine_tuned_model=tuned if state == JobStatus.SUCCEEDED else None,
                trained_tokens=mapping.billable_tokens(job),
                error=(job.error.message if job.error else None) or "Vertex reports the job failed"
                if state == JobStatus.FAILED
                else None,
            ),
            updates,
        )

    def cancel(self, provider_job_id: str) -> None:
        self._call("cancel tuning job", lambda: self.genai.tunings.cancel(name=provider_job_id))

    # inference ---------------------------------------------------------------------------------------

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        from google.genai import types

        system = "\n".join(m.content or "" for m in messages if m.role == "system")
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content or "")])
            for m in messages
            if m.role in ("user", "assistant")
        ]
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=params.max_new_tokens,
            temperature=params.temperature,
            seed=params.seed,
        )
        response = self._call(
            "generate content",
            lambda: self.genai.models.generate_content(model=model, contents=contents, config=config),
        )
        usage = response.usage_metadata
        return Completion(
            text=response.text or "",
            input_tokens=usage.prompt_token_count if usage else None,
            output_tokens=usage.candidates_token_count if usage else None,
        )


@cache
def _http_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, connection failures) of every HTTP stack google-genai and google-cloud-storage run on."""
    import httpx
    import requests

    timeouts: list[type[BaseException]] = [httpx.TimeoutException, requests.Timeout, TimeoutError]
    unreachable: list[type[BaseException]] = [httpx.TransportError, requests.ConnectionError, ConnectionError]
    try:  # google-genai 2+ sends through httpx2
        import httpx2

        timeouts.append(httpx2.TimeoutException)
        unreachable.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(timeouts), tuple(unreachable)


def _loopback(url: str) -> bool:
    from fto.orchestrator.network import is_loopback

    return is_loopback(url)

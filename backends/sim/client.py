"""The sim backend's client: jobs, polls and chat against the simulated provider, over real HTTP."""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from fto.backends.base import Backend, BackendOptions, GenerationParams, PreparedData, UploadedData
from fto.orchestrator.errors import BackendError, ConfigError
from fto.schemas import (
    Completion,
    JobEvent,
    JobListing,
    JobSpec,
    JobStatus,
    ListedJob,
    Message,
    Metric,
    ProviderJob,
    ProviderUpdates,
    Record,
)

LIST_PAGE = 1000  # jobs per list request
if TYPE_CHECKING:  # imported at the first request: `fto status` builds this backend and needs neither
    import aiohttp
    import httpx

STATUSES = {s.value: s for s in JobStatus} | {"validating_files": JobStatus.VALIDATING}


class SimOptions(BackendOptions):
    """The `sim` section of a job file: where the simulated provider listens, and how to poll it."""

    model: str = "sim-base"
    url: str = Field(default_factory=lambda: os.environ.get("FTO_SIM_URL", "http://127.0.0.1:8765"))
    duration: float | None = Field(default=None, gt=0, description="seconds a job takes (default: the server's)")
    timeout: float = Field(default=1.0, gt=0, description="seconds to wait for one request")
    min_poll_interval: float = Field(default=0.5, gt=0)
    max_poll_interval: float = Field(default=2.0, gt=0)
    max_concurrency: int = Field(default=16, gt=0)
    max_requests_per_second: float = Field(default=2000.0, gt=0)
    batch_poll: bool = Field(default=True, description="poll through the list endpoint: many jobs per request")
    list_news: bool = Field(
        default=True,
        description="listings carry each job's events and metrics (as Together's do); off: a job whose listing "
        "changed is asked itself (as OpenAI's list needs)",
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class SimBackend(Backend[SimOptions]):
    """A client of the simulated provider (`fto sim serve`), over real HTTP."""

    Options: ClassVar[type[BackendOptions]] = SimOptions

    def __init__(self, name: str, options: SimOptions):
        super().__init__(name, options)
        o = options
        self.min_poll_interval, self.max_poll_interval = o.min_poll_interval, o.max_poll_interval
        self.max_concurrency, self.max_requests_per_second = o.max_concurrency, o.max_requests_per_second
        self.batch_poll = o.batch_poll
        # Polling thousands of jobs: aiohttp's client costs a small fraction of httpx's per request.
        self._session: aiohttp.ClientSession | None = None

    @functools.cached_property
    def _client(self) -> httpx.Client:
        """Made at the first request: `fto status` builds a backend per section only to read its poll interval.
        One TLS context serves every client: building one reads the system's CA bundle (~20 ms)."""
        import httpx

        return httpx.Client(base_url=self.options.url, timeout=self.options.timeout, verify=_tls())

    @property
    def provider_key(self) -> str:
        return f"sim {self.options.url.rstrip('/')}/"

    # requests -----------------------------------------------------------------------------------------

    def _check(self, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        """An answer's JSON, or the error it means (429 and 5xx worth retrying)."""
        if status == 429:
            retry_after = float(headers.get("retry-after", "1"))
            raise BackendError(
                "rate limited (429)", backend=self.name, status_code=429, retryable=True, retry_after=retry_after
            )
        if status >= 500:
            raise BackendError(f"server error ({status})", backend=self.name, status_code=status, retryable=True)
        if status >= 400:
            try:
                message = json.loads(body).get("error", {}).get("message") or body.decode(errors="replace")
            except (ValueError, AttributeError):
                message = body.decode(errors="replace")
            raise BackendError(f"{message} ({status})", backend=self.name, status_code=status)
        return json.loads(body)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise BackendError(f"{method} {path} timed out", backend=self.name, retryable=True) from None
        except httpx.TransportError as exc:
            raise BackendError(f"cannot reach {self.options.url}: {exc}", backend=self.name, retryable=True) from None
        return self._check(response.status_code, response.headers, response.content)

    # the interface ------------------------------------------------------------------------------------

    def prepare(
        self, spec: JobSpec, train: Sequence[Record], validation: Sequence[Record], workdir: Path
    ) -> PreparedData:
        return PreparedData.write(train, [], workdir, "chat")

    def upload(self, prepared: PreparedData) -> UploadedData:
        return UploadedData(train_file=self._request("POST", "/v1/files", content=prepared.train.read_bytes())["id"])

    def check(self, spec: JobSpec) -> None:
        """The simulated provider must be running: said in a second, before anything is recorded."""
        super().check(spec)
        import httpx

        try:
            self._client.get("/v1/stats", timeout=1.0)
        except httpx.TransportError:
            raise ConfigError(
                f"no simulated provider answers at {self.options.url}: start it with `fto sim serve`",
                field=f"backends.{self.name}.url",
            ) from None

    def has_files(self, uploaded: UploadedData) -> bool:
        try:
            self._request("GET", f"/v1/files/{uploaded.train_file}")
        except BackendError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        body: dict[str, Any] = {
            "model": self.options.model,
            "training_file": uploaded.train_file,
            "metadata": {"fto_job_id": job_id},
        }
        if self.options.duration:
            body["duration"] = self.options.duration
        return self._request("POST", "/v1/jobs", json=body)["id"]

    def find(self, job_id: str) -> str | None:
        found = self._request("GET", "/v1/jobs", params={"fto_job_id": job_id})["data"]
        return found[0]["id"] if found else None

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.poll(provider_job_id, None)[0]

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        return self._convert(self._request("GET", f"/v1/jobs/{provider_job_id}", params=_params(cursor)), cursor)

    async def apoll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        return self._convert(await self._aget(f"/v1/jobs/{provider_job_id}", _params(cursor)), cursor)

    async def alist(self, changed_since: str | None, page: str | None, cursors: Mapping[str, str | None]) -> JobListing:
        params: dict[str, str | int] = {"limit": LIST_PAGE}
        if self.options.list_news:
            params["expand"] = "news"
        if changed_since is not None:
            params["updated_after"] = changed_since
        if page is not None:
            params["after"] = page
        data = await self._aget("/v1/jobs", params)
        items = data["data"]
        jobs = {
            item["id"]: ListedJob(
                state=self._state(item),
                changed=repr(item["updated_at"]),
                updates=self._listed_news(item, cursors[item["id"]]),
            )
            for item in items
            if item["id"] in cursors  # the jobs this poller watches
        }
        last = items[-1]["id"] if data["has_more"] and items else None
        return JobListing(jobs=jobs, next_page=last, as_of=repr(data["as_of"]))

    async def _aget(self, path: str, params: dict[str, Any]) -> Any:
        """A GET on the polling session (aiohttp: it costs a small fraction of httpx's per request)."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                base_url=self.options.url.rstrip("/"),
                connector=aiohttp.TCPConnector(limit=self.max_concurrency + 1),  # the workers and the listing
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            )
        try:
            async with self._session.get(path, params=params) as response:
                status, headers, body = response.status, response.headers, await response.read()
        except TimeoutError:
            raise BackendError(f"GET {path} timed out", backend=self.name, retryable=True) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"cannot reach the provider: {exc}", backend=self.name, retryable=True) from None
        return self._check(status, headers, body)

    def _state(self, data: dict[str, Any]) -> ProviderJob:
        return ProviderJob(
            status=STATUSES[data["status"]],
            base_model=self.options.model,
            fine_tuned_model=data.get("fine_tuned_model"),
            trained_tokens=data.get("trained_tokens"),
            error=data.get("error"),
        )

    def _convert(self, data: dict[str, Any], cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """The provider's objects, converted here at the edge into ours."""
        return self._state(data), self._news(data, cursor)

    def _news(self, data: dict[str, Any], cursor: str | None) -> ProviderUpdates:
        """Events and metrics after `cursor` (a job's own answer starts there)."""
        seen_events, seen_metrics = _split(cursor)
        events = [
            JobEvent(created_at=datetime.now(UTC), level=e["level"], message=e["message"]) for e in data["events"]
        ]
        metrics = [Metric(step=m["step"], total_steps=m["total_steps"], loss=m["loss"]) for m in data["metrics"]]
        next_cursor = f"{seen_events + len(events)}:{seen_metrics + len(metrics)}"
        return ProviderUpdates(events=events, metrics=metrics, cursor=next_cursor)

    def _listed_news(self, item: dict[str, Any], cursor: str | None) -> ProviderUpdates | None:
        """A listing's news after `cursor`. It starts where it says: one that starts after the cursor cannot tell
        what came between (None: the job is asked itself)."""
        if "events" not in item:
            return None
        seen_events, seen_metrics = _split(cursor)
        events_from, metrics_from = item.get("events_from", 0), item.get("metrics_from", 0)
        if events_from > seen_events or metrics_from > seen_metrics:
            return None
        after = {
            "events": item["events"][seen_events - events_from :],
            "metrics": item["metrics"][seen_metrics - metrics_from :],
        }
        return self._news(after, cursor)

    def cancel(self, provider_job_id: str) -> None:
        self._request("POST", f"/v1/jobs/{provider_job_id}/cancel")

    def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        body = {"model": model, "messages": [m.model_dump(exclude_none=True) for m in messages]}
        data = self._request("POST", "/v1/chat/completions", json=body)
        usage = data.get("usage") or {}
        return Completion(
            text=data["choices"][0]["message"]["content"],
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )

    async def aclose(self) -> None:
        """Close the asynchronous polling session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _split(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    events, metrics = cursor.split(":")
    return int(events), int(metrics)


def _params(cursor: str | None) -> dict[str, int]:
    events, metrics = _split(cursor)
    return {"after_event": events, "after_metric": metrics}

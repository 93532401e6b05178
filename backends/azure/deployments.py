"""Azure's deployments (the management plane): a fine-tuned model answers only once it is deployed, and a
deployment bills by the hour while it exists, so fto creates one when eval needs it and deletes it after.

`PUT …/accounts/{account}/deployments/{name}` is long-running: the deployment is read until its
provisioningState is Succeeded (or Failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from fto.backends.sdk_errors import retry_after
from fto.orchestrator.errors import BackendError
from fto.orchestrator.secrets import redact

PENDING = {"Accepted", "Creating", "Moving"}


class Deployments:
    """One Azure OpenAI resource's deployments, through Azure Resource Manager's REST API."""

    def __init__(
        self,
        *,
        url: str,
        subscription_id: str,
        resource_group: str,
        account: str,
        api_version: str,
        token: Callable[[], str],
        backend: str,
        timeout: float = 60.0,
    ):
        self.root = (
            f"{url.rstrip('/')}/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{account}/deployments"
        )
        self.api_version = api_version
        self.token = token
        self.backend = backend
        self.timeout = timeout

    def get(self, name: str) -> dict[str, Any] | None:
        """The deployment, or None when there is none of that name."""
        answer = self._request("GET", name)
        return None if answer.status_code == 404 else answer.json()

    def create(self, name: str, model: str, sku: str, capacity: int, tags: dict[str, str]) -> dict[str, Any]:
        """Start deploying `model` as `name` (answers at once; `wait` follows it to the end)."""
        body = {
            "sku": {"name": sku, "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
            "tags": tags,
        }
        created: dict[str, Any] = self._request("PUT", name, json=body).json()
        return created

    def wait(self, name: str, seconds: float, interval: float = 5.0) -> dict[str, Any]:
        """Read the deployment until it is ready; raises when it failed, vanished or took longer than `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.get(name)
            state = ((found or {}).get("properties") or {}).get("provisioningState")
            if found is None:
                raise BackendError(f"deployment {name} disappeared while it was being created", backend=self.backend)
            if state == "Succeeded":
                return found
            if state not in PENDING:
                raise BackendError(f"deployment {name} ended {state}", backend=self.backend)
            if time.monotonic() > deadline:
                raise BackendError(
                    f"deployment {name} was still {state} after {seconds:.0f} s", backend=self.backend, retryable=True
                )
            time.sleep(interval)

    def delete(self, name: str) -> bool:
        """Delete the deployment; False when there was none."""
        return self._request("DELETE", name).status_code != 204

    def _request(self, method: str, name: str, json: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        try:
            answer = httpx.request(
                method,
                f"{self.root}/{name}",
                params={"api-version": self.api_version},
                json=json,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            raise BackendError(f"{method} deployment {name}: cannot reach Azure: {exc}", backend=self.backend,
                               retryable=True) from None  # fmt: skip
        if answer.status_code == 404 and method in ("GET", "DELETE"):
            return answer
        if answer.status_code >= 400:
            code = answer.status_code
            raise BackendError(
                redact(f"{method} deployment {name}: {_message(answer)} ({code})"),
                backend=self.backend,
                status_code=code,
                retryable=code in (408, 409, 429) or code >= 500,
                retry_after=retry_after(answer.headers.get("retry-after")) if code == 429 else None,
            )
        return answer


def _message(answer: httpx.Response) -> str:
    """Azure's error message (ErrorResponse {error: {code, message}}), else the body's start."""
    try:
        error = answer.json().get("error") or {}
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except ValueError:
        return answer.text[:200]

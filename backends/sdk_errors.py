"""Failures of Stainless-generated SDKs (openai, together, fireworks-ai share their shape) turned into ours.

Each SDK defines the same exception classes in its own module; `call` takes that module, so one backend's
exceptions are never mistaken for another's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from fto.orchestrator.errors import BackendError
from fto.orchestrator.secrets import redact

T = TypeVar("T")
NOT_TODAY = {"daily_rate_limit_exceeded"}  # a daily limit does not lift on retry the same day


def call(sdk: ModuleType, backend: str, what: str, fn: Callable[[], T]) -> T:
    """Run one SDK call; its failures become BackendErrors: retryable or not, with the wait the provider asked."""
    try:
        return fn()
    except sdk.APITimeoutError:
        raise BackendError(f"{what}: timed out", backend=backend, retryable=True) from None
    except sdk.APIConnectionError as exc:
        raise BackendError(f"{what}: cannot reach the API: {exc}", backend=backend, retryable=True) from None
    except sdk.APIStatusError as exc:
        code = exc.status_code
        detail, body_code = _detail(exc.body)
        retryable = (code in (408, 409, 429) or code >= 500) and body_code not in NOT_TODAY
        raise BackendError(
            redact(f"{what}: {detail or exc.message} ({code})"),
            backend=backend,
            status_code=code,
            retryable=retryable,
            retry_after=retry_after(exc.response.headers.get("retry-after")) if code == 429 else None,
        ) from None
    except sdk.APIResponseValidationError as exc:
        raise BackendError(f"{what}: malformed response: {exc}", backend=backend, retryable=True) from None
    except json.JSONDecodeError as exc:
        raise BackendError(f"{what}: malformed response: {exc}", backend=backend, retryable=True) from None


def _detail(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from an error body: `{"message"}`, `{"error": {"message"}}` or `{"error": "text"}`."""
    if not isinstance(body, dict):
        return None, None
    inner = body.get("error")
    if isinstance(inner, dict):
        body = inner
    elif isinstance(inner, str):
        return inner, None
    message = body.get("message")
    code = body.get("code")
    return (str(message) if message else None), (str(code) if code else None)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds form), or None."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None

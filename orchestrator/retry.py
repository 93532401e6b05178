"""The one retry policy for provider calls: transient errors only, backing off, honouring Retry-After.

Submission and the poller both use it. Where fto retries, the SDKs' own retries are off (each backend sets them
to 0 by default), so one failing provider call costs at most `ATTEMPTS` requests: bounded and documented.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from fto.orchestrator.errors import BackendError

T = TypeVar("T")
ATTEMPTS = 8  # requests per call at most: the first and 7 retries
_backoff = wait_exponential_jitter(initial=0.2, max=10, jitter=0.2)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.retryable


def _wait(state: RetryCallState) -> float:
    """The provider's Retry-After when it gave one, else exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome else None
    asked = getattr(exc, "retry_after", None)
    return float(asked) if asked is not None else _backoff(state)


def _policy() -> dict[str, object]:
    return {
        "retry": retry_if_exception(_transient),
        "wait": _wait,
        "stop": stop_after_attempt(ATTEMPTS),
        "reraise": True,
    }


def call(fn: Callable[[], T]) -> T:
    """`fn()`, retried while it fails with a retryable BackendError."""
    for attempt in Retrying(**_policy()):  # type: ignore[arg-type]
        with attempt:
            return fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def acall(fn: Callable[[], Awaitable[T]]) -> T:
    """`await fn()`, retried while it fails with a retryable BackendError."""
    async for attempt in AsyncRetrying(**_policy()):  # type: ignore[arg-type]
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")

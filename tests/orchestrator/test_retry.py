"""The one retry policy: transient errors only, a bounded number of attempts, the provider's Retry-After."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from fto.orchestrator import retry
from fto.orchestrator.errors import BackendError


def test_a_provider_that_always_fails_costs_a_bounded_number_of_requests():
    calls = []

    def failing() -> None:
        calls.append(time.monotonic())
        raise BackendError("server error (500)", backend="x", retryable=True, retry_after=0.0)

    with pytest.raises(BackendError, match="500"):
        retry.call(failing)
    assert len(calls) == retry.ATTEMPTS


def test_errors_that_cannot_succeed_are_not_retried():
    calls = []

    def refused() -> None:
        calls.append(1)
        raise BackendError("bad request (400)", backend="x", retryable=False)

    with pytest.raises(BackendError):
        retry.call(refused)
    assert calls == [1]


def test_retry_after_is_the_wait_and_the_async_twin_behaves_the_same():
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise BackendError("rate limited (429)", backend="x", retryable=True, retry_after=0.15)
        return "ok"

    assert asyncio.run(retry.acall(flaky)) == "ok"
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) == 3 and all(gap >= 0.14 for gap in gaps)

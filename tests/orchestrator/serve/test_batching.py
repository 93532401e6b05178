"""Concurrent chat requests are generated in batches, each reply going back to its own request."""

from __future__ import annotations

import asyncio

import pytest

from fto.backends.base import GenerationParams
from fto.backends.sim.client import SimBackend, SimOptions
from fto.orchestrator.errors import BackendError
from fto.orchestrator.serve.batching import Batcher
from fto.schemas import Message
from tests.backends.sim.conftest import SimServer

pytestmark = pytest.mark.slow  # generates with a model


class CountingSim(SimBackend):
    """The sim provider's client, noting the size of each batch it is handed."""

    batches: list[int]

    def complete_many(self, model, prompts, params):  # type: ignore[no-untyped-def]
        self.batches.append(len(prompts))
        return super().complete_many(model, prompts, params)


@pytest.fixture
def sim():
    server = SimServer()
    backend = CountingSim("sim", SimOptions(url=server.url))
    backend.batches = []
    yield backend
    server.stop()


def test_concurrent_requests_share_batches_and_get_their_own_replies(sim):
    batcher = Batcher(sim, max_batch=8)
    params = GenerationParams(max_new_tokens=4)

    async def ask_all() -> list[str]:
        asks = [batcher.complete("sim-base", [Message(role="user", content=f"q{i}")], params) for i in range(20)]
        return [reply.text for reply in await asyncio.gather(*asks)]

    assert asyncio.run(ask_all()) == [f"echo: q{i}" for i in range(20)]
    assert sim.batches == [8, 8, 4]  # not 20 single calls


def test_different_settings_never_share_a_batch_and_errors_reach_every_request(sim):
    batcher = Batcher(sim)

    async def ask() -> list[object]:
        asks = [
            batcher.complete("sim-base", [Message(role="user", content="a")], GenerationParams(temperature=0.0)),
            batcher.complete("sim-base", [Message(role="user", content="b")], GenerationParams(temperature=0.7)),
        ]
        return await asyncio.gather(*asks, return_exceptions=True)

    async def both() -> tuple[list[object], list[object]]:
        answered = await ask()
        sim._client.base_url = "http://127.0.0.1:9"  # nothing listens there: the batches fail
        return answered, await ask()

    answered, failed = asyncio.run(both())
    assert [r.text for r in answered] == ["echo: a", "echo: b"]  # type: ignore[attr-defined]
    assert sorted(sim.batches) == [1, 1, 1, 1]
    assert all(isinstance(r, BackendError) for r in failed)

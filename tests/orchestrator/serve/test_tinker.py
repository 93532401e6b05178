"""`fto serve` speaks Tinker's training-loop API: the unmodified tinker SDK trains, samples, saves and resumes on
the local trainer, every request and answer checked by the SDK's own models (tests/tinker_proxy.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

tinker = pytest.importorskip("tinker")
from tinker import types  # noqa: E402

from fto import loop  # noqa: E402
from fto.orchestrator.store import Store  # noqa: E402
from tests.serving import ServeProcess  # noqa: E402
from tests.tinker_proxy import TinkerProxy  # noqa: E402

pytestmark = pytest.mark.slow
ROWS = [
    [{"role": "user", "content": f"What class is a {animal}?"}, {"role": "assistant", "content": kind}]
    for animal, kind in [
        ("dog", "mammal"),
        ("eagle", "bird"),
        ("shark", "fish"),
        ("frog", "amphibian"),
        ("cat", "mammal"),
        ("snake", "reptile"),
    ]
]


def _batch(tokenizer) -> list[types.Datum]:
    data = [loop.chat_datum(tokenizer, row) for row in ROWS]
    total = sum(float(d.inputs["weights"].sum()) for d in data)
    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(d.tokens),
            loss_fn_inputs={
                "target_tokens": d.inputs["target_tokens"].tolist(),
                "weights": (d.inputs["weights"] / total).tolist(),
            },
        )
        for d in data
    ]


def _steps(client, batch, count: int) -> list[float]:
    losses = []
    for _ in range(count):
        backward = client.forward_backward(batch, "cross_entropy")
        step = client.optim_step(types.AdamParams(learning_rate=3e-3))  # sent before waiting, as Tinker recommends
        losses.append(backward.result().metrics["loss:sum"])
        step.result()
    return losses


def _status(home: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "fto.orchestrator", "status", "--json"],
        env={**os.environ, "FTO_HOME": str(home)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode in (0, 1, 2), out.stderr  # succeeded, failed, still running
    return json.loads(out.stdout)


@pytest.mark.timeout(300)
def test_the_tinker_sdk_trains_samples_and_resumes_after_a_crash(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    server = ServeProcess(home)
    try:
        with TinkerProxy(server.url.removesuffix("/v1")) as proxy:
            service = tinker.ServiceClient(base_url=proxy.url, api_key="tml-any-key-on-loopback")
            client = service.create_lora_training_client(base_model="embedded:tiny-llama", rank=8, seed=0)
            tokenizer = client.get_tokenizer()
            batch = _batch(tokenizer)
            before = _steps(client, batch, 20)
            assert before[-1] < 0.6 * before[0], before  # 20 rounds lower the loss

            saved = client.save_state("after-20").result().path
            assert saved.startswith("tinker://") and saved.endswith("/weights/after-20")
            sampler = client.save_weights_and_get_sampling_client()
            prompt = tokenizer.apply_chat_template(ROWS[0][:1], tokenize=False, add_generation_prompt=True)
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            params = types.SamplingParams(max_tokens=12, temperature=0.0)
            reply = sampler.sample(types.ModelInput.from_ints(ids), 2, params).result()
            assert len(reply.sequences) == 2
            text = tokenizer.decode(reply.sequences[0].tokens)
            assert text.strip(), reply
            assert len(reply.sequences[0].logprobs) == len(reply.sequences[0].tokens)

            # One more step that the saved state does not hold, then the server dies.
            lost = _steps(client, batch, 1)
            job_id = saved.removeprefix("tinker://").split("/")[0]
            assert proxy.violations == []
            seen = set(proxy.seen)
    finally:
        server.process.kill()  # a crash: no clean shutdown
        server.process.wait(timeout=10)
    [job] = [j for j in _status(home) if j["id"] == job_id]
    assert job["status"] == "failed"  # the server that held it is gone

    server = ServeProcess(home)
    try:
        with TinkerProxy(server.url.removesuffix("/v1")) as proxy:
            service = tinker.ServiceClient(base_url=proxy.url, api_key="tml-any-key-on-loopback")
            client = service.create_training_client_from_state_with_optimizer(saved)
            after = _steps(client, batch, 5)
            # The curve goes on from step 20, not from scratch: the first loss is step 21's again.
            assert after[0] == pytest.approx(lost[0], rel=0.02)
            assert after[-1] < after[0]
            assert proxy.violations == []
            seen |= set(proxy.seen)
            assert seen >= {
                "create_session",
                "create_model",
                "get_info",
                "forward_backward",
                "optim_step",
                "save_weights",
                "load_weights",
                "save_weights_for_sampler",
                "asample",
                "retrieve_future",
            }
        [job] = [j for j in _status(home) if j["id"] == job_id]
        assert job["status"] == "running"  # the same job, reopened
        monkeypatch.setenv("FTO_HOME", str(home))
        steps = [m.step for m in Store().metrics(job_id)]
        assert steps == list(range(1, 26))  # one curve: step 21 trained again after the crash, then 22–25
    finally:
        server.stop()


@pytest.mark.timeout(240)
def test_bad_requests_are_typed_4xx_errors_and_change_nothing(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "home")
    try:
        with TinkerProxy(server.url.removesuffix("/v1")) as proxy:
            service = tinker.ServiceClient(base_url=proxy.url, api_key="tml-any-key-on-loopback")
            with pytest.raises(tinker.BadRequestError, match="not offered here"):  # the client is a future of one
                service.create_lora_training_client(base_model="meta-llama/Nope-70B", rank=8).get_info()
            client = service.create_lora_training_client(base_model="embedded:tiny-llama", rank=8)
            good = _batch(client.get_tokenizer())
            first = client.forward(good, "cross_entropy").result().metrics["loss:sum"]

            short = types.Datum(model_input=types.ModelInput.from_ints([5, 6, 7]),
                                loss_fn_inputs={"target_tokens": [6, 7], "weights": [1.0, 1.0]})  # fmt: skip
            with pytest.raises(tinker.BadRequestError, match="shape"):
                client.forward_backward([short], "cross_entropy").result()
            unknown = types.Datum(model_input=types.ModelInput.from_ints([5, 10**6]),
                                  loss_fn_inputs={"target_tokens": [6, 7], "weights": [1.0, 1.0]})  # fmt: skip
            with pytest.raises(tinker.BadRequestError, match="outside the vocabulary"):
                client.forward_backward([unknown], "cross_entropy").result()
            with pytest.raises(tinker.BadRequestError, match="not offered"):
                client.forward_backward(good, "cispo").result()
            with pytest.raises(tinker.BadRequestError, match="not a valid name"):  # never a path on the server
                client.save_state("../../escape").result()
            with pytest.raises(tinker.BadRequestError, match="not a tinker://"):
                client.load_state("tinker://../weights/x").result()
            with pytest.raises(tinker.NotFoundError, match="no saved"):
                client.load_state("tinker://job-nope/weights/x").result()

            asyncio.run(_unknown_ids(proxy.url))
            # Nothing above reached the model: the same data has the same loss, and at once (the refused
            # requests' places in the model's order were given up, not waited for).
            started = time.monotonic()
            again = client.forward(good, "cross_entropy").result().metrics["loss:sum"]
            assert time.monotonic() - started < 10
            assert again == pytest.approx(first, rel=1e-5)
            assert proxy.violations == []
    finally:
        server.stop()


async def _unknown_ids(url: str) -> None:
    """Ids that do not exist, through the SDK's own REST client: NotFoundError each."""
    from tinker._client import AsyncTinker

    raw = AsyncTinker(base_url=url, api_key="tml-any-key-on-loopback", max_retries=0)
    with pytest.raises(tinker.NotFoundError, match="does not exist"):
        await raw.service.session_heartbeat(session_id="fto-no-such-session")
    with pytest.raises(tinker.NotFoundError, match="does not exist"):
        await raw.training.optim_step(request=types.OptimStepRequest(
            model_id="fto-nope:train:0", adam_params=types.AdamParams(), seq_id=1))  # fmt: skip
    with pytest.raises(tinker.NotFoundError, match="does not exist"):
        await raw.futures.retrieve(request=types.FutureRetrieveRequest(request_id="req-nope"))
    await raw.close()


@pytest.mark.timeout(240)
def test_importance_sampling_and_a_custom_loss_train_through_the_sdk(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "home")
    try:
        with TinkerProxy(server.url.removesuffix("/v1")) as proxy:
            service = tinker.ServiceClient(base_url=proxy.url, api_key="tml-any-key-on-loopback")
            client = service.create_lora_training_client(base_model="embedded:tiny-llama", rank=8)
            batch = _batch(client.get_tokenizer())
            # importance_sampling with the current log-probs as the sampler's: the ratio is 1, so the loss is −ΣA.
            logprobs = [
                o["logprobs"].to_numpy() for o in client.forward(batch, "cross_entropy").result().loss_fn_outputs
            ]
            rollouts = [
                types.Datum(model_input=d.model_input, loss_fn_inputs={
                    "target_tokens": d.loss_fn_inputs["target_tokens"], "logprobs": lp.tolist(),
                    "advantages": np.asarray(d.loss_fn_inputs["weights"].to_numpy() > 0, dtype=np.float32).tolist()})
                for d, lp in zip(batch, logprobs, strict=True)
            ]  # fmt: skip
            out = client.forward_backward(rollouts, "importance_sampling").result()
            advantages = sum(float(np.sum(r.loss_fn_inputs["advantages"].to_numpy())) for r in rollouts)
            assert out.metrics["loss:sum"] == pytest.approx(-advantages, rel=1e-3)
            client.optim_step(types.AdamParams(learning_rate=1e-2)).result()

            def mean_nll(data, logprobs_list):  # runs in the SDK; fto serve sees the gradient as weights
                import torch

                loss = -torch.cat([lp[: len(d.loss_fn_inputs["weights"].data)] for d, lp in
                                   zip(data, logprobs_list, strict=True)]).mean()  # fmt: skip
                return loss, {"nll": float(loss.detach())}

            losses = []
            for _ in range(6):
                done = client.forward_backward_custom(batch, mean_nll).result()
                client.optim_step(types.AdamParams(learning_rate=3e-3)).result()
                losses.append(done.metrics["nll"])
            assert losses[-1] < losses[0]
            assert proxy.violations == []
    finally:
        server.stop()

"""`fto plan`'s memory estimate for local training against the peak the trainer records when it ends (resident
memory on a CPU): within 15%, for the embedded model and for model folders of three sizes (SmolLM2-135M is checked
in tests/examples/test_smollm2.py, on the run that test makes anyway)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, run_fto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def measured_and_planned(job: Path) -> tuple[float, float]:
    """The finished job's recorded peak, and what `fto plan` says the same job needs (bytes)."""
    store = Store()
    [job_record] = store.jobs(store.experiments()[0].id)
    [peak] = [e.data["peak_memory_bytes"] for e in store.events(job_record.id) if "peak_memory_bytes" in e.data]
    planned = json.loads(run_fto("plan", str(job), "--backend", "local", "--json").stdout)
    return float(peak), planned["rows"][0]["memory"]["needed_gib"]["total"] * 1024**3


def test_the_estimate_is_within_15_percent_of_the_measured_peak(write_job, fto_home):
    job = write_job({"eval": None, "hyperparameters": {"epochs": 1}})
    assert run_fto("run", str(job), "--backend", "local", timeout=300).returncode == 0
    peak, estimate = measured_and_planned(job)
    assert abs(estimate - peak) / peak < 0.15, f"estimate {estimate / 1024**3:.2f} GiB, measured {peak / 1024**3:.2f}"

    # The dashboard shows the plan kept at submit beside what the job took.
    from starlette.testclient import TestClient

    from fto.orchestrator.ui.app import UiConfig, create_ui_app

    store = Store()
    experiment = store.experiments()[0]
    page = TestClient(create_ui_app(UiConfig()), base_url="http://127.0.0.1").get(f"/experiments/{experiment.id}")
    table = page.text.split('<table id="plan">')[1].split("</table>")[0]
    [job_record] = store.jobs(experiment.id)
    assert job_record.id in table
    assert f"{estimate / 1024**3:,.2f} / {peak / 1024**3:,.2f}" in table  # memory: plan / measured peak
    assert f"/ {job_record.trained_tokens:,}" in table  # tokens: plan / actual

    # --probe: tokens/s from a few real steps, of the order the job itself trained at.
    probed = json.loads(run_fto("plan", str(job), "--backend", "local", "--probe", "--json").stdout)["rows"][0]
    assert probed["throughput"]["basis"].startswith("probe") and probed["expected_hours"] > 0
    trained = sorted(m.tokens_per_second for m in store.metrics(job_record.id) if m.tokens_per_second)
    ratio = probed["throughput"]["tokens_per_second"] / trained[len(trained) // 2]
    assert 1 / 3 < ratio < 3, ratio


@pytest.mark.parametrize(("hidden", "layers"), [(256, 4), (512, 8), (768, 12)])
def test_the_estimate_holds_across_model_sizes(write_job, fto_home, tmp_path, hidden, layers):
    """Llama folders of about 6M, 40M and 110M parameters (the embedded model's family, its tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from fto.backends.local import embedded

    texts = [m["content"] for line in ANIMALS.read_text().splitlines() for m in json.loads(line)["messages"]]
    tokenizer = embedded.build_tokenizer(texts)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path / f"llama-{hidden}x{layers}"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    subset = tmp_path / "animals-96.jsonl"
    subset.write_text("\n".join(ANIMALS.read_text().splitlines()[:96]) + "\n")
    job = write_job({"eval": None, "data": {"train": str(subset), "validation": None},
                     "hyperparameters": {"epochs": 1}, "backends": {"local": {"model": str(folder)}}})  # fmt: skip
    assert run_fto("run", str(job), "--backend", "local", timeout=300).returncode == 0
    peak, estimate = measured_and_planned(job)
    assert abs(estimate - peak) / peak < 0.15, f"estimate {estimate / 1024**3:.2f} GiB, measured {peak / 1024**3:.2f}"

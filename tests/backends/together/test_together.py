"""The `together` backend through the real `together` SDK against a loopback Together on 127.0.0.1 whose every
request and answer is checked against Together's OpenAPI spec: SFT and DPO, limits refused before upload, the
job's whole lifecycle, faults, a crash-safe create, cancel, and inference for eval."""

from __future__ import annotations

import json

import pytest

from fto.backends import registry
from fto.orchestrator.data.load import load_splits
from fto.orchestrator.errors import UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.conftest import TOGETHER_KEY
from tests.backends.local.jobs import wait_for
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # the CLI end to end, against a server


def _job(write_job, api, **section):
    return write_job(
        {
            "backends": {"together": {"base_url": api.base_url, **section}},
            "eval": {"scorers": ["exact_match", "token_f1"]},
        }
    )


def _backend(api, spec: JobSpec, **options):
    return registry.create("together", BackendSection.model_validate({"base_url": api.base_url, **options}))


def test_run_end_to_end_with_metrics_checkpoints_price_and_eval(together_api, write_job, fto_home):
    result = run_fto("run", str(_job(write_job, together_api)), "--backend", "together", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.fine_tuned_model == f"acct/Meta-Llama-3.1-8B-Instruct-Reference-quickstart-{job.id}"
    [created] = together_api.jobs.values()
    sent = created.request
    assert sent["suffix"] == f"quickstart-{job.id}"  # our id rides in the suffix: `find` needs nothing else
    assert sent["n_epochs"] == 8 and sent["batch_size"] == 16 and sent["learning_rate"] == 3e-3
    assert sent["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                     "lora_trainable_modules": "all-linear"}  # fmt: skip
    assert not any(key.startswith("wandb") for key in sent)
    assert sent["validation_file"] and sent["random_seed"] == 0

    steps = [(m.step, m.loss, m.valid_loss) for m in store.metrics(job.id)]
    assert [s for s, _, _ in steps] == [1, 2, 3] and steps[-1][1] < steps[0][1] and steps[0][2] is not None
    messages = [e.message for e in store.events(job.id)]
    assert any(m.startswith("Together estimates $") for m in messages)  # the provider's own quote
    assert any("training_start" in m for m in messages) and any("job_complete" in m for m in messages)
    assert len(messages) == len(set(messages))  # nothing recorded twice across polls
    assert f"checkpoint at step 3: {created.id}:3" in messages

    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("together/fine-tuned", "exact_match")] >= 0.4  # recalls what it was taught
    assert scores[("together/base", "exact_match")] <= 0.1
    compared = json.loads(run_fto("compare", experiment.id, "--json").stdout)
    tuned = next(m for m in compared["models"] if m["target"]["label"] == "together/fine-tuned")
    assert tuned["usage"]["cost_usd"] > 0  # tokens from Together's usage, priced from the backend's table
    for path in fto_home.rglob("*"):  # the key reached Together and nowhere else
        assert not path.is_file() or TOGETHER_KEY.encode() not in path.read_bytes(), path


def _preferences(path) -> str:
    """Animal questions with the right class preferred to a wrong one, in OpenAI's preference JSONL."""
    rows = []
    for line in ANIMALS.read_text().splitlines()[:40]:
        messages = json.loads(line)["messages"]
        right = messages[-1]["content"]
        wrong = "fish" if right != "fish" else "bird"
        rows.append(
            {
                "input": {"messages": messages[:-1]},
                "preferred_output": [{"role": "assistant", "content": right}],
                "non_preferred_output": [{"role": "assistant", "content": wrong}],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_dpo_pairs_go_up_in_together_preference_shape(together_api, tmp_path):
    spec = JobSpec.model_validate(
        {
            "name": "prefs",
            "method": "dpo",
            "data": {"train": _preferences(tmp_path / "prefs.jsonl"), "validation": 0.1},
            "hyperparameters": {"beta": 0.2, "epochs": 1},
        }
    )
    backend = _backend(together_api, spec, lora=False, from_checkpoint="ft-earlier:10")
    backend.check(spec)
    data = load_splits(spec)
    prepared = backend.prepare(spec, data.train, data.validation, tmp_path)
    row = json.loads(prepared.train.read_text().splitlines()[0])
    assert set(row) == {"input", "preferred_output", "non_preferred_output"}
    uploaded = backend.upload(prepared)
    provider_id = backend.submit(spec, uploaded, "job-dpo")
    sent = together_api.jobs[provider_id].request
    assert sent["training_method"] == {"method": "dpo", "dpo_beta": 0.2, "dpo_normalize_logratios_by_length": False,
                                       "dpo_reference_free": False}  # fmt: skip
    assert sent["training_type"] == {"type": "Full"}
    assert sent["from_checkpoint"] == "ft-earlier:10" and "model" not in sent  # the SDK sends one or the other
    assert backend.find("job-dpo") == provider_id and backend.find("job-other") is None


@pytest.mark.parametrize(
    ("hyperparameters", "options", "message"),
    [
        ({"epochs": 30}, {}, "epochs = 30 is outside Together's range 1–20"),
        ({"batch_size": 4}, {}, "batch_size = 4 is outside Together's range 8–96"),
        ({"lora": {"r": 128}}, {}, "lora.r = 128 is above Together's 64"),
        ({}, {"model": "no/such-model"}, "not available for fine-tuning"),
    ],
)
def test_what_together_would_refuse_is_refused_before_upload(together_api, write_job, hyperparameters, options,
                                                             message):  # fmt: skip
    job = write_job({"hyperparameters": hyperparameters, "backends": {"together": {"base_url": together_api.base_url,
                                                                                   **options}}})  # fmt: skip
    result = run_fto("submit", str(job), "--backend", "together", timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not together_api.files and not together_api.jobs


def test_n_evals_without_validation_data_is_refused(together_api):
    spec = JobSpec.model_validate({"name": "x", "data": {"train": str(ANIMALS), "validation": None}})
    with pytest.raises(UnsupportedError, match="n_evals needs validation data"):
        _backend(together_api, spec, n_evals=2).check(spec)


def test_faults_429_5xx_timeouts_and_a_lost_create_make_one_job(together_api, write_job):
    faults = together_api.faults
    faults.add("POST", "/v1/files", "429")
    faults.add("POST", r"/v1/fine-tunes/estimate-price", "503")
    faults.add("POST", "/v1/fine-tunes", "lost")  # Together made the job; its answer never arrived
    faults.add("GET", r"/v1/fine-tunes/ft-[^/]+", "slow", seconds=3)  # past the client's timeout
    job = _job(write_job, together_api, timeout=1)
    result = run_fto("run", str(job), "--backend", "together", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not faults.pending  # every fault happened
    assert len(together_api.jobs) == 1  # the retried create found the first job instead of making a second
    store = Store()
    [job_row] = [j for e in store.experiments() for j in store.jobs(e.id)]
    assert job_row.status == JobStatus.SUCCEEDED and job_row.provider_job_id in together_api.jobs


def test_a_job_together_fails_shows_its_message_in_status(together_api, write_job):
    together_api.fail_next_job = "the training file has 3 rows longer than max_seq_length"
    result = run_fto("run", str(_job(write_job, together_api)), "--backend", "together", timeout=200)
    assert result.returncode != 0
    [job] = [j for e in Store().experiments() for j in Store().jobs(e.id)]
    status = run_fto("status", job.id, "--json")
    assert "the training file has 3 rows longer than max_seq_length" in status.stdout
    assert job.status == JobStatus.FAILED


def test_cancel_goes_through_cancel_requested_to_cancelled(together_api, tmp_path):
    spec = JobSpec.model_validate({"name": "c", "data": {"train": str(ANIMALS)}})
    backend = _backend(together_api, spec)
    data = load_splits(spec)
    provider_id = backend.submit(spec, backend.upload(backend.prepare(spec, data.train, [], tmp_path)), "job-c")
    wait_for(backend, provider_id, {JobStatus.RUNNING})
    backend.cancel(provider_id)
    assert together_api.jobs[provider_id].phase == "cancel_requested"
    assert wait_for(backend, provider_id).status == JobStatus.CANCELLED


def test_stats_for_together_labels_its_estimate_and_prices(tmp_path):
    result = run_fto("data", "stats", str(ANIMALS), "--for", "together")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "for together meta-llama/Meta-Llama-3.1-8B-Instruct-Reference" in text
    assert "estimate" in text.lower() and "$0.48/1M tokens" in text


def test_stats_quote_asks_together_its_own_price(together_api, monkeypatch):
    monkeypatch.setenv("TOGETHER_BASE_URL", together_api.base_url)  # the SDK's own variable
    result = run_fto("data", "stats", str(ANIMALS), "--for", "together", "--epochs", "2", "--quote", "--json")
    assert result.returncode == 0, result.stderr
    quoted = json.loads(result.stdout)["provider_quote"]
    [upload] = together_api.files.values()
    tokens = len(upload["content"]) // 4 * 2  # what the loopback Together charges for: bytes / 4 × epochs
    assert quoted == f"Together estimates ${tokens * 0.48 / 1e6:,.2f} for {tokens:,} training tokens"
    assert not together_api.jobs  # a quote starts nothing
    without = run_fto("data", "stats", str(ANIMALS), "--quote")
    assert without.returncode != 0 and "--quote asks a provider: name it with --for" in without.stderr

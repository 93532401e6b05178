"""One job file, six backends, one experiment: `fto run --backend together,fireworks,vertex,bedrock,local` against
loopback Together, Fireworks and Vertex (with a Cloud Storage emulator), moto's Bedrock with a loopback runtime,
and the local trainer; then `fto compare` shows every model, base and fine-tuned, side by side with costs."""

from __future__ import annotations

import json
import threading

import pytest

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.backends.bedrock.servers import BUCKET, ROLE
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # five servers and a local fine-tune

PROVISIONED = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/fto-every"


def _bedrock_finishes_jobs(stop: threading.Event) -> None:
    """Bedrock (moto) keeps jobs InProgress: finish each one, as Bedrock would after training."""
    from moto.backends import get_backend

    jobs = get_backend("bedrock")["123456789012"]["us-west-2"].model_customization_jobs
    while not stop.wait(0.2):
        for job in list(jobs.values()):
            if job.status == "InProgress":
                job.status = "Completed"


def test_the_same_job_file_on_every_provider_and_locally(
    together_api,
    fireworks_api,
    vertex_api,
    aws,
    messages,
    write_job,
    fto_home,
):
    answers = {m[1]["content"]: m[2]["content"] for m in
               (json.loads(line)["messages"] for line in ANIMALS.read_text().splitlines())}  # fmt: skip
    messages.answers[PROVISIONED] = lambda question: answers.get(question, "?")
    job_file = write_job(
        {
            "hyperparameters": {"epochs": 3, "batch_size": 8},
            "backends": {
                "local": {"model": "embedded:tiny-llama"},
                "together": {"base_url": together_api.base_url},
                "fireworks": {
                    "base_url": fireworks_api.base_url,
                    "account_id": "acct",
                    "deployment": "accounts/acct/deployments/d1",
                },
                "vertex": vertex_api.section,
                "bedrock": {
                    "role_arn": ROLE,
                    "s3_bucket": BUCKET,
                    "endpoint_url": aws.url,
                    "runtime_url": messages.url,
                    "inference_model": PROVISIONED,
                    "min_poll_interval": 0.2,
                    "max_poll_interval": 0.5,
                },
            },
            "eval": {"scorers": ["exact_match"], "max_examples": 20},
        }
    )
    stop = threading.Event()
    finisher = threading.Thread(target=_bedrock_finishes_jobs, args=(stop,), daemon=True)
    finisher.start()
    try:
        result = run_fto("run", str(job_file), "--backend", "together,fireworks,vertex,bedrock,local", timeout=600)
    finally:
        stop.set()
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()  # one experiment, one job per backend
    jobs = {job.backend: job for job in store.jobs(experiment.id)}
    assert set(jobs) == {"together", "fireworks", "vertex", "bedrock", "local"}
    assert all(job.status == JobStatus.SUCCEEDED for job in jobs.values())
    compared = json.loads(run_fto("compare", experiment.id, "--json").stdout)
    rows = {row["target"]["label"]: row for row in compared["models"]}
    expected = {f"{name}/{kind}" for name in jobs for kind in ("base", "fine-tuned")}
    assert set(rows) == expected
    for target, row in rows.items():
        assert row["usage"]["cost_usd"] is not None, target  # every model priced (local: 0)
        assert row["usage"]["calls"] == 20
    for hosted in ("together", "fireworks", "vertex", "bedrock"):
        tuned, base = rows[f"{hosted}/fine-tuned"]["scores"], rows[f"{hosted}/base"]["scores"]
        assert tuned["exact_match"]["value"] > base["exact_match"]["value"]
    table = run_fto("compare", experiment.id)
    assert table.returncode == 0 and all(target in table.stdout for target in expected)


def test_the_hosted_example_after_openai_closes_runs_as_one_experiment(
    azure_api, nebius_api, vertex_api, fto_home, tmp_path
):
    """`fto run examples/hosted.yaml --backend azure,nebius,vertex,local`, the example's sections pointed at the
    loopback providers (endpoints and accounts only; models and settings are the example's own)."""
    import yaml

    from tests.conftest import REPO

    example = yaml.safe_load((REPO / "examples" / "hosted.yaml").read_text())
    for name, loopback in (
        ("azure", azure_api.section),
        ("nebius", nebius_api.section),
        ("vertex", vertex_api.section),
    ):
        example["backends"][name] |= {k: v for k, v in loopback.items() if k != "model"}
    example["data"]["train"] = str(ANIMALS)
    example["eval"]["max_examples"] = 10
    job_file = tmp_path / "hosted.yaml"
    job_file.write_text(yaml.safe_dump(example))
    result = run_fto("run", str(job_file), "--backend", "azure,nebius,vertex,local", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()
    jobs = {job.backend: job for job in store.jobs(experiment.id)}
    assert set(jobs) == {"azure", "nebius", "vertex", "local"}
    assert all(job.status == JobStatus.SUCCEEDED for job in jobs.values())
    rows = {
        row["target"]["label"]: row for row in json.loads(run_fto("compare", experiment.id, "--json").stdout)["models"]
    }
    assert set(rows) == {f"{name}/{kind}" for name in jobs for kind in ("base", "fine-tuned")}
    for hosted in ("azure", "nebius", "vertex"):
        assert rows[f"{hosted}/fine-tuned"]["usage"]["cost_usd"] is not None, hosted  # priced from provider.json
        tuned, base = rows[f"{hosted}/fine-tuned"]["scores"], rows[f"{hosted}/base"]["scores"]
        assert tuned["exact_match"]["value"] > base["exact_match"]["value"], hosted
    report = (store.path.parent / "experiments" / experiment.id / "report.html").read_text()
    assert all(f"{name}/fine-tuned" in report for name in jobs)  # the report shows every backend's model

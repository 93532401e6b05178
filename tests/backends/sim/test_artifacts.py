"""Where an experiment's files are: recorded in the store, on disk by default, and in an object store (moto's
S3 on 127.0.0.1) when FTO_ARTIFACTS names one."""

from __future__ import annotations

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, run_fto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]  # an experiment end to end


def _job(tmp_path, url: str) -> str:
    sim = {"url": url, "duration": 0.5, "min_poll_interval": 0.2, "max_poll_interval": 0.4}
    scoring = {"max_examples": 10, "max_new_tokens": 8, "scorers": ["exact_match"], "train_sample": 0}
    spec = {"name": "kept", "data": {"train": str(ANIMALS), "validation": 0.1}, "backends": {"sim": sim},
            "eval": scoring}  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_reports_and_eval_outputs_are_recorded_where_they_are(sim_server, tmp_path, fto_home):
    result = run_fto("run", _job(tmp_path, sim_server().url))
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    kept = store.artifacts(experiment.id)
    assert {"report.md", "report.html", "check.json"} <= set(kept)
    assert kept["report.html"] == str(fto_home / "experiments" / experiment.id / "report.html")


def test_with_fto_artifacts_the_files_go_to_the_object_store(sim_server, aws, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("FTO_ARTIFACTS", "s3://fto-training/team")
    result = run_fto("run", _job(tmp_path, sim_server().url))
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    kept = store.artifacts(experiment.id)
    assert kept["report.html"] == f"s3://fto-training/team/{experiment.id}/report.html"
    keys = set(aws.keys())
    for name, where in kept.items():
        assert where.startswith("s3://fto-training/team/") and where.removeprefix("s3://fto-training/") in keys, name
    assert any(name.startswith("eval/") for name in kept)  # the per-example eval outputs too


def test_a_malformed_fto_artifacts_is_a_clear_error_not_a_traceback(sim_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FTO_ARTIFACTS", "reports-bucket/team")
    result = run_fto("run", _job(tmp_path, sim_server().url))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "FTO_ARTIFACTS: 'reports-bucket/team' is not an object store URL" in result.stderr

"""Sensitive data is not sent to a hosted backend without consent: refused before anything is uploaded, named with
its lines; `--allow-sensitive` (or `check: {sensitive: allow}`) sends it; the local backend never asks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fto.backends import registry
from fto.orchestrator.data.check.guard import check_before_submit
from fto.orchestrator.data.load import load_splits
from fto.schemas import BackendSection, JobSpec
from tests.backends.sim.test_jobs_cli import _job_file
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # runs the provider and the CLI


def _with_emails(tmp_path: Path) -> Path:
    lines = ANIMALS.read_text().splitlines()
    row = json.loads(lines[0])
    row["messages"][1]["content"] += " Send the answer to jane.doe@acme-mail.co.uk."
    path = tmp_path / "animals-with-email.jsonl"
    path.write_text("\n".join([*lines[:5], json.dumps(row), *lines[5:]]) + "\n")  # the e-mail is on line 6
    return path


def test_sensitive_data_is_refused_for_a_hosted_backend_until_allowed(sim_server, tmp_path):
    server = sim_server(duration=0.5)
    job = Path(_job_file(tmp_path, server.url, duration=0.5, eval=None))
    spec = yaml.safe_load(job.read_text())
    spec["data"]["train"] = str(_with_emails(tmp_path))
    job.write_text(yaml.safe_dump(spec))

    refused = run_fto("submit", str(job))
    assert refused.returncode != 0
    assert "animals-with-email.jsonl:6" in refused.stderr and "1 examples with e-mail addresses" in refused.stderr
    assert "--allow-sensitive" in refused.stderr and "Traceback" not in refused.stderr
    assert "exp-" not in refused.stdout
    assert not any(route.startswith("POST /v1/files") for route in server.stats()["requests"])  # nothing uploaded

    allowed = run_fto("run", str(job), "--allow-sensitive")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "data check:" in allowed.stderr and "[sensitive_email]" in allowed.stderr
    spec["check"] = {"sensitive": "allow"}
    job.write_text(yaml.safe_dump(spec))
    assert run_fto("submit", str(job)).returncode == 0


def test_the_local_backend_never_needs_consent(tmp_path):
    spec = JobSpec.model_validate({"name": "local", "data": {"train": str(_with_emails(tmp_path))}})
    local = registry.create("local", BackendSection.model_validate({"model": "embedded:tiny-llama"}))
    report = check_before_submit(spec, load_splits(spec), [local], allow_sensitive=False)
    assert report is not None and report.sensitive == {"sensitive_email": 1}

"""Backends are plugins: a package that declares an `fto.backends` entry point is used like a built-in one."""

import json
import os
import textwrap

import pytest

from fto.backends import registry
from fto.backends.local import LocalBackend
from fto.orchestrator.errors import ConfigError
from tests.conftest import run_fto

PLUGIN = '''
from fto.backends.base import Backend, BackendOptions, PreparedData, UploadedData
from fto.schemas import JobStatus, ProviderJob, ProviderUpdates, JobEvent
from datetime import datetime, UTC


class ParrotOptions(BackendOptions):
    model: str = "parrot-base"
    word: str = "bird"


class ParrotBackend(Backend):
    """A provider whose jobs finish at once and whose tuned model always answers the same word."""

    Options = ParrotOptions
    min_poll_interval = 0.01

    def prepare(self, spec, train, validation, workdir):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "train.txt").write_text(str(len(train)))
        return PreparedData(train=workdir / "train.txt", train_examples=len(train))

    def upload(self, prepared):
        return UploadedData(train_file=str(prepared.train))

    def submit(self, spec, uploaded, job_id):
        return "parrot-" + job_id

    def get(self, provider_job_id):
        return ProviderJob(status=JobStatus.SUCCEEDED, base_model="parrot-base", fine_tuned_model="parrot-tuned")

    def updates(self, provider_job_id, cursor):
        if cursor:
            return ProviderUpdates(cursor=cursor)
        return ProviderUpdates(events=[JobEvent(created_at=datetime.now(UTC), message="done")], cursor="1")

    def cancel(self, provider_job_id):
        pass

    def complete(self, model, messages, params):
        return self.options.word if model == "parrot-tuned" else ""
'''


@pytest.fixture
def parrot_plugin(tmp_path, monkeypatch):
    """Install a third-party backend the way pip would: a module plus a dist-info with entry points."""
    site = tmp_path / "site"
    (site / "fto_parrot").mkdir(parents=True)
    (site / "fto_parrot" / "__init__.py").write_text(PLUGIN)
    dist = site / "fto_parrot-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fto-parrot\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fto.backends]\nparrot = fto_parrot:ParrotBackend\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return site


def test_local_backend_is_registered_by_entry_point():
    assert "local" in registry.available()
    assert registry.backend_class("local") is LocalBackend


def test_unknown_backend_lists_what_is_installed():
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(available: .*local"):
        registry.backend_class("nope")


def test_a_plugin_backend_runs_the_whole_path_without_fto_knowing_its_name(parrot_plugin, write_job):
    assert "parrot" in run_fto("backends").stdout
    schema = json.loads(run_fto("schema").stdout)
    assert schema["properties"]["backends"]["properties"]["parrot"]["properties"]["word"]["default"] == "bird"

    job = write_job({"backends": {"parrot": {"word": "bird"}}, "eval": {"max_examples": 40}})
    result = run_fto("run", str(job), "--backend", "parrot")
    assert result.returncode == 0, result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    scores = {m["target"]: m["scores"]["exact_match"] for m in report["models"]}
    references = next(iter((job.parent / "fto-home").rglob("eval.jsonl"))).read_text()
    expected = sum('"content":"bird"}' in row for row in references.splitlines()) / 40
    assert scores == {"parrot/base": 0.0, "parrot/fine-tuned": pytest.approx(expected)}
    assert 0 < expected < 1


def test_a_misspelt_option_of_a_plugin_backend_names_its_line(parrot_plugin, write_job):
    job = write_job(
        text=textwrap.dedent(f"""\
        name: demo
        data: {{train: {write_job().parent}/../x.jsonl}}
        backends:
          parrot:
            wrod: fish
        """)
    )
    result = run_fto("submit", str(job))
    assert result.returncode == 2
    assert "job.yaml:5: backends.parrot.wrod: unknown key (did you mean 'word'?)" in result.stderr

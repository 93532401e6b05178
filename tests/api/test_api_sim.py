"""The Python API through the sim provider (a real HTTP server on 127.0.0.1): the behaviours the CLI tests check,
called as a notebook or script calls them."""

from __future__ import annotations

import asyncio

import pytest
import yaml

import fto
from fto import ComparisonKind, JobStatus, ModelRole
from tests.backends.sim.conftest import SimServer
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow


@pytest.fixture
def sim():
    server = SimServer()
    yield server
    server.stop()


def _spec(sim: SimServer, duration: float = 1.0, **more) -> dict:
    backend = {"type": "sim", "url": sim.url, "duration": duration, "min_poll_interval": 0.2}
    return {
        "name": "api",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": {"a": backend, "b": dict(backend)},
        "eval": {"max_examples": 12, "scorers": ["exact_match", "token_f1"]},
        **more,
    }


def test_submit_wait_evaluate_compare_from_a_dict(sim):
    experiment = fto.submit(_spec(sim), backends=["a", "b"])
    assert experiment.status() in ({"queued": 2}, {"running": 2}, {"queued": 1, "running": 1}, {"pending": 2})
    jobs = experiment.wait()
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    assert experiment.status() == {"succeeded": 2}
    comparison = experiment.evaluate()
    assert comparison.scorers == ["exact_match", "token_f1"]
    assert comparison.scores["a/fine-tuned"]["exact_match"] > comparison.scores["a/base"]["exact_match"]
    assert {p.b.label for p in comparison.paired} == {"a/fine-tuned", "b/fine-tuned"}  # b: against a's and its base
    assert comparison.report_path == experiment.report_path and comparison.report_path.exists()
    frame = comparison.to_pandas()
    assert list(frame.index) == ["a/base", "a/fine-tuned", "b/base", "b/fine-tuned"]
    assert frame.loc["a/fine-tuned", "exact_match_low"] <= frame.loc["a/fine-tuned", "exact_match"]
    html = comparison._repr_html_()
    assert "score-table" in html and "a/fine-tuned" in html and "<svg" in html
    results = comparison.results  # typed: what `fto compare --json` prints
    assert results.experiment == experiment.id and all(isinstance(j.status, JobStatus) for j in results.jobs)
    tuned = [m for m in comparison.models if m.target.role == ModelRole.FINE_TUNED]
    assert {m.target.section for m in tuned} == {"a", "b"} and all(m.target.job for m in tuned)
    assert all(m.training_hours and m.quality_per_hour for m in tuned)  # the sim's jobs take seconds
    between = [p for p in comparison.paired if p.kind == ComparisonKind.BETWEEN]
    assert {(p.a.label, p.b.label) for p in between} == {("a/fine-tuned", "b/fine-tuned")}
    assert [r.rank for r in results.ranking] == [1, 2, 3, 4] and results.ranking[0].target.role == ModelRole.FINE_TUNED
    assert jobs[0].status is JobStatus.SUCCEEDED

    job = experiment.jobs[0]
    metrics = job.metrics()
    assert len(metrics) >= 5 and metrics.to_pandas()["loss"].iloc[-1] < metrics.to_pandas()["loss"].iloc[0]
    assert "<svg" in metrics._repr_html_() and "<table" in metrics._repr_html_()
    assert any("succeeded" in e.message or e.message for e in job.events())
    assert "<table" in experiment._repr_html_()
    assert fto.experiment(experiment.id[:8]).id == experiment.id
    assert [e.id for e in fto.experiments("api")] == [experiment.id]
    assert fto.job(job.id[:10]).backend == job.backend


def test_a_job_file_a_dict_and_a_built_spec_are_one_validation(sim, tmp_path):
    job_file = tmp_path / "job.yaml"
    raw = _spec(sim)
    raw["hyperparameters"] = {"learning_rate": "fast"}
    job_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(fto.ConfigError) as from_file:
        fto.JobSpec.from_file(job_file)
    assert from_file.value.file == str(job_file) and from_file.value.line is not None
    assert from_file.value.field == "hyperparameters.learning_rate"
    with pytest.raises(fto.ConfigError) as from_dict:
        fto.JobSpec.from_dict(raw)
    assert from_dict.value.field == "hyperparameters.learning_rate"
    with pytest.raises(fto.ConfigError, match="data file not found"):
        fto.submit({**_spec(sim), "data": {"train": str(tmp_path / "missing.jsonl")}})
    assert fto.experiments() == []  # nothing submitted, nothing recorded

    job_file.write_text(yaml.safe_dump(_spec(sim), sort_keys=False))
    edited = fto.JobSpec.from_file(job_file)
    edited.hyperparameters.epochs = 3  # changed in Python after reading: what is submitted
    assert fto.submit(edited, backends=["a"]).spec.hyperparameters.epochs == 3

    built = fto.JobSpec(**{**_spec(sim), "hyperparameters": {"epochs": 2}})
    swept = fto.JobSpec.from_dict({**_spec(sim), "hyperparameters": {"learning_rate": [1e-4, 3e-4]}})
    assert swept.sweep is not None and swept.points == {}  # expanded at submit, as from a file
    experiment = fto.submit(swept, backends=["a"])
    assert sorted(j.backend for j in experiment.jobs) == ["a@learning_rate=0.0001", "a@learning_rate=0.0003"]
    assert fto.submit(built, backends=["b"]).spec.hyperparameters.epochs == 2


def test_cancel_and_async_wait(sim):
    experiment = fto.submit(_spec(sim, duration=120.0), backends=["a"])
    (job,) = experiment.jobs

    async def watch() -> list:
        job.cancel()
        assert job.status == "cancelling"
        return await experiment.wait_async(timeout=60)

    (ended,) = asyncio.run(watch())
    assert ended.status == "cancelled" and job.refresh().status == "cancelled"


def test_data_functions_return_typed_results(tmp_path):
    report = fto.data.validate(ANIMALS, target="together")
    assert report.ok and report.examples > 300
    stats = fto.data.stats(ANIMALS, target="together")
    assert stats.examples == report.examples and stats.total_tokens_per_example is not None
    assert sum(stats.total_tokens_histogram.counts) == stats.examples
    assert fto.data.check(ANIMALS).issues == []  # the quickstart's data is clean
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text(ANIMALS.read_text() * 2)
    found = fto.data.check(doubled)
    assert found.counts["duplicate"] >= 1 and isinstance(found, fto.data.CheckReport)
    done = fto.data.convert(ANIMALS, "sharegpt", tmp_path / "out.jsonl")
    assert done.written == report.examples and (tmp_path / "out.jsonl").exists()
    assert fto.data.split(ANIMALS, tmp_path / "split", fraction=0.25) == (
        report.examples - round(report.examples * 0.25),
        round(report.examples * 0.25),
    )

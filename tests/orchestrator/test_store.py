from datetime import UTC, datetime

from fto.orchestrator.store import Store
from fto.schemas import JobEvent, JobSpec, JobStatus, Metric, ProviderJob

SPEC = JobSpec.model_validate({"name": "demo", "data": {"train": "/data/train.jsonl"}})


def test_experiment_and_pending_jobs_survive_a_new_process(fto_home, engine):
    store = Store()
    experiment, _jobs = store.create_experiment(SPEC, "/jobs/demo.yaml", ["local", "other"])
    store.close()
    reopened = Store()
    assert reopened.experiment(experiment.id).spec == SPEC
    assert reopened.experiment("demo").id == experiment.id  # by name, too
    assert [(j.backend, j.status) for j in reopened.jobs(experiment.id)] == [
        ("local", JobStatus.PENDING),
        ("other", JobStatus.PENDING),
    ]
    if engine == "sqlite":
        assert reopened.db.read("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
        assert (fto_home / "fto.db").exists()
    else:
        assert not (fto_home / "fto.db").exists()


def test_finished_at_is_stamped_once_at_the_first_terminal_status(engine):
    store = Store()
    _, (job,) = store.create_experiment(SPEC, None, ["local"])
    store.set_submitted(job.id, "p-1")
    assert store.update_from_provider(job.id, ProviderJob(status=JobStatus.RUNNING)).finished_at is None
    done = store.update_from_provider(job.id, ProviderJob(status=JobStatus.SUCCEEDED, fine_tuned_model="m"))
    again = store.update_from_provider(job.id, ProviderJob(status=JobStatus.SUCCEEDED))
    assert done.finished_at is not None and again.finished_at == done.finished_at
    assert again.fine_tuned_model == "m"  # a later report without the model does not erase it
    assert store.resolve_jobs(None) == []


def test_events_append_in_order_and_the_cursor_moves_with_them(engine):
    store = Store()
    _, (job,) = store.create_experiment(SPEC, None, ["local"])
    at = datetime.now(UTC)
    store.add_updates(job.id, [JobEvent(created_at=at, message="one")], [Metric(step=1, loss=2.0)], "c1")
    store.add_updates(job.id, [JobEvent(created_at=at, message="two")], [Metric(step=2, loss=1.0)], "c2")
    assert [e.message for e in store.events(job.id)] == ["one", "two"]
    assert [m.loss for m in store.metrics(job.id)] == [2.0, 1.0]
    assert store.cursor(job.id) == "c2"
    assert store.last_metric(job.id).step == 2


def test_secrets_are_masked_before_they_are_stored(monkeypatch, engine):
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key-123456")
    store = Store()
    _, (job,) = store.create_experiment(SPEC, None, ["local"])
    store.fail(job.id, "401 for key not-a-real-key-123456 and sk-proj-abcdefghijkl")
    at = datetime.now(UTC)
    store.add_updates(job.id, [JobEvent(created_at=at, message="used not-a-real-key-123456")], [], None)
    assert "not-a-real-key" not in store.job(job.id).error and "sk-proj" not in store.job(job.id).error
    messages = [e.message for e in store.events(job.id)]
    assert messages[-1] == "used ***" and not [m for m in messages if "not-a-real-key" in m or "sk-proj" in m]

"""The Store's contract on both engines (SQLite and a real PostgreSQL): versioned migrations that upgrade an old
store in place, submission claims, poll leases, change notifications, and copying a store into PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from fto.orchestrator.store import PROCESS, Store
from fto.orchestrator.store.migrations import LATEST, MIGRATIONS, version
from fto.schemas import JobEvent, JobSpec, JobStatus, Metric, ProviderJob
from fto.schemas.results import ModelRole, Target
from tests.conftest import run_fto

pytestmark = pytest.mark.timeout(60)
SPEC = JobSpec.model_validate({"name": "demo", "data": {"train": "/data/train.jsonl"}})

# The schema fto wrote before migrations were numbered (no leases, claims, intervals or usage yet).
OLD_SCHEMA = """
CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, spec_path TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE jobs (id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id), backend TEXT NOT NULL,
    provider_job_id TEXT, status TEXT NOT NULL, base_model TEXT, fine_tuned_model TEXT, trained_tokens INTEGER,
    error TEXT, cursor TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at TEXT NOT NULL, level TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE metrics (job_id TEXT NOT NULL, step INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, step));
CREATE TABLE eval_results (experiment_id TEXT NOT NULL, target TEXT NOT NULL, job_id TEXT, backend TEXT NOT NULL,
    model TEXT NOT NULL, scorer TEXT NOT NULL, score REAL NOT NULL, examples INTEGER NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (experiment_id, target, scorer));
CREATE TABLE generations (key TEXT PRIMARY KEY, output TEXT NOT NULL, created_at TEXT NOT NULL);
"""


def test_migrations_are_numbered_in_order_and_a_new_store_is_at_the_latest(engine):
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    store = Store()
    assert version(store.db) == LATEST
    applied = store.db.read("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in applied] == list(range(1, LATEST + 1))
    Store()  # a second start applies nothing twice
    assert len(store.db.read("SELECT version FROM schema_migrations")) == LATEST


def test_a_store_from_before_migrations_upgrades_in_place_and_keeps_its_jobs(fto_home):
    fto_home.mkdir(parents=True)
    db = sqlite3.connect(fto_home / "fto.db")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO experiments VALUES ('exp-old', 'old', ?, NULL, '2026-01-01T00:00:00+00:00')",
               (SPEC.model_dump_json(),))  # fmt: skip
    stamp = "2026-01-01T00:00:00+00:00"
    db.execute("INSERT INTO jobs (id, experiment_id, backend, status, created_at, updated_at) VALUES "
               "('job-old', 'exp-old', 'sim', 'running', ?, ?)", (stamp, stamp))  # fmt: skip
    for label, job in (("sim/base", "'job-old'"), ("sim/fine-tuned", "'job-old'"), ("sim/gpt-x", "NULL")):
        db.execute(f"INSERT INTO eval_results VALUES ('exp-old', ?, {job}, 'sim', 'm', 'exact_match', 0.5, 10, ?)",
                   (label, stamp))  # fmt: skip
    db.commit()
    db.close()
    store = Store()
    assert version(store.db) == LATEST
    assert store.job("job-old").status == JobStatus.RUNNING and store.experiment("old").id == "exp-old"
    # what each model was is read once from the labels of the time, by the migration, and kept as a column
    roles = {r["target"]: r["role"] for r in store.scores("exp-old")}
    assert roles == {"sim/base": "base", "sim/fine-tuned": "fine_tuned", "sim/gpt-x": "external"}
    assert store.claim_submit("job-old")  # the new columns work
    store.set_submitted("job-old", "p-old")
    assert "job-old" in store.acquire_leases(["job-old"], "me", 30)
    tuned = Target(label="sim/fine-tuned", section="sim", role=ModelRole.FINE_TUNED, model="m", job="job-old")
    store.save_scores("exp-old", tuned, {"exact_match": (0.5, 0.4, 0.6)}, 10)
    (row,) = [r for r in store.scores("exp-old") if r["target"] == "sim/fine-tuned"]
    assert row["low"] == 0.4 and row["score"] == 0.5 and row["role"] == "fine_tuned"


def test_a_submission_claim_is_one_process_at_a_time_and_lapses_with_its_process(engine):
    store = Store()
    _, (job,) = store.create_experiment(SPEC, None, ["sim"])
    assert not store.submit_started(job.id)
    assert store.claim_submit(job.id) and not store.submit_started(job.id)
    store.mark_submitting(job.id)
    assert store.submit_started(job.id)  # a create request may have gone out: a retry asks the provider first
    assert store.claim_submit(job.id)  # the same process may claim again (a retry)
    other = f"{PROCESS.split(':')[0]}:1:someone"  # pid 1 lives: a live claim of another process
    with store.db.tx() as tx:
        tx.execute("UPDATE jobs SET submit_owner = ?, submit_until = ? WHERE id = ?", (other, 9e12, job.id))
    assert not store.claim_submit(job.id)
    dead = f"{PROCESS.split(':')[0]}:999999999:gone"  # no such process on this machine: its claim is void
    with store.db.tx() as tx:
        tx.execute("UPDATE jobs SET submit_owner = ? WHERE id = ?", (dead, job.id))
    assert store.claim_submit(job.id)
    store.set_submitted(job.id, "p-1")
    assert not store.claim_submit(job.id)  # submitted: nothing left to claim


def test_a_poll_lease_is_held_by_one_owner_until_it_lapses_or_is_released(engine):
    store = Store()
    ids = [store.create_experiment(SPEC, None, ["sim"])[1][0].id for _ in range(2)]

    def lease(owner: str, seconds: float = 30) -> set[str]:
        return set(store.acquire_leases(ids, owner, seconds))

    assert lease("a") == set()  # not submitted yet: nothing to poll
    store.set_submitted(ids[0], "p-1")
    store.set_submitted(ids[1], "p-2")
    assert store.acquire_leases(ids, "a", 30) == {ids[0]: ("p-1", None), ids[1]: ("p-2", None)}
    assert lease("b") == set() and lease("a") == set(ids)  # held; renewed by its owner
    store.release_leases("a")
    assert lease("b", 0.01) == set(ids) and lease("a") == set()
    import time

    time.sleep(0.05)
    assert lease("a") == set(ids)  # b's lease lapsed
    store.update_from_provider(ids[1], ProviderJob(status=JobStatus.SUCCEEDED))
    assert lease("a") == set(ids)  # ended, but its holder may still be fetching its last news
    store.release_leases("a")
    assert lease("b") == {ids[0]}  # an ended job is no one's to take up


def test_a_flush_of_polls_numbers_events_after_the_stored_ones_and_the_last_metric_of_a_step_wins(engine):
    """record_polls writes in bulk (COPY on PostgreSQL): events continue each job's numbering, two polls of one
    job in a flush keep their order, and a step reported twice keeps its last value, as row-by-row writes did."""
    from fto.schemas import ProviderUpdates

    store = Store()
    first, second = (store.create_experiment(SPEC, None, ["sim"])[1][0].id for _ in range(2))
    at = datetime(2026, 11, 30, tzinfo=UTC)
    event = lambda text: JobEvent(created_at=at, message=text)  # noqa: E731
    store.add_updates(first, [event("queued"), event("started")], [Metric(step=1, loss=3.0)], "c1")
    running = ProviderJob(status=JobStatus.RUNNING)
    store.record_polls(
        [
            (
                first,
                running,
                ProviderUpdates(events=[event("step 2")], metrics=[Metric(step=2, loss=2.0)], cursor="c2"),
            ),
            (second, running, ProviderUpdates(events=[event("queued")], metrics=[Metric(step=1, loss=9.0)])),
            (
                first,
                running,
                ProviderUpdates(events=[event("step 3")], metrics=[Metric(step=2, loss=1.5)], cursor="c3"),
            ),
        ]
    )
    assert [e.message for e in store.events(first)] == ["queued", "started", "step 2", "step 3"]
    assert [e.message for e in store.events(second)] == ["queued"]
    assert [(m.step, m.loss) for m in store.metrics(first)] == [(1, 3.0), (2, 1.5)]
    assert store.cursor(first) == "c3" and store.job(first).status == JobStatus.RUNNING
    store.record_polls([(first, running, ProviderUpdates(metrics=[Metric(step=2, loss=1.0)]))])  # a later flush
    assert [(m.step, m.loss) for m in store.metrics(first)] == [(1, 3.0), (2, 1.0)]


def test_a_flush_of_states_keeps_a_cancel_asked_the_first_end_and_what_a_later_answer_lacks(engine):
    """States go in bulk (one UPDATE … FROM a staged table on PostgreSQL) with the rules of one UPDATE per poll."""
    from fto.schemas import ProviderUpdates

    store = Store()
    jobs = [store.create_experiment(SPEC, None, ["sim"])[1][0].id for _ in range(3)]
    ended, cancelled, failed = jobs
    store.request_cancel(cancelled)
    running = ProviderJob(status=JobStatus.RUNNING, base_model="base", trained_tokens=10)
    done = ProviderJob(status=JobStatus.SUCCEEDED, fine_tuned_model="ft:1")
    store.record_polls(
        [
            (ended, running, ProviderUpdates(cursor="c1")),
            (ended, done, ProviderUpdates()),  # later in the same flush: no cursor, no base model of its own
            (cancelled, running, ProviderUpdates()),
            (failed, ProviderJob(status=JobStatus.FAILED, error="out of memory"), ProviderUpdates()),
        ]
    )
    job = store.job(ended)
    assert (job.status, job.fine_tuned_model, job.base_model, job.trained_tokens) == (
        JobStatus.SUCCEEDED, "ft:1", "base", 10,
    )  # fmt: skip
    assert store.cursor(ended) == "c1" and job.finished_at is not None
    assert store.job(cancelled).status == JobStatus.CANCELLING and store.job(cancelled).finished_at is None
    assert (store.job(failed).status, store.job(failed).error) == (JobStatus.FAILED, "out of memory")
    first_end = job.finished_at
    store.record_polls([(ended, done, ProviderUpdates()), (cancelled, ProviderJob(status=JobStatus.CANCELLED),
                                                           ProviderUpdates())])  # fmt: skip
    assert store.job(ended).finished_at == first_end  # the first end stamps it
    assert store.job(cancelled).status == JobStatus.CANCELLED and store.job(cancelled).finished_at is not None


def test_another_process_writing_is_seen_without_reading_a_table(engine):
    watcher, writer = Store(), Store()
    watcher.changed()  # start watching
    assert not watcher.changed()
    _, (job,) = writer.create_experiment(SPEC, None, ["sim"])
    writer.update_from_provider(job.id, ProviderJob(status=JobStatus.RUNNING))
    if engine == "postgresql":  # NOTIFY arrives asynchronously: give it a moment
        assert watcher.db.wait_for_change(5)
    else:
        assert watcher.changed()
    assert not watcher.changed()


@pytest.mark.slow  # the CLI in subprocesses
def test_store_migrate_copies_every_row_into_postgresql_checked_by_counts(fto_home, postgres_server, monkeypatch):
    source = Store()
    experiment, jobs = source.create_experiment(SPEC, "/jobs/demo.yaml", ["a", "b", "c"])
    at = datetime.now(UTC)
    for i, job in enumerate(jobs):
        source.set_submitted(job.id, f"p-{i}")
        source.add_updates(job.id, [JobEvent(created_at=at, message=f"e{k}") for k in range(3)],
                           [Metric(step=s, loss=1.0 / s) for s in range(1, 4)], f"c{i}")  # fmt: skip
        source.update_from_provider(job.id, ProviderJob(status=JobStatus.SUCCEEDED, fine_tuned_model=f"m{i}"))
        tuned = Target(label=f"{job.backend}/fine-tuned", section=job.backend, role=ModelRole.FINE_TUNED,
                       model=f"m{i}", job=job.id)  # fmt: skip
        source.save_scores(experiment.id, tuned, {"exact_match": (0.5, 0.4, 0.6), "token_f1": (0.7, 0.6, 0.8)}, 10)
    source.save_upload("sim", "d1", "file-1")
    source.save_artifact(experiment.id, "report.html", "/reports/x.html")
    target = postgres_server.new_database()
    result = run_fto("store", "migrate", "--to", target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every row arrived" in result.stdout
    copied = Store(target)
    assert [j.id for j in copied.jobs(experiment.id)] == [j.id for j in jobs]  # in their order
    for job in jobs:
        assert copied.job(job.id) == source.job(job.id)
        assert copied.events(job.id) == source.events(job.id) and copied.metrics(job.id) == source.metrics(job.id)
    assert copied.scores(experiment.id) == source.scores(experiment.id)
    assert copied.uploaded("sim", "d1") == "file-1" and copied.artifacts(experiment.id) == {
        "report.html": "/reports/x.html"}  # fmt: skip
    again = run_fto("store", "migrate", "--to", target)  # a second run copies nothing twice
    assert again.returncode == 0 and len(Store(target).events(jobs[0].id)) == 3
    monkeypatch.setenv("FTO_STORE", target)
    shown = run_fto("status", experiment.id)
    assert shown.returncode == 0 and jobs[0].id in shown.stdout


@pytest.mark.slow  # the CLI in subprocesses, one waiting for a server that is not there
def test_a_dsn_password_is_never_shown(postgres_server, monkeypatch):
    dsn = postgres_server.dsn().replace("fto@", "fto:hunter2secret@")
    monkeypatch.setenv("FTO_STORE", dsn)
    result = run_fto("store", "info")
    assert result.returncode == 0 and "hunter2secret" not in result.stdout + result.stderr
    assert "postgresql://fto@127.0.0.1" in result.stdout and "schema version" in result.stdout
    down = run_fto("--store", "postgresql://fto:hunter2secret@127.0.0.1:1/none", "store", "info")
    assert down.returncode == 1 and "hunter2secret" not in down.stdout + down.stderr
    assert "cannot connect to the store at postgresql://fto@127.0.0.1:1/none" in down.stderr

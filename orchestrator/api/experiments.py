"""`fto.submit`, `fto.experiments` and what they return: an Experiment and its Jobs, read live from the store.

Every CLI command that submits, waits, evaluates or compares calls these; the CLI only prints what they return.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fto.orchestrator import experiment_files as files
from fto.orchestrator.errors import ConfigError, FtoError
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.store import Store, store_location
from fto.schemas import Checkpoint, JobEvent, JobStatus
from fto.schemas import Experiment as ExperimentRecord
from fto.schemas import Job as JobRecord
from fto.schemas import JobSpec as JobSchema

if TYPE_CHECKING:  # loaded when used: `fto status` imports this module and needs none of them
    from fto.orchestrator.api.results import Comparison, Metrics
    from fto.orchestrator.api.spec import JobSpec

OnJobs = Callable[[list[JobRecord]], None]
STATUS_REFRESH_SECONDS = 2.0  # how long `status()` may spend asking providers about jobs gone quiet
_stores: dict[str, Store] = {}


def default_store() -> Store:
    """The store fto uses here: FTO_STORE, the `store:` of FTO_HOME's config.yaml, or SQLite under FTO_HOME."""
    location = store_location()
    if location not in _stores:
        _stores[location] = Store(location)
    return _stores[location]


class Job:
    """One fine-tuning job on one backend, as the store last recorded it (`refresh()` reads it again)."""

    def __init__(self, record: JobRecord, store: Store | None = None) -> None:
        self.record, self.store = record, store or default_store()

    @property
    def id(self) -> str:
        """fto's id of the job (`job-…`)."""
        return self.record.id

    @property
    def backend(self) -> str:
        """The job file's backend section the job runs on."""
        return self.record.backend

    @property
    def status(self) -> JobStatus:
        """pending, queued, running, cancelling, succeeded, failed or cancelled (a str enum: compares to those)."""
        return self.record.status

    @property
    def fine_tuned_model(self) -> str | None:
        """The model to query once the job has succeeded."""
        return self.record.fine_tuned_model

    @property
    def error(self) -> str | None:
        """Why the job failed, in the provider's words (secrets masked)."""
        return self.record.error

    def refresh(self) -> Job:
        """Read the job again from the store."""
        self.record = self.store.job(self.id)
        return self

    def events(self) -> list[JobEvent]:
        """The job's events (the provider's and fto's), oldest first."""
        return self.store.events(self.id)

    def metrics(self) -> Metrics:
        """Training metrics by step; a table and a loss chart in a notebook, `.to_pandas()` with pandas."""
        from fto.orchestrator.api.results import Metrics

        return Metrics(self.store.metrics(self.id), f"{self.backend} {self.id}")

    def checkpoints(self) -> list[Checkpoint]:
        """Saved points of the training that can be queried or resumed from, by step."""
        return [
            Checkpoint(
                step=e.data["step"],
                model=e.data["checkpoint"],
                metrics=e.data.get("metrics") or {},
                created_at=e.created_at,
            )
            for e in self.events()
            if "checkpoint" in e.data
        ]

    def cancel(self) -> Job:
        """Ask the provider to cancel the job (it is `cancelling` until the provider confirms)."""
        from fto.orchestrator.api import actions

        actions.cancel(self.store, self.id)
        return self.refresh()

    def pause(self) -> Job:
        """Pause the job, where the provider can (`resume()` continues it)."""
        from fto.orchestrator.api import actions

        actions.pause(self.store, self.id)
        return self.refresh()

    def resume(self) -> Job:
        """Continue a cancelled, paused or crashed job from its last checkpoint (`wait()` follows it)."""
        from fto.orchestrator.api import actions

        actions.resume(self.store, self.id)
        return self.refresh()

    def wait(self, progress: bool = False, timeout: float | None = None) -> Job:
        """Poll the job to its end (or `timeout` seconds); `progress` shows a live table."""
        (self.record,) = wait_for(self.store, [self.id], progress, timeout)
        return self

    async def wait_async(self, timeout: float | None = None) -> Job:
        """`wait()` for asyncio code."""
        (self.record,) = await wait_for_async(self.store, [self.id], None, timeout)
        return self

    def log(self) -> str | None:
        """The provider's own log of the job, where it keeps one (a local worker's, a Ray job's)."""
        if self.record.provider_job_id is None:
            raise FtoError(f"job {self.id} never reached its provider: its events() say what happened")
        return _backend(self.store, self.record).log(self.record.provider_job_id)

    def export(self, target: str, output: str | Path | None = None) -> list[str]:
        """Take the fine-tuned model to where models run (merged, ollama, vllm, gguf); returns what to do next."""
        if self.status != "succeeded" or not self.fine_tuned_model:
            raise FtoError(f"job {self.id} has no fine-tuned model to export (it is {self.status})")
        backend = _backend(self.store, self.record)
        return backend.export(self.record.provider_job_id or self.id, self.fine_tuned_model, target,
                              Path(output) if output else None)  # fmt: skip

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.backend}, {self.status}" + (f", {self.fine_tuned_model})" if
                                                                      self.fine_tuned_model else ")")  # fmt: skip


class Experiment:
    """One job file submitted once: a job per backend section, evaluated and compared together."""

    def __init__(self, record: ExperimentRecord, store: Store | None = None) -> None:
        self.record, self.store = record, store or default_store()
        self.notices: list[str] = []  # what the backends said at submission
        self.check: Any = None  # the data check's findings at submission (a CheckReport), when it ran here
        self.splits: Any = None  # the train, validation and eval examples, when submitted here

    @property
    def id(self) -> str:
        """fto's id of the experiment (`exp-…`)."""
        return self.record.id

    @property
    def name(self) -> str:
        """The job file's name."""
        return self.record.name

    @property
    def spec(self) -> JobSpec:
        """The job as submitted (sweeps expanded: one section per point)."""
        from fto.orchestrator.api.spec import JobSpec

        return JobSpec.model_validate(self.record.spec.model_dump())

    @property
    def jobs(self) -> list[Job]:
        """The experiment's jobs, as the store has them now."""
        return [Job(j, self.store) for j in self.store.jobs(self.id)]

    @property
    def report_path(self) -> Path | None:
        """report.html, once the experiment has been evaluated (`compare()` writes it again)."""
        path = experiment_dir(self.id) / "report.html"
        return path if path.exists() else None

    def status(self, refresh: bool = False) -> dict[str, int]:
        """Jobs per status; `refresh` first asks providers about jobs whose stored state has gone stale."""
        jobs = self.store.jobs(self.id)
        if refresh:
            jobs = refreshed(self.store, jobs)
        return dict(Counter(j.status.value for j in jobs))

    def wait(self, progress: bool = False, timeout: float | None = None) -> list[Job]:
        """Poll every job to its end (or `timeout` seconds); `progress` shows a live table."""
        done = wait_for(self.store, [j.id for j in self.store.jobs(self.id)], progress, timeout)
        return [Job(j, self.store) for j in done]

    async def wait_async(self, timeout: float | None = None) -> list[Job]:
        """`wait()` for asyncio code: `await experiment.wait_async()`."""
        done = await wait_for_async(self.store, [j.id for j in self.store.jobs(self.id)], None, timeout)
        return [Job(j, self.store) for j in done]

    def cancel(self) -> list[Job]:
        """Cancel every unfinished job; returns the jobs asked."""
        from fto.orchestrator.api import actions

        return [Job(j, self.store) for j in actions.cancel(self.store, self.id)]

    def evaluate(self, targets: Sequence[str] = (), on_progress: Any = None) -> Comparison:
        """Evaluate the base and fine-tuned models (and `targets`: `job:ID`, `BACKEND:MODEL`, another experiment)
        on the held-out examples with the job file's scorers, write the reports, and compare."""
        from fto.orchestrator.eval.harness import evaluate, parse_target

        extra = [t for text in targets for t in parse_target(self.store, text, self.record.spec)]
        evaluate(self.store, self.record, on_progress=on_progress, extra=extra)
        return self.compare()

    async def evaluate_async(self, targets: Sequence[str] = ()) -> Comparison:
        """`evaluate()` for asyncio code (it runs on a worker thread with its own store connection)."""
        location = self.store.location

        def run() -> Comparison:
            store = Store(location)
            try:
                comparison = Experiment(self.record, store).evaluate(targets)
                comparison.experiment = self.record
                return comparison
            finally:
                store.close()

        return await asyncio.to_thread(run)

    def compare(self) -> Comparison:
        """Scores with 95% intervals and the paired tests; rewrites report.md and report.html."""
        from fto.orchestrator.api.results import Comparison
        from fto.orchestrator.eval.report import comparison, write_reports

        results = comparison(self.store, self.record)
        if not results.models:
            raise FtoError(f"experiment {self.id} has no eval results yet: evaluate() it (`fto eval {self.id}`)")
        _, html = write_reports(self.store, self.record, results)
        return Comparison(self.record, results, Path(html), self.store)

    @property
    def findings(self) -> list[str]:
        """The data check's findings at submission, most important first, one line each (file, lines, what, code);
        read from the experiment's folder when it was submitted elsewhere."""
        if self.check is not None:
            return [str(issue) for issue in self.check.by_importance()]
        issues = (files.load_json(self.store, self.id, files.CHECK) or {}).get("issues", [])
        return [f"{i.get('file', '')}:{','.join(map(str, i.get('lines', [])[:8]))}: {i['message']} [{i['code']}]"
                for i in issues]  # fmt: skip

    def _repr_html_(self) -> str:
        from fto.orchestrator.eval.html import loss_chart
        from fto.orchestrator.templates import Markup, render

        jobs = self.store.jobs(self.id)
        latest = self.store.latest_metrics([j.id for j in jobs])
        rows = [{"job": j, "metric": latest.get(j.id)} for j in jobs]
        curves = {f"{j.backend} {j.id}": [(m.step, m.loss) for m in self.store.metrics(j.id) if m.loss is not None]
                  for j in jobs[:20]}  # fmt: skip
        chart = Markup(loss_chart({k: v for k, v in curves.items() if v}, width=640, height=220)) if curves else ""
        return render("notebook/experiment.html", experiment=self.record, rows=rows, chart=chart,
                      findings=self.findings, notices=self.notices)  # fmt: skip

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.status().items()))
        return f"Experiment({self.id}, {self.name!r}: {counts})"


def submit(
    spec: JobSpec | str | Path | dict[str, Any],
    backends: Sequence[str] | None = None,
    allow_sensitive: bool = False,
    learning_curve: Sequence[float] | str | None = None,
    store: Store | None = None,
) -> Experiment:
    """Submit a job — a JobSpec, a job file's path, or a dict — to `backends` (default: every section);
    returns at once with the Experiment (`.wait()`, `.evaluate()`). Nothing is sent unless every check passes."""
    from fto.orchestrator.api.spec import JobSpec
    from fto.orchestrator.submit import submit as submit_loaded

    if isinstance(spec, str | Path):
        spec = JobSpec.from_file(spec)
    elif isinstance(spec, dict):
        spec = JobSpec.from_dict(spec)
    elif not isinstance(spec, JobSpec):
        spec = JobSpec.model_validate(spec.model_dump())
    loaded = spec.loaded(list(backends) if backends else None)
    if learning_curve:
        from fto.orchestrator.learning_curve import expand, parse_fractions

        if loaded.spec.points:
            raise FtoError("a learning curve and a sweep in one experiment: run them as two experiments")
        fractions = parse_fractions(learning_curve if isinstance(learning_curve, str) else
                                    ",".join(str(f) for f in learning_curve))  # fmt: skip
        loaded = expand(loaded, fractions)
    store = store or default_store()
    submitted = submit_loaded(store, loaded, allow_sensitive)
    experiment = Experiment(submitted.experiment, store)
    experiment.notices, experiment.check = submitted.notices, submitted.check
    experiment.splits = submitted.data
    if submitted.check is not None and submitted.check.issues:  # what the CLI prints, said in Python too
        warnings.warn(
            f"fto data check: {submitted.check.summary()} — experiment.findings lists them",
            DataCheckWarning,
            stacklevel=2,
        )
    return experiment


class DataCheckWarning(UserWarning):
    """The data check found something worth a look in the submitted data (duplicates, leaks, sensitive data…)."""


def experiments(prefix: str | None = None, limit: int | None = 20, store: Store | None = None) -> list[Experiment]:
    """The most recent experiments, newest first; `prefix` keeps those whose id or name starts with it."""
    store = store or default_store()
    found = store.experiments(limit=None if prefix else limit)
    if prefix:
        found = [e for e in found if e.id.startswith(prefix) or e.id.startswith(f"exp-{prefix}")
                 or e.name.startswith(prefix)][:limit]  # fmt: skip
    return [Experiment(e, store) for e in found]


def experiment(key: str | None = None, store: Store | None = None) -> Experiment:
    """One experiment by id, name or unique id prefix (default: the latest)."""
    store = store or default_store()
    return Experiment(store.experiment(key) if key else store.latest_experiment(), store)


def job(key: str, store: Store | None = None) -> Job:
    """One job by id or unique id prefix."""
    store = store or default_store()
    return Job(store.job(key), store)


def evaluate_file(
    data: str | Path,
    targets: Sequence[str],
    scorers: Sequence[str] = (),
    max_examples: int = 100,
    judge: str | None = None,
    judge_url: str | None = None,
    on_progress: Any = None,
    store: Store | None = None,
) -> Comparison:
    """Models that already exist (`targets`: `BACKEND:MODEL`, `job:ID`) on the examples of one file, as an
    experiment of its own with no training; the judge is `BACKEND:MODEL` (for the `judge` scorer)."""
    if not targets:
        raise FtoError("evaluating a file needs at least one target to evaluate (--target)")
    store = store or default_store()
    record = _eval_only_experiment(store, Path(data), list(scorers), max_examples, _judge(judge, judge_url))
    created = Experiment(record, store)
    from fto.orchestrator.eval.harness import evaluate, parse_target

    extra = [t for text in targets for t in parse_target(store, text, record.spec)]
    evaluate(store, record, on_progress=on_progress, extra=extra, only_extra=True)
    return created.compare()


def _judge(model: str | None, url: str | None) -> dict[str, Any] | None:
    if not model:
        return None
    provider, _, name = model.partition(":")
    if not provider or not name:
        raise ConfigError(f"--judge {model!r}: use BACKEND:MODEL", field="--judge")
    from fto.backends.registry import backend_class

    backend_class(provider, field="--judge")
    return {"provider": provider, "model": name, "pairwise": False, **({"base_url": url} if url else {})}


def _eval_only_experiment(
    store: Store, path: Path, scorer_names: list[str], max_examples: int, judge: dict[str, Any] | None
) -> ExperimentRecord:
    """An experiment with no jobs: the eval set of one file, for comparing models that already exist."""
    from fto.orchestrator.data.load import read_eval_set
    from fto.orchestrator.eval import scorers
    from fto.schemas import JobSpec as Schema

    path = path.resolve()
    spec = Schema.model_validate(
        {
            "name": f"eval-{path.stem}"[:60],
            "data": {"train": str(path), "validation": None},
            "eval": {
                "data": str(path),
                "max_examples": max_examples,
                **({"scorers": scorer_names} if scorer_names else {}),
                **({"judge": judge} if judge else {}),
            },
        }
    )
    for name in spec.eval.scorers if spec.eval else []:
        scorers.get(name)
    examples = read_eval_set(str(path))[:max_examples]
    record, _ = store.create_experiment(spec, None, [])
    files.save(store, record.id, files.HELD_OUT, files.rows_text(examples))
    return record


def _backend(store: Store, record: JobRecord) -> Any:
    from fto.orchestrator.submit import backend_for

    return backend_for(store.experiment(record.experiment_id).spec, record.backend)


def wait_for(
    store: Store,
    job_ids: list[str],
    progress: bool | OnJobs = False,
    timeout: float | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> list[JobRecord]:
    """Poll jobs to their end; `progress` is True for a live table (rich: terminal or notebook) or a callback.

    Then each experiment whose jobs have all ended is notified as its job file asks (`notify:`); a notification
    that fails goes to `on_problem` (default: a Python warning) and never raises.
    """
    from fto.orchestrator.poll import wait

    if progress is True:
        from rich.console import Console

        from fto.orchestrator.progress import JobsView

        with JobsView(store, Console()) as show:
            jobs = wait(store, job_ids, on_tick=show, timeout=timeout)
    else:
        jobs = wait(store, job_ids, on_tick=progress or None, timeout=timeout)
    _notify(store, jobs, on_problem)
    return jobs


async def wait_for_async(
    store: Store, job_ids: list[str], on_jobs: OnJobs | None = None, timeout: float | None = None
) -> list[JobRecord]:
    """`wait_for` in a running event loop."""
    from fto.orchestrator.poll import Poller

    jobs = await Poller(store, on_jobs).run(job_ids, timeout)
    await asyncio.to_thread(_notify, store, jobs, None)  # a webhook may take seconds: off the loop
    return jobs


def _notify(store: Store, jobs: list[JobRecord], on_problem: Callable[[str], None] | None) -> None:
    from fto.orchestrator.notify import notify_finished

    for problem in notify_finished(store, [j.experiment_id for j in jobs]):
        if on_problem:
            on_problem(problem)
        else:
            warnings.warn(problem, stacklevel=3)


def refreshed(store: Store, jobs: list[JobRecord]) -> list[JobRecord]:
    """The jobs after asking providers (briefly) about unfinished ones whose stored state is older than their poll
    interval — what `fto status` shows."""
    from fto.backends import registry  # not the submission stack: its data checks import numpy

    stale = []
    specs: dict[str, JobSchema] = {}  # each job file read once
    intervals: dict[tuple[str, str], float] = {}  # one backend per section, however many jobs it has
    for record in jobs:
        if record.status.terminal or record.provider_job_id is None:
            continue
        section = (record.experiment_id, record.backend)
        if section not in intervals:
            if record.experiment_id not in specs:
                specs[record.experiment_id] = store.experiment(record.experiment_id).spec
            spec = specs[record.experiment_id]
            intervals[section] = registry.create(record.backend, spec.backends.get(record.backend)).min_poll_interval
        if (datetime.now(UTC) - record.updated_at).total_seconds() > intervals[section]:
            stale.append(record.id)
    if stale:
        from fto.orchestrator.poll import wait

        store.release_dead_leases(stale)  # a killed poller's jobs are looked at now, not when its leases lapse
        wait(store, stale, timeout=STATUS_REFRESH_SECONDS)
    return store.jobs_by_id([j.id for j in jobs])

"""What each dashboard page shows, read from the store as plain data (the templates only lay it out)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from fto.orchestrator import experiment_files as files
from fto.orchestrator.errors import NotFoundError
from fto.orchestrator.eval.scorers import lower_is_better
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.secrets import redact
from fto.orchestrator.store import Store
from fto.orchestrator.sweep import point_spec
from fto.schemas import Experiment, Job, JobSpec, Metric

SORTS = ("started", "name", "status", "score", "cost")


def training_cost(spec: JobSpec, job: Job) -> float | None:
    """Dollars the job's trained tokens cost at its provider's listed price (None when either is unknown)."""
    from fto.backends import registry

    section = spec.backends.get(job.backend)
    if not job.trained_tokens or section is None:
        return None
    try:
        info = registry.backend_class(section.type or job.backend).describe()
    except Exception:  # a backend no longer installed: its price is unknown, the page still shows
        return None
    _, card = info.model(job.base_model or section.model)
    price = card.training_usd_per_1m if card else None
    return job.trained_tokens * price / 1e6 if price is not None else None


def eval_cost(store: Store, experiment_id: str) -> float | None:
    """Dollars the experiment's eval calls cost, where prices are known."""
    usage = files.load_json(store, experiment_id, files.USAGE)
    if not usage:
        return None
    costs = [u.get("cost_usd") for u in usage.values()]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def _total(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def best_score(store: Store, experiment_id: str) -> tuple[str, str, float] | None:
    """(scorer, model, score): the best model on the experiment's first scorer."""
    rows = store.scores(experiment_id)
    if not rows:
        return None
    scorer = rows[0]["scorer"]
    scored = [r for r in rows if r["scorer"] == scorer and r["score"] == r["score"]]
    if not scored:
        return None
    pick = min if lower_is_better(scorer) else max
    best = pick(scored, key=lambda r: r["score"])
    return scorer, best["target"], best["score"]


def experiments_overview(
    store: Store, query: str = "", sort: str = "started", limit: int = 200
) -> list[dict[str, Any]]:
    """One row per experiment: backends, jobs per status, best score, cost so far, when it started and ended."""
    experiments = [e for e in store.experiments(limit=None) if query.lower() in f"{e.id} {e.name}".lower()]
    experiments = experiments[:limit]
    jobs_of: dict[str, list[Job]] = {e.id: [] for e in experiments}
    for job in store.jobs():
        if job.experiment_id in jobs_of:
            jobs_of[job.experiment_id].append(job)
    rows = []
    for e in experiments:
        jobs = jobs_of[e.id]
        ended = [j.finished_at for j in jobs if j.finished_at]
        done = bool(jobs) and all(j.status.terminal for j in jobs)
        rows.append(
            {
                "id": e.id,
                "name": e.name,
                "backends": sorted({_ran_on(e.spec, j.backend) for j in jobs}),  # where its jobs ran
                "counts": dict(Counter(j.status.value for j in jobs)),
                "jobs": len(jobs),
                "best": best_score(store, e.id),
                "cost": _total(*(training_cost(e.spec, j) for j in jobs), eval_cost(store, e.id)),
                "started": e.created_at,
                "ended": max(ended) if done and ended else None,
            }
        )
    keys: dict[str, Any] = {
        "started": lambda r: r["started"],
        "name": lambda r: r["name"].lower(),
        "status": lambda r: sorted(r["counts"].items()),
        "score": lambda r: r["best"][2] if r["best"] else float("-inf"),
        "cost": lambda r: r["cost"] or 0.0,
    }
    return sorted(rows, key=keys.get(sort, keys["started"]), reverse=sort not in ("name", "status"))


def _ran_on(spec: JobSpec, section: str) -> str:
    """The backend a job's section ran on: its `type` when the section names one, else the section's name."""
    found = spec.backends.get(section)
    return (found.type if found and found.type else None) or section


def progress(metric: Metric | None) -> float | None:
    """How far through its steps a job is, 0–1 (None before a provider says how many steps there are)."""
    if metric is None or not metric.total_steps:
        return None
    return min(1.0, metric.step / metric.total_steps)


def job_rows(store: Store, experiment: Experiment) -> list[dict[str, Any]]:
    """One row per job, read in two queries however many jobs there are."""
    jobs = store.jobs(experiment.id)
    latest = store.latest_metrics([j.id for j in jobs])
    rows = []
    for job in jobs:
        metric = latest.get(job.id)
        rows.append(
            {
                "job": job,
                "base_model": job.base_model or _section_model(experiment.spec, job.backend),
                "progress": 1.0 if job.status.value == "succeeded" else progress(metric),
                "loss": metric.loss if metric else None,
                "cost": training_cost(experiment.spec, job),
            }
        )
    return rows


def _section_model(spec: JobSpec, section: str) -> str | None:
    found = spec.backends.get(section)
    return found.model if found else None


def plan_vs_actual(store: Store, experiment: Experiment) -> list[dict[str, Any]]:
    """Each job beside what `fto plan` expected of it at submit: cost, hours, memory (None where either is unknown)."""
    from fto.orchestrator import experiment_files as files
    from fto.schemas.plan import Plan

    text = store.document(experiment.id, files.PLAN)
    if not text:
        return []
    planned = {(row.backend, row.model): row for row in Plan.model_validate_json(text).rows}
    by_backend = {row.backend: row for row in planned.values()}
    rows = []
    for job in store.jobs(experiment.id):
        row = planned.get((job.backend, job.base_model or "")) or by_backend.get(job.backend)
        if row is None:
            continue
        peaks = [e.data["peak_memory_bytes"] for e in store.events(job.id) if "peak_memory_bytes" in e.data]
        hours = (job.finished_at - job.created_at).total_seconds() / 3600 if job.finished_at else None
        rows.append({
            "job": job.id, "backend": job.backend, "model": row.model,
            "cost": (row.cost_usd, training_cost(experiment.spec, job)),
            "hours": (row.expected_hours, hours),
            "memory_gib": (row.memory.needed_gib["total"] if row.memory else None,
                           peaks[-1] / 1024**3 if peaks else None),
            "tokens": (row.charged_tokens or None, job.trained_tokens),
        })  # fmt: skip
    return rows


def check_findings(store: Store, experiment: Experiment, limit: int = 50) -> dict[str, Any] | None:
    """The data check's findings at submit (check.json), each with the file and lines it names, and the role
    (train, validation, eval) its data page is addressed by."""
    found = files.load_json(store, experiment.id, files.CHECK)
    if found is None:
        return None
    issues = found.get("issues", [])[:limit]
    roles = {file: role for role, file in experiment_files(store, experiment).items()}
    for issue in issues:
        issue["role"] = roles.get(issue.get("file", ""))
        issue["eval_role"] = roles.get(issue.get("eval_file", ""))
    total = len(found.get("issues", []))
    return {"issues": issues, "more": max(0, total - limit), "summary": _summary(found.get("issues", []))}


ROLES = ("train", "validation", "eval")


def experiment_files(store: Store, experiment: Experiment) -> dict[str, str]:
    """Role → path of the data files an experiment's stored spec references: the only files of an experiment the
    dashboard shows."""
    spec = experiment.spec
    found = {"train": spec.data.train}
    if isinstance(spec.data.validation, str):
        found["validation"] = spec.data.validation
    if spec.eval and spec.eval.data != "validation":
        found["eval"] = spec.eval.data
    elif spec.eval and (held_out := files.local_copy(store, experiment.id, files.HELD_OUT)) is not None:
        found["eval"] = str(held_out)  # the held-out examples, from the store (written here from it if need be)
    return found


def data_file(store: Store, kind: str, key: str, role: str = "") -> tuple[str, str]:
    """(path, address) of a file the store references: an experiment's file by its role, or a file registered
    with `fto ui --data`. Requests name ids and roles, never paths."""
    if (kind, bool(role)) not in (("files", False), ("experiments", True)):
        raise NotFoundError("data pages are /data/files/ID and /data/experiments/ID/ROLE")
    if kind == "files":
        path = store.inspected_files().get(key)
        if path is None:
            raise NotFoundError(f"no file {key!r} is registered: open one with `fto ui --data FILE`")
        return path, f"/data/files/{key}"
    experiment = store.experiment(key)
    path = experiment_files(store, experiment).get(role)
    if path is None:
        raise NotFoundError(f"experiment {experiment.id} has no {role!r} file (roles: {', '.join(ROLES)})")
    return path, f"/data/experiments/{experiment.id}/{role}"


def data_files(store: Store, limit: int = 20) -> list[tuple[str, str]]:
    """(address, path) of the files the data page lists: registered ones, then the latest experiments'."""
    listed = [(f"/data/files/{key}", path) for key, path in store.inspected_files().items()]
    for experiment in store.experiments(limit=limit):
        listed += [(f"/data/experiments/{experiment.id}/{role}", path)
                   for role, path in experiment_files(store, experiment).items()]  # fmt: skip
    return listed


def _summary(issues: list[dict[str, Any]]) -> str:
    if not issues:
        return "no findings"
    codes = Counter(i["code"] for i in issues)
    return f"{len(issues)} finding{'s' if len(issues) > 1 else ''}: " + ", ".join(f"{n} {c}" for c, n in codes.items())


def job_detail(store: Store, job: Job) -> dict[str, Any]:
    """A job's page: its timeline, events, checkpoints, hyperparameters as sent, warnings and errors."""
    experiment = store.experiment(job.experiment_id)
    events = store.events(job.id)
    spec = point_spec(experiment.spec, job.backend)
    section = spec.backends.get(job.backend)
    timeline: list[tuple[datetime, str]] = [(job.created_at, "created")]
    if job.provider_job_id:
        timeline.append((events[0].created_at if events else job.updated_at, f"submitted as {job.provider_job_id}"))
    first = store.first_metric(job.id)
    if first and first.created_at:
        timeline.append((first.created_at, "training: first step reported"))
    timeline.append((job.finished_at or job.updated_at, job.status.value + ("" if job.finished_at else " (now)")))
    return {
        "job": job,
        "experiment": experiment,
        "events": events,
        "checkpoints": [e.data for e in events if "checkpoint" in e.data],
        "problems": [e for e in events if e.level in ("warning", "error")],
        "timeline": timeline,
        "hyperparameters": spec.hyperparameters.model_dump(exclude_none=True),
        "options": json.loads(redact(json.dumps(section.model_dump(exclude_none=True) if section else {}))),
        "train_file": training_file(experiment.id, job.backend),
    }


def training_file(experiment_id: str, section: str) -> Path | None:
    """The file the job's data was prepared into for its provider (what it trained on), if fto wrote one."""
    path = experiment_dir(experiment_id) / section / "train.jsonl"
    return path if path.exists() else None


def data_view(path: str, target: str | None) -> dict[str, Any]:
    """`fto data validate` and `fto data stats` of one file: its problems by line and its distributions."""
    from fto.orchestrator.data.stats import dataset_stats
    from fto.orchestrator.data.validate import validate_file

    report = validate_file(path, target, max_shown=200)
    stats = dataset_stats(path, target) if report.examples else None
    return {"report": report, "stats": stats}


def file_line(path: str, line: int) -> str | None:
    """Line `line` (1-based) of a file, pretty-printed when it is JSON."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, text in enumerate(f, 1):
            if n == line:
                try:
                    return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                except ValueError:
                    return text
    return None

"""`fto plan`: before anything is sent, what a job would cost, take and need on each backend and base model.

Everything comes from what is on this machine: the data (counted with each provider's tokenizer), provider.json
(prices, limits), the job store (how fast past jobs of the same backend and model went), and for local training
the model's config.json (memory). No request reaches a provider.
"""

from __future__ import annotations

import statistics
from typing import Any

from fto.backends import registry
from fto.orchestrator.errors import ConfigError
from fto.orchestrator.plan import memory
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from fto.schemas.plan import Baseline, MemoryPlan, Plan, PlanRow, Recommendation, Throughput


def plan(
    spec: JobSpec,
    backends: list[str],
    store: Store | None,
    models: list[str] | None = None,
    device: str | None = None,
) -> Plan:
    """One row per backend and candidate base model, and the recommendations."""
    known = registry.available()
    unknown = [b for b in backends if b not in known and b not in spec.backends]
    if unknown:
        raise ConfigError(f"unknown backend {unknown[0]!r} (installed: {', '.join(sorted(known))})")
    if device:
        try:
            memory.device(device)
        except ValueError as exc:
            raise ConfigError(str(exc), field="--device") from None
    rows = []
    for name in backends:
        section = spec.backends.get(name) or BackendSection()
        for model in models or [section.model or _default_model(name, section)]:
            rows.append(_row(spec, name, section.model_copy(update={"model": model}), store, device))
    return Plan(rows=rows, recommendations=_recommend(rows))


def _default_model(name: str, section: BackendSection) -> str:
    return registry.backend_class(section.type or name).describe().default_model or ""


def _row(spec: JobSpec, name: str, section: BackendSection, store: Store | None, device: str | None) -> PlanRow:
    from fto.orchestrator.api import data

    cls = registry.backend_class(section.type or name)
    info = cls.describe()
    model = section.model or ""
    try:
        backend = registry.create(name, section)
    except ConfigError as exc:
        return PlanRow(backend=name, model=model, label=info.label, blocked=[exc.message])
    blocked, warnings = [], []
    if spec.method not in cls.methods:
        blocked.append(f"no method {spec.method} (offers {', '.join(sorted(cls.methods))})")
    epochs = spec.hyperparameters.epochs
    if isinstance(epochs, int) and info.epochs.max > 1 and not info.epochs.min <= epochs <= info.epochs.max:
        blocked.append(f"epochs {epochs} outside {info.epochs.min}–{info.epochs.max}")
    stats = data.stats(spec.data.train, cls.describe().name if info.name in registry.available() else None, model,
                       epochs=epochs if isinstance(epochs, int) else None)  # fmt: skip
    if stats.token_limit and stats.over_limit:
        warnings.append(f"{stats.over_limit} examples over the {stats.token_limit:,}-token limit (truncated)")
    if stats.examples < info.data.min_examples:
        blocked.append(f"{stats.examples} examples; {info.label} needs {info.data.min_examples}")
    if info.data.max_examples and stats.examples > info.data.max_examples:
        blocked.append(f"{stats.examples} examples; {info.label} takes {info.data.max_examples}")
    size = _file_size(spec.data.train)
    if info.data.file_size_limit_bytes and size > info.data.file_size_limit_bytes:
        blocked.append(f"the file is {size:,} bytes; {info.label} takes {info.data.file_size_limit_bytes:,}")
    report = data.validate(spec.data.train, name if name in registry.available() else None, model, show=1)
    if report.errors:
        first = report.shown[0].message if report.shown else ""
        blocked.append(f"{report.errors} examples break its data rules ({first})")
    elif report.warnings:
        warnings.append(f"{report.warnings} data warnings (fto data validate --for {name})")
    _, card = info.model(model)
    if card is None and info.models:
        warnings.append(f"{model} is not in {info.label}'s model table: its limits and price are unknown")
    hosting = card.hosting_usd_per_hour if card else None
    throughput = _throughput(store, name, model)
    hours = stats.charged_tokens / throughput.tokens_per_second / 3600 if throughput else None
    return PlanRow(
        backend=name,
        model=model,
        label=info.label,
        hosted=cls.hosted,
        examples=stats.examples,
        charged_tokens=stats.charged_tokens,
        epochs=stats.epochs,
        cost_usd=stats.estimated_cost_usd,
        cost_basis="estimate from provider.json" if stats.estimated_cost_usd is not None else "no token price known",
        hosting_usd_per_hour=hosting,
        throughput=throughput,
        expected_hours=round(hours, 4) if hours is not None else None,
        blocked=blocked,
        warnings=warnings,
        memory=_memory(
            backend, spec, device, int(stats.total_tokens_per_example.max if stats.total_tokens_per_example else 0)
        ),
    )


def _file_size(path: str) -> int:
    from pathlib import Path

    return Path(path).stat().st_size if Path(path).is_file() else 0


def _throughput(store: Store | None, backend: str, model: str) -> Throughput | None:
    """Median and spread of tokens/s over the store's past succeeded jobs of this backend and base model."""
    if store is None:
        return None
    rates = []
    for experiment in store.experiments():
        for job in store.jobs(experiment.id):
            seconds = (job.finished_at - job.created_at).total_seconds() if job.finished_at else 0
            if (job.backend == backend and job.base_model == model and job.status == JobStatus.SUCCEEDED
                    and job.trained_tokens and seconds > 0):  # fmt: skip
                rates.append(job.trained_tokens / seconds)
    if not rates:
        return None
    quartiles = statistics.quantiles(rates, n=4) if len(rates) > 1 else [rates[0]] * 3
    return Throughput(tokens_per_second=round(statistics.median(rates), 2), low=round(quartiles[0], 2),
                      high=round(quartiles[2], 2), jobs=len(rates))  # fmt: skip


def _memory(backend: Any, spec: JobSpec, device: str | None, longest: int) -> MemoryPlan | None:
    setup = backend.training_setup(spec)
    if setup is None:
        return None
    # a micro-batch holds a step's examples, up to batch_tokens: short examples make small micro-batches
    tokens = min(setup.tokens, setup.batch_size * longest) if longest else setup.tokens
    name = device or memory.this_machine()
    kind, gib, _ = memory.device(name)  # bf16 or fp16: both two bytes
    shape = memory.Shape.from_config(setup.config)
    precision = 2 if kind == "gpu" else 4  # GPUs train in bf16/fp16; fto's CPU default is fp32

    def make(tokens: int) -> memory.Estimate:
        return memory.estimate(shape, setup.tuning, tokens, setup.rank, precision, setup.checkpointing, kind,
                               setup.trained_in_full, setup.from_files)  # fmt: skip

    found = make(tokens)
    available = gib * memory.GiB
    return MemoryPlan(
        device=name,
        device_gib=gib,
        tuning=setup.tuning,
        micro_batch_tokens=tokens,
        params=shape.params,
        needed_gib=found.parts_gib(),
        fits=found.total <= available,
        largest_micro_batch_tokens=memory.largest_micro_batch(available, make),
    )


def with_probe(spec: JobSpec, found: Plan) -> Plan:
    """Local rows' tokens/s measured from a few real steps on this machine (probe.py), and their time from it."""
    from fto.orchestrator.plan.probe import probe

    rows = []
    for row in found.rows:
        if row.hosted or row.blocked or registry.backend_class(row.backend).__name__ != "LocalBackend":
            rows.append(row)
            continue
        measured = probe(spec, row)
        hours = row.charged_tokens / measured.tokens_per_second / 3600
        rows.append(row.model_copy(update={"throughput": measured, "expected_hours": round(hours, 4)}))
    return found.model_copy(update={"rows": rows, "recommendations": _recommend(rows)})


def with_baseline(found: Plan, scored: list[Baseline]) -> Plan:
    """The plan with the candidates' baseline scores (best first) and the best of them recommended."""
    advice = list(found.recommendations)
    if scored:
        best = scored[0]
        name, value = next(iter(best.scores.items()))
        interval = f" [{value.low:.3f}, {value.high:.3f}]" if value.low is not None else ""
        advice.append(Recommendation(kind="best baseline", backend=best.backend, model=best.model,
                                     why=f"{name} {value.value:.3f}{interval} on {best.examples} held-out "
                                         "examples before training"))  # fmt: skip
    return found.model_copy(update={"baseline": scored, "recommendations": advice})


def _basis(throughput: Throughput) -> str:
    return throughput.basis + (f", median of {throughput.jobs}" if throughput.jobs else "")


def _recommend(rows: list[PlanRow]) -> list[Recommendation]:
    open_rows = [r for r in rows if not r.blocked]
    found = []
    priced = [r for r in open_rows if r.hosted and r.cost_usd]  # local training is free: the hosted choice matters
    if priced:
        best = min(priced, key=lambda r: r.cost_usd or 0.0)
        found.append(Recommendation(kind="cheapest", backend=best.backend, model=best.model,
                                    why=f"${best.cost_usd:,.2f} ({best.cost_basis})"))  # fmt: skip
    timed = [r for r in open_rows if r.expected_hours is not None]
    if timed:
        best = min(timed, key=lambda r: r.expected_hours or 0.0)
        assert best.throughput is not None
        found.append(Recommendation(kind="fastest", backend=best.backend, model=best.model,
                                    why=f"{best.expected_hours:.2f} h at {best.throughput.tokens_per_second:,.0f} "
                                        f"tokens/s ({_basis(best.throughput)})"))  # fmt: skip
    fitting = [r for r in open_rows if r.memory and r.memory.fits]
    for row in fitting:
        assert row.memory is not None
        found.append(Recommendation(kind="fits", backend=row.backend, model=row.model,
                                    why=f"{row.memory.needed_gib['total']:.2f} of {row.memory.device_gib:g} GiB on "
                                        f"{row.memory.device}"))  # fmt: skip
    return found

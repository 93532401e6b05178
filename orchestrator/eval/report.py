"""One comparison of every model in an experiment, as one typed record (schemas/results.py): a rich table in the
terminal, markdown on disk, or its JSON (`fto compare --json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.table import Table

from fto.orchestrator import experiment_files as files
from fto.orchestrator.eval import overfit
from fto.orchestrator.eval.scorers import lower_is_better
from fto.orchestrator.eval.stats import holm, paired_comparison, wins_losses_ties
from fto.orchestrator.eval.usage import training_cost
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.storage import keep
from fto.orchestrator.store import Store
from fto.orchestrator.sweep import group
from fto.orchestrator.tracking import Tracking
from fto.schemas import Experiment, Job
from fto.schemas.results import (
    ComparisonKind,
    CurvePoint,
    DataCheck,
    ExampleResult,
    ExperimentResults,
    Gap,
    JobResult,
    LearningCurve,
    ModelResult,
    ModelRole,
    OverfitFinding,
    PairedTest,
    RankEntry,
    Score,
    SweepPoint,
    SweepRanking,
    Target,
    Usage,
    VersusBest,
)

PAIRED = "eval/paired.json"  # the paired tests, recorded after each eval (10,000 examples take a while to resample)


def comparison(store: Store, experiment: Experiment) -> ExperimentResults:
    """Everything the report shows, as one typed record (also `fto compare --json`)."""
    jobs = store.jobs(experiment.id)
    models, scorers = _models(store, experiment, jobs)
    tests = _recorded_paired_tests(store, experiment, models, scorers)
    check = files.load_json(store, experiment.id, files.CHECK)
    gaps = files.load_json(store, experiment.id, files.GAP) or {}
    return ExperimentResults(
        experiment=experiment.id,
        name=experiment.name,
        scorers=scorers,
        lower_is_better={s: lower_is_better(s) for s in scorers},
        models=models,
        jobs=[_job_result(store, job) for job in jobs],
        comparisons=tests,
        ranking=ranking(models, scorers, tests),
        check=DataCheck.model_validate(check) if check else None,
        learning_curve=learning_curve(store, experiment, models, scorers),
        sweep=sweep_ranking(store, experiment, models, scorers),
        generalisation_gap={label: Gap.model_validate(found) for label, found in gaps.items()},
        overfitting={
            job.id: OverfitFinding(**found.to_json(), text=found.text())
            for job in jobs
            if (found := overfit.detect(store.metrics(job.id)))
        },
    )


def _models(store: Store, experiment: Experiment, jobs: list[Job]) -> tuple[list[ModelResult], list[str]]:
    """Each evaluated model with its scores, eval usage, and training time and cost (beside quality per each)."""
    by_job = {j.id: j for j in jobs}
    usage = files.load_json(store, experiment.id, files.USAGE) or {}
    targets: dict[str, Target] = {}
    scores: dict[str, dict[str, Score]] = {}
    examples: dict[str, int] = {}
    scorers: list[str] = []
    for r in store.scores(experiment.id):
        if r["scorer"] not in scorers:
            scorers.append(r["scorer"])
        label = r["target"]
        targets.setdefault(label, Target(label=label, section=r["backend"], role=ModelRole(r["role"]),
                                         model=r["model"], job=r["job_id"], base_model=r["base_model"]))  # fmt: skip
        scores.setdefault(label, {})[r["scorer"]] = Score(value=r["score"], low=r["low"], high=r["high"])
        examples[label] = r["examples"]
    quality = next((s for s in scorers if not lower_is_better(s)), None)  # "more per dollar" needs higher = better
    models = []
    for label, target in targets.items():
        model = ModelResult(target=target, examples=examples[label], scores=scores[label],
                            usage=Usage.model_validate(usage[label]) if usage.get(label) else None)  # fmt: skip
        job = by_job.get(target.job or "")
        if target.role == ModelRole.FINE_TUNED and job is not None:
            _add_training_cost(model, job, experiment, quality)
        models.append(model)
    return models, scorers


def _add_training_cost(model: ModelResult, job: Job, experiment: Experiment, quality: str | None) -> None:
    section = experiment.spec.backends.get(job.backend)
    kind = (section.type if section else None) or job.backend
    model.training_cost_usd = training_cost(kind, job.base_model, job.trained_tokens)
    if job.finished_at:
        model.training_hours = round((job.finished_at - job.created_at).total_seconds() / 3600, 6)
    value = model.value(quality) if quality else None
    if value is None:
        return
    if model.training_cost_usd:
        model.quality_per_dollar = round(value / model.training_cost_usd, 6)
    if model.training_hours:
        model.quality_per_hour = round(value / model.training_hours, 6)


def _job_result(store: Store, job: Job) -> JobResult:
    last = store.last_metric(job.id)
    minutes = (job.finished_at - job.created_at).total_seconds() / 60 if job.finished_at else None
    return JobResult(job=job.id, backend=job.backend, status=job.status, base_model=job.base_model,
                     fine_tuned_model=job.fine_tuned_model, trained_tokens=job.trained_tokens, error=job.error,
                     final_loss=last.loss if last else None, final_valid_loss=last.valid_loss if last else None,
                     minutes=round(minutes, 2) if minutes is not None else None)  # fmt: skip


def _per_example(store: Store, experiment: Experiment, target: Target, scorer: str) -> list[float] | None:
    answers = files.load_answers(store, experiment.id, target.label)
    return None if answers is None else [a.scores.get(scorer, float("nan")) for a in answers]


def _pairs(models: list[ModelResult]) -> list[tuple[Target, Target, ComparisonKind]]:
    """Each fine-tuned model against its own job's base, and every fine-tuned model against every other."""
    tuned = [m.target for m in models if m.target.role == ModelRole.FINE_TUNED]
    bases = {m.target.job: m.target for m in models if m.target.role == ModelRole.BASE}
    pairs = [(bases[t.job], t, ComparisonKind.BASE) for t in tuned if t.job in bases]
    return pairs + [(a, b, ComparisonKind.BETWEEN) for i, a in enumerate(tuned) for b in tuned[i + 1 :]]


def paired_tests(
    store: Store, experiment: Experiment, models: list[ModelResult], scorers: list[str]
) -> list[PairedTest]:
    """Paired tests on the same examples, per scorer, between the pairs `_pairs` names (the question a run on
    several backends asks). p-values are Holm-adjusted within each scorer's family of tests."""
    pairs = _pairs(models)
    answers: dict[str, list[ExampleResult] | None] = {}  # each model's answers read once, for every scorer

    def values(target: Target, scorer: str) -> list[float] | None:
        if target.label not in answers:
            answers[target.label] = files.load_answers(store, experiment.id, target.label)
        recorded = answers[target.label]
        return None if recorded is None else [a.scores.get(scorer, float("nan")) for a in recorded]

    found = []
    for scorer in scorers:
        lower = lower_is_better(scorer)
        family = []
        for a_target, b_target, kind in pairs:
            a, b = values(a_target, scorer), values(b_target, scorer)
            if not a or not b or len(a) != len(b) or any(x != x for x in a + b):  # NaN: not scored here
                continue
            family.append((a_target, b_target, kind, a, b))
        results = [paired_comparison(a, b, seed=experiment.spec.seed) for *_, a, b in family]
        for (a_target, b_target, kind, a, b), result, p_holm in zip(
            family, results, holm([r.p_value for r in results]), strict=True
        ):
            wins, losses, ties = wins_losses_ties(a, b, lower)
            significant = result.significant and p_holm < 0.05
            text = (f"{scorer}: " + _describe(result, a_target.label, b_target.label, lower, p_holm, significant)
                    + f"; per example {wins} better, {losses} worse, {ties} tied")  # fmt: skip
            found.append(PairedTest(a=a_target, b=b_target, kind=kind, scorer=scorer, difference=result.difference,
                                    interval=result.interval, p_value=result.p_value, p_holm=p_holm,
                                    significant=significant, wins=wins, losses=losses, ties=ties,
                                    lower_is_better=lower, text=text))  # fmt: skip
    return found


def _fingerprint(models: list[ModelResult], scorers: list[str], seed: int) -> str:
    """What the recorded paired tests were computed from: a new eval of any model makes them stale."""
    scored = sorted((m.target.label, m.target.model, m.examples, {s: v.value for s, v in m.scores.items()})
                    for m in models)  # fmt: skip
    return json.dumps([scored, scorers, seed], sort_keys=True, default=str)


def record_paired_tests(store: Store, experiment: Experiment) -> list[PairedTest]:
    """Compute the paired tests of the models evaluated so far and keep them in the store (after each eval)."""
    models, scorers = _models(store, experiment, store.jobs(experiment.id))
    tests = paired_tests(store, experiment, models, scorers)
    document = {"from": _fingerprint(models, scorers, experiment.spec.seed),
                "tests": [t.model_dump(mode="json") for t in tests]}  # fmt: skip
    files.save(store, experiment.id, PAIRED, json.dumps(document))
    return tests


def _recorded_paired_tests(
    store: Store, experiment: Experiment, models: list[ModelResult], scorers: list[str]
) -> list[PairedTest]:
    recorded = files.load_json(store, experiment.id, PAIRED)
    if recorded and recorded.get("from") == _fingerprint(models, scorers, experiment.spec.seed):
        return [PairedTest.model_validate(t) for t in recorded["tests"]]
    return record_paired_tests(store, experiment) if models else []


def ranking(models: list[ModelResult], scorers: list[str], tests: list[PairedTest]) -> list[RankEntry]:
    """The models ranked on the first scorer, each with its interval; `behind_best` where a paired test finds the
    best significantly better (or, for a pair not tested on the same examples, where the two intervals are apart)."""
    if not scorers:
        return []
    scorer = scorers[0]
    lower = lower_is_better(scorer)
    scored = [m for m in models if (v := m.value(scorer)) is not None and v == v]
    scored.sort(key=lambda m: m.scores[scorer].value, reverse=not lower)
    if not scored:
        return []
    best = scored[0]
    tested = {frozenset((t.a.label, t.b.label)): t.significant for t in tests if t.scorer == scorer}
    entries = []
    for rank, model in enumerate(scored, 1):
        mine, top = model.scores[scorer], best.scores[scorer]
        behind = False
        if rank > 1:
            pair = frozenset((best.label, model.label))
            if pair in tested:
                behind = tested[pair] and mine.value != top.value
            elif top.low is not None and top.high is not None and mine.low is not None and mine.high is not None:
                behind = top.high < mine.low if lower else top.low > mine.high
        entries.append(RankEntry(rank=rank, target=model.target, scorer=scorer, score=mine, behind_best=behind))
    return entries


def _describe(result: Any, first: str, second: str, lower: bool, p_holm: float, significant: bool) -> str:
    low, high = result.interval
    if not significant:
        verdict = "within noise"
    else:
        better = (result.difference < 0) == lower
        verdict = f"significant: {second} is {'better' if better else 'worse'}"
    held = f", Holm {p_holm:.3g}" if abs(p_holm - result.p_value) > 1e-12 else ""
    interval = f"95% CI {low:+.3f} … {high:+.3f}"
    return f"{second} vs {first}: {result.difference:+.3f} ({interval}, p={result.p_value:.3g}{held}; {verdict})"


def _cell(model: ModelResult, scorer: str) -> str:
    found = model.scores.get(scorer)
    if found is None or found.value != found.value:
        return "n/a"
    bounds = f" [{found.low:.2f}, {found.high:.2f}]" if found.low is not None and found.high is not None else ""
    return f"{found.value:.3f}" + bounds


def _short_cell(model: ModelResult, scorer: str) -> str:
    """Compact, for an 80-column terminal: the score ± half its interval."""
    found = model.scores.get(scorer)
    if found is None or found.value != found.value:
        return "n/a"
    digits = 3 if abs(found.value) < 10 else 1
    half = f" ±{(found.high - found.low) / 2:.{digits}f}" if found.low is not None and found.high is not None else ""
    return f"{found.value:.{digits}f}" + half


def table(results: ExperimentResults) -> Table:
    """The comparison as a terminal table: each model's scores with their 95% intervals."""
    lower = [s for s in results.scorers if lower_is_better(s)]
    caption = f"↓ lower is better: {', '.join(lower)}" if lower else None
    t = Table(title=f"{results.name} ({results.experiment}): score ± half its 95% interval", caption=caption)
    t.add_column("model", no_wrap=True)
    for scorer in results.scorers:
        t.add_column(scorer + (" ↓" if lower_is_better(scorer) else ""), justify="right")
    t.add_column("examples", justify="right")
    for model in results.models:
        t.add_row(model.label, *(_short_cell(model, s) for s in results.scorers), str(model.examples))
    return t


def _value_lines(results: ExperimentResults) -> list[str]:
    """Quality per training dollar and per training hour, for the fine-tuned models that have either."""
    valued = [m for m in results.models if m.quality_per_dollar is not None or m.quality_per_hour is not None]
    if not valued:
        return []
    quality = next((s for s in results.scorers if not lower_is_better(s)), "")
    lines = ["", f"## Value for money: {quality} per training dollar and per training hour", ""]
    lines += ["| model | training cost (USD) | training hours | per dollar | per hour |", "|---|---:|---:|---:|---:|"]
    for m in valued:
        lines.append(f"| {m.label} | {_num(m.training_cost_usd)} | {_num(m.training_hours)} | "
                     f"{_num(m.quality_per_dollar)} | {_num(m.quality_per_hour)} |")  # fmt: skip
    return lines


def markdown(results: ExperimentResults) -> str:
    """The comparison as report.md: scores, paired comparisons, jobs and eval calls."""
    lines = [f"# {results.name} — experiment `{results.experiment}`", "", "## Scores", ""]
    lines.append("| model | " + " | ".join(results.scorers) + " | examples |")
    lines.append("|---|" + "---:|" * (len(results.scorers) + 1))
    for model in results.models:
        cells = " | ".join(_cell(model, s) for s in results.scorers)
        lines.append(f"| {model.label} | {cells} | {model.examples} |")
    if results.ranking:
        lines += ["", f"## Ranking on {results.ranking[0].scorer}", ""]
        lines += [f"{entry.rank}. {entry.target.label}: {_cell_of(entry.score)}"
                  + (" — the best is significantly better" if entry.behind_best else "")
                  for entry in results.ranking]  # fmt: skip
    lines += [
        "",
        "## Jobs",
        "",
        "| job | backend | status | final loss | valid loss | trained tokens | minutes |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for j in results.jobs:
        lines.append(
            f"| {j.job} | {j.backend} | {j.status.value} | {_num(j.final_loss)} | "
            f"{_num(j.final_valid_loss)} | {j.trained_tokens or ''} | {_num(j.minutes)} |"
        )
    lines += _value_lines(results)
    used = [m for m in results.models if m.usage]
    if used:
        lines += [
            "",
            "## Eval calls: tokens, cost, latency",
            "",
            "| model | calls | input tokens | output tokens | cost (USD) | mean latency (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for m in used:
            u = m.usage
            assert u is not None
            lines.append(
                f"| {m.label} | {u.calls} | {u.input_tokens or ''} | {u.output_tokens or ''} | "
                f"{_num(u.cost_usd)} | {_num(u.latency_mean_s)} |"
            )
    if results.comparisons:
        lines += ["", "## Paired comparisons on the same examples (bootstrap, Holm-adjusted per scorer)", ""]
        lines += [f"- {c.text} [{c.scorer}]" for c in results.comparisons]
    for curve in results.learning_curve:
        lines += ["", f"## Learning curve: {curve.backend} ({curve.scorer})", "",
                  "| fraction | examples | score | 95% interval |", "|---:|---:|---:|---|"]  # fmt: skip
        for p in curve.points:
            low, high = p.interval
            lines.append(f"| {p.fraction:g} | {p.examples} | {p.score:.3f} | {_num(low)} – {_num(high)} |")
        lines += ["", curve.verdict]
    for sweep in results.sweep:
        lines += ["", f"## Sweep: {sweep.backend} ({sweep.scorer})", ""]
        header, rows = sweep_cells(sweep)
        lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + "---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows] + ["", sweep.verdict]
    if results.generalisation_gap:
        lines += ["", "## Generalisation gap (a sample of the training data vs the held-out examples)", ""]
        lines += [f"- {line}" for line in gap_lines(results.generalisation_gap)]
    if results.overfitting:
        lines += ["", "## Overfitting", ""]
        lines += [f"- `{job}`: {found.text}" for job, found in results.overfitting.items()]
    if results.check:
        lines += ["", "## Data check", ""]
        lines += [f"- {issue}" for issue in check_lines(results.check)] or ["- no findings"]
    failed = [j for j in results.jobs if j.error]
    if failed:
        lines += ["", "## Errors", ""] + [f"- `{j.job}` ({j.backend}): {j.error}" for j in failed]
    return "\n".join(lines) + "\n"


def _cell_of(found: Score) -> str:
    bounds = f" [{found.low:.3f}, {found.high:.3f}]" if found.low is not None and found.high is not None else ""
    return f"{found.value:.3f}{bounds}"


def _tuned(models: Iterable[ModelResult], scorer: str) -> dict[str, ModelResult]:
    """Fine-tuned models scored on `scorer`, by their backend section."""
    return {m.target.section: m for m in models
            if m.target.role == ModelRole.FINE_TUNED and (v := m.value(scorer)) is not None and v == v}  # fmt: skip


def learning_curve(
    store: Store, experiment: Experiment, models: list[ModelResult], scorers: list[str]
) -> list[LearningCurve]:
    """Per backend of a learning curve: score (first scorer) against training examples, and whether it still
    improves between the two largest fractions by more than the larger one's interval half-width."""
    if not experiment.spec.fractions or not scorers:
        return []
    scorer = scorers[0]
    sign = -1 if lower_is_better(scorer) else 1
    tuned = _tuned(models, scorer)
    curves: dict[str, list[CurvePoint]] = {}
    for job in store.jobs(experiment.id):
        fraction = experiment.spec.fractions.get(job.backend)
        model = tuned.get(job.backend)
        if fraction is None or model is None:
            continue
        examples = next((int(e.data["examples"]) for e in store.events(job.id) if "examples" in e.data), None)
        found = model.scores[scorer]
        curves.setdefault(job.backend.partition("@")[0], []).append(
            CurvePoint(fraction=fraction, examples=examples, score=found.value, interval=(found.low, found.high))
        )
    out = []
    for backend, points in curves.items():
        points.sort(key=lambda p: p.fraction)
        verdict = "one point: nothing to compare"
        if len(points) > 1:
            previous, last = points[-2], points[-1]
            gain = sign * (last.score - previous.score)
            low, high = last.interval
            margin = (high - low) / 2 if low is not None and high is not None else 0.0
            moved = (
                f"from {previous.examples} to {last.examples} examples ({scorer} {previous.score:.3f} → "
                f"{last.score:.3f}"
            )
            verdict = (
                f"still improving {moved}): more data is likely to help"
                if gain > margin
                else f"flat {moved}, within ±{margin:.3f}): more data of the same kind may not help much"
            )
        out.append(LearningCurve(backend=backend, scorer=scorer, points=points, verdict=verdict))
    return out


def sweep_ranking(
    store: Store, experiment: Experiment, models: list[ModelResult], scorers: list[str]
) -> list[SweepRanking]:
    """Per swept section: its points ranked on the first scorer, each with its 95% interval and a paired test
    against the best point on the same examples (is the best really better, or within noise?)."""
    if not experiment.spec.points or not scorers:
        return []
    scorer = scorers[0]
    lower = lower_is_better(scorer)
    tuned = _tuned(models, scorer)
    groups: dict[str, list[SweepPoint]] = {}
    for section, values in experiment.spec.points.items():
        model = tuned.get(section)
        if model is None:
            continue
        found = model.scores[scorer]
        groups.setdefault(group(section), []).append(
            SweepPoint(section=section, values=values, score=found.value, interval=(found.low, found.high))
        )
    out = []
    for name, points in groups.items():
        points.sort(key=lambda p: p.score, reverse=not lower)
        best = points[0]
        best_scores = _per_example(store, experiment, tuned[best.section].target, scorer)
        for rank, point in enumerate(points, 1):
            point.rank = rank
            other = _per_example(store, experiment, tuned[point.section].target, scorer)
            if rank > 1 and best_scores and other and len(best_scores) == len(other):
                result = paired_comparison(other, best_scores, seed=experiment.spec.seed)
                point.versus_best = VersusBest(difference=result.difference, interval=result.interval,
                                               p_value=result.p_value, significant=result.significant)  # fmt: skip
        beaten = [p for p in points[1:] if p.versus_best and p.versus_best.significant]
        tied = [p.section for p in points[1:] if p not in beaten]
        verdict = f"best: {best.section} ({scorer} {best.score:.3f})"
        if len(points) > 1:
            verdict += f"; significantly better than {len(beaten)} of {len(points) - 1} other point(s)"
            verdict += f"; within noise of {', '.join(tied)}" if tied else ""
        parameters = list(dict.fromkeys(k for p in points for k in p.values))
        out.append(SweepRanking(backend=name, scorer=scorer, lower_is_better=lower, parameters=parameters,
                                points=points, verdict=verdict))  # fmt: skip
    return out


def sweep_cells(ranking: SweepRanking) -> tuple[list[str], list[list[str]]]:
    """A sweep's ranking as a header and rows of cells: the terminal, report.md and report.html show the same."""
    header = ["rank", *ranking.parameters, ranking.scorer, "95% interval", "vs best (paired)"]
    rows = []
    for p in ranking.points:
        low, high = p.interval
        versus = p.versus_best
        against = "best" if p.rank == 1 else "n/a"
        if versus:
            against = f"{versus.difference:+.3f}, p={versus.p_value:.3g}"
            against += " (significant)" if versus.significant else " (within noise)"
        values = [str(p.values.get(k, "")) for k in ranking.parameters]
        rows.append([str(p.rank), *values, f"{p.score:.3f}", f"{_num(low)} – {_num(high)}", against])
    return header, rows


def sweep_table(ranking: SweepRanking) -> Table:
    """A sweep's ranking for the terminal."""
    header, rows = sweep_cells(ranking)
    t = Table(title=f"sweep: {ranking.backend}, ranked on {ranking.scorer}", caption=ranking.verdict)
    for i, name in enumerate(header):
        t.add_column(name, justify="left" if i == len(header) - 1 else "right")
    for row in rows:
        t.add_row(*row)
    return t


def gap_lines(gaps: dict[str, Gap]) -> list[str]:
    """Per fine-tuned model and scorer: training-sample score, held-out score, and memorisation when far apart."""
    lines = []
    for label, found in gaps.items():
        for scorer, g in found.scorers.items():
            verdict = "memorisation: it answers its training data far better than new examples" if g.memorisation \
                else "generalises"  # fmt: skip
            lines.append(f"{label} {scorer}: {g.train:.3f} on {found.examples} training examples vs "
                         f"{g.held_out:.3f} held out (gap {g.gap:+.3f}) — {verdict}")  # fmt: skip
    return lines


def check_lines(check: DataCheck, limit: int = 20) -> list[str]:
    """The data check's findings as lines (the first `limit`, then how many more)."""
    shown = []
    for issue in check.issues[:limit]:
        lines = issue.lines
        where = f"{issue.file}:{', '.join(map(str, lines[:8]))}{'…' if len(lines) > 8 else ''}" if lines else ""
        shown.append(f"{issue.message} [{issue.code}]" + (f" — {where}" if where else ""))
    if len(check.issues) > limit:
        shown.append(f"… {len(check.issues) - limit} more in check.json")
    return shown


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def write_reports(store: Store, experiment: Experiment, results: ExperimentResults | None = None) -> tuple[str, str]:
    """report.md (for a pull request) and report.html (self-contained, with charts) in the experiment folder."""
    from fto.orchestrator.eval.html import render

    results = results or comparison(store, experiment)
    folder = experiment_dir(experiment.id)
    (folder / "report.md").write_text(markdown(results), encoding="utf-8")
    (folder / "report.html").write_text(render(store, experiment, results), encoding="utf-8")
    outputs = sorted(str(p.relative_to(folder)) for p in (folder / "eval").glob("*.json*"))
    keep(store, experiment.id, folder, ["report.md", "report.html", "check.json", *outputs])
    Tracking(store).report(experiment, results, [folder / "report.md", folder / "report.html"])
    return str(folder / "report.md"), str(folder / "report.html")


def verdicts(results: ExperimentResults) -> list[str]:
    """One line per backend: the fine-tuned model against its base, on the first scorer."""
    if not results.scorers:
        return []
    scorer = results.scorers[0]
    jobs = {j.job: j for j in results.jobs}
    lines = []
    for tuned in results.models:
        value = tuned.value(scorer)
        if tuned.target.role != ModelRole.FINE_TUNED or value is None:
            continue
        line = f"{tuned.target.section}: fine-tuned {scorer} {value:.3f}"
        base = results.base_of(tuned)
        base_value = base.value(scorer) if base else None
        if base_value is not None:
            line += f" vs base {base_value:.3f} ({value - base_value:+.3f})"
        job = jobs.get(tuned.target.job or "")
        model = job.fine_tuned_model if job else tuned.target.model
        lines.append(line + f" on {tuned.examples} held-out examples; model: {model}")
    return lines

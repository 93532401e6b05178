"""The experiment report as one self-contained HTML file (inline CSS and SVG, no scripts, nothing fetched), from
the templates the dashboard's comparison page shares; the charts here are the report's static SVG."""

from __future__ import annotations

import html
import math
from typing import Any, TypeGuard

from fto.orchestrator.eval.examples import Show, example_rows
from fto.orchestrator.eval.report import check_lines, gap_lines, sweep_cells
from fto.orchestrator.store import Store
from fto.orchestrator.templates import Markup
from fto.orchestrator.templates import render as render_template
from fto.schemas import Experiment
from fto.schemas.results import ExperimentResults, LearningCurve, ModelResult, SweepRanking

COLORS = ["#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c2255c", "#5c940d"]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _ticks(top: float, count: int = 5) -> list[float]:
    """`count` evenly spaced round values from 0 to about `top`, for an axis."""
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * k for k in range(int(top / step) + 1)]


def loss_chart(
    curves: dict[str, list[tuple[int, float]]],
    width: int = 1000,
    height: int = 280,
    marks: dict[str, int] | None = None,
    measure: str = "loss",
) -> str:
    """Loss (or another `measure`: RFT's reward) of every job against its step, training and validation where
    reported, on shared axes with ticks; `marks` draws a labelled line at a step (the best step of a job that
    overfit)."""
    points = [p for curve in curves.values() for p in curve]
    if not points:
        return "<p>No training metrics.</p>"
    max_step = max(s for s, _ in points) or 1
    bottom = min(0.0, min(v for _, v in points))  # rewards may be negative; losses start the axis at 0
    span = (max(v for _, v in points) - bottom) or 1.0
    left, pad = 60, 40

    def x_of(step: float) -> float:
        return left + step / max_step * (width - left - pad)

    def y_of(value: float) -> float:
        return height - pad - (value - bottom) / span * (height - 2 * pad)

    lines, legend = [], []
    for i, (label, curve) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{x_of(s):.1f},{y_of(v):.1f}" for s, v in curve)
        lines.append(f'<polyline class="curve" fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        legend.append(f'<text x="{left + 10}" y="{pad + 16 * i}" fill="{color}">{_e(label)}</text>')
    ticks = [
        f'<line class="tick" x1="{x_of(step):.1f}" y1="{height - pad}" x2="{x_of(step):.1f}" y2="{height - pad + 5}" '
        f'stroke="#868e96"/><text x="{x_of(step):.1f}" y="{height - pad + 18}" text-anchor="middle">{step:g}</text>'
        for step in _ticks(max_step)
        if step <= max_step
    ]
    ticks += [
        f'<line class="tick" x1="{left - 5}" y1="{y_of(value):.1f}" x2="{left}" y2="{y_of(value):.1f}" '
        f'stroke="#868e96"/><text x="{left - 8}" y="{y_of(value) + 4:.1f}" text-anchor="end">{value:g}</text>'
        for value in (bottom + t for t in _ticks(span))
        if value <= bottom + span
    ]
    for label, step in (marks or {}).items():
        x = x_of(step)
        lines.append(
            f'<line class="best-step" x1="{x:.1f}" y1="{pad / 2}" x2="{x:.1f}" y2="{height - pad}" '
            f'stroke="#e03131" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{pad / 2 + 10}" fill="#e03131">'
            f"{_e(label)}</text>"
        )
    axes = (
        f'<line x1="{left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#868e96"/>'
        f'<line x1="{left}" y1="{pad / 2}" x2="{left}" y2="{height - pad}" stroke="#868e96"/>'
        f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle">step</text>'
        f'<text x="4" y="{pad / 2 - 6}">{measure}</text>'
    )
    return (
        f'<svg id="{measure}-curves" class="chart" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{axes}{"".join(ticks)}{"".join(lines)}{"".join(legend)}</svg>'
    )


def score_chart(scorer: str, models: list[ModelResult], width: int = 1000) -> str:
    """One bar per model for a scorer, with its 95% interval as a whisker, on this scorer's own scale.

    Scores in [0, 1] share the scale 0–1; unbounded ones (perplexity, losses) run to their largest upper bound.
    A score that could not be computed is shown as n/a, without a bar.
    """
    row_h, label_w = 30, 220
    height = row_h * len(models) + 20
    scale = width - label_w - 90
    found = {m.label: m.scores.get(scorer) for m in models}
    known = [f for f in found.values() if f is not None and _finite(f.value)]
    highest = max((max(f.value, f.high if _finite(f.high) else 0) for f in known), default=1.0)
    top = 1.0 if highest <= 1.0 else highest  # one model's score never fills the chart unless it is the largest
    rows = []
    for i, model in enumerate(models):
        score = found[model.label]
        y = 10 + i * row_h
        rows.append(f'<text x="4" y="{y + 18}">{_e(model.label)}</text>')
        if score is None or not _finite(score.value):
            rows.append(f'<text class="na" x="{label_w + 4}" y="{y + 18}">n/a</text>')
            continue
        value = score.value
        low = score.low if _finite(score.low) else value
        high = score.high if _finite(score.high) else value
        color = COLORS[i % len(COLORS)]
        rows.append(
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{max(1.0, value / top * scale):.1f}" '
            f'height="{row_h - 10}" fill="{color}"/><line class="interval" x1="{label_w + low / top * scale:.1f}" '
            f'y1="{y + row_h / 2}" x2="{label_w + high / top * scale:.1f}" y2="{y + row_h / 2}" stroke="#212529" '
            f'stroke-width="2"/><text class="value" x="{label_w + scale + 10}" y="{y + 18}">{value:.4g}</text>'
        )
    return (
        f'<svg id="scores-{_e(scorer)}" class="chart" width="{width}" height="{height}" data-top="{top:g}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def curve_chart(curve: LearningCurve, width: int = 600, height: int = 220) -> str:
    """Score against training examples, each point with its 95% interval."""
    points = [p for p in curve.points if p.examples and _finite(p.score)]
    if not points:
        return ""
    most = max(p.examples or 0 for p in points)
    values: list[float] = [v for p in points for v in (p.score, *p.interval) if _finite(v)]
    top, bottom = max(values), min(0.0, min(values))
    span = (top - bottom) or 1.0

    def x_of(examples: float) -> float:
        return 50 + (width - 70) * examples / most

    def y_of(value: float) -> float:
        return height - 30 - (height - 50) * (value - bottom) / span

    marks = []
    for p in points:
        x = x_of(p.examples or 0)
        low, high = (v if v is not None and _finite(v) else p.score for v in p.interval)
        marks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y_of(low):.1f}' y2='{y_of(high):.1f}' stroke='#888'/>")
        marks.append(f"<circle cx='{x:.1f}' cy='{y_of(p.score):.1f}' r='4' fill='#2a6'/>")
        marks.append(f"<text x='{x:.1f}' y='{height - 10}' text-anchor='middle'>{p.examples}</text>")
    path = " ".join(f"{x_of(p.examples or 0):.1f},{y_of(p.score):.1f}" for p in points)
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='learning curve'>"
        f"<polyline points='{path}' fill='none' stroke='#2a6'/>{''.join(marks)}"
        f"<text x='5' y='15'>{_e(curve.scorer)}</text></svg>"
    )


def sweep_chart(ranking: SweepRanking, parameter: str, width: int = 600, height: int = 220) -> str:
    """Score against one swept value (a log axis when the values span a factor of 10 or more, as rates do)."""
    points = [p for p in ranking.points if _finite(p.values.get(parameter)) and _finite(p.score)]
    if len(points) < 2:
        return ""
    xs = [float(p.values[parameter]) for p in points]
    log = min(xs) > 0 and max(xs) / min(xs) >= 10
    scale = math.log10 if log else float
    low_x, high_x = scale(min(xs)), scale(max(xs))
    values: list[float] = [v for p in points for v in (p.score, *p.interval) if _finite(v)]
    top, bottom = max(values), min(0.0, min(values))
    span, x_span = (top - bottom) or 1.0, (high_x - low_x) or 1.0

    def x_of(value: float) -> float:
        return 50 + (width - 90) * (scale(value) - low_x) / x_span

    def y_of(value: float) -> float:
        return height - 30 - (height - 50) * (value - bottom) / span

    marks = []
    for p, x_value in sorted(zip(points, xs, strict=True), key=lambda item: item[1]):
        x = x_of(x_value)
        low, high = (v if v is not None and _finite(v) else p.score for v in p.interval)
        best = p.rank == 1
        marks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y_of(low):.1f}' y2='{y_of(high):.1f}' stroke='#888'/>")
        marks.append(f"<circle cx='{x:.1f}' cy='{y_of(p.score):.1f}' r='{5 if best else 4}' "
                     f"fill='{'#d62' if best else '#27c'}'><title>{_e(p.section)}</title></circle>")  # fmt: skip
        marks.append(f"<text x='{x:.1f}' y='{height - 10}' text-anchor='middle'>{x_value:g}</text>")
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='sweep: {_e(parameter)}'>{''.join(marks)}"
        f"<text x='5' y='15'>{_e(ranking.scorer)} against {_e(parameter)}{' (log axis)' if log else ''}</text>"
        "</svg>"
    )


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and math.isfinite(value)


def comparison_context(
    store: Store, experiment: Experiment, results: ExperimentResults, show: Show = "all"
) -> dict[str, Any]:
    """What the comparison part of a page needs (the report and the dashboard fill the same template with it)."""
    return {
        "data": results,
        "score_charts": {s: Markup(score_chart(s, results.models)) for s in results.scorers},
        "lower": results.lower_is_better,
        "examples": example_rows(store, experiment, results, show),
    }


def loss_curves(store: Store, results: ExperimentResults) -> dict[str, list[tuple[int, float]]]:
    """Every job's training (and validation) loss by step, labelled by backend and job."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for j in results.jobs:
        metrics = store.metrics(j.job)
        curves[f"{j.backend} {j.job}"] = [(m.step, m.loss) for m in metrics if m.loss is not None]
        valid = [(m.step, m.valid_loss) for m in metrics if m.valid_loss is not None]
        if valid:
            curves[f"{j.backend} {j.job} (validation)"] = valid
    return curves


def reward_curves(store: Store, results: ExperimentResults) -> dict[str, list[tuple[int, float]]]:
    """RFT jobs' mean reward by step (sampled answers), and on the validation prompts (greedy) where measured."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for j in results.jobs:
        metrics = store.metrics(j.job)
        rewards = [(m.step, m.reward) for m in metrics if m.reward is not None]
        if rewards:
            curves[f"{j.backend} {j.job}"] = rewards
        valid = [(m.step, m.valid_reward) for m in metrics if m.valid_reward is not None]
        if valid:
            curves[f"{j.backend} {j.job} (validation)"] = valid
    return curves


def render(store: Store, experiment: Experiment, results: ExperimentResults) -> str:
    """The self-contained HTML report of an experiment: loss curves, scores with intervals, per-example outputs."""
    best = {f"best step of {job}": found.best_step for job, found in results.overfitting.items()}
    rewards = reward_curves(store, results)
    return render_template(
        "report.html",
        **comparison_context(store, experiment, results),
        loss_chart=Markup(loss_chart(loss_curves(store, results), marks=best)),
        reward_chart=Markup(loss_chart(rewards, measure="reward")) if rewards else "",
        curve_charts=[Markup(curve_chart(curve)) for curve in results.learning_curve],
        sweep_charts=[[Markup(sweep_chart(r, name)) for name in r.parameters] for r in results.sweep],
        sweep_tables=[sweep_cells(r) for r in results.sweep],
        gap_lines=gap_lines(results.generalisation_gap),
        check_lines=check_lines(results.check) if results.check else [],
    )

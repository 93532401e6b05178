"""The experiment report as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched."""

from __future__ import annotations

import html
import json
import math
from typing import Any

from fto.orchestrator.eval.report import check_lines, gap_lines, overfit_text, sweep_cells
from fto.orchestrator.eval.scorers import lower_is_better
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.store import Store
from fto.schemas import Experiment

COLORS = ["#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c2255c", "#5c940d"]
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#212529;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #dee2e6;padding:.3rem .5rem;text-align:left;
vertical-align:top}th{background:#f1f3f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.chart{background:#fff;border:1px solid #dee2e6;margin:.5rem 0}.ok{color:#2f9e44}.noise{color:#868e96}
pre{white-space:pre-wrap;margin:0;font:12px/1.35 ui-monospace,monospace}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


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
) -> str:
    """Loss of every job (training, and validation where reported) against its step, on shared axes with ticks;
    `marks` draws a labelled line at a step (the best step of a job that overfit)."""
    points = [p for curve in curves.values() for p in curve]
    if not points:
        return "<p>No training metrics.</p>"
    max_step = max(s for s, _ in points) or 1
    top = max(v for _, v in points) or 1.0
    left, pad = 60, 40

    def x_of(step: float) -> float:
        return left + step / max_step * (width - left - pad)

    def y_of(value: float) -> float:
        return height - pad - value / top * (height - 2 * pad)

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
        for value in _ticks(top)
        if value <= top
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
        f'<text x="4" y="{pad / 2 - 6}">loss</text>'
    )
    return (
        f'<svg id="loss-curves" class="chart" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{axes}{"".join(ticks)}{"".join(lines)}{"".join(legend)}</svg>'
    )


def score_chart(scorer: str, models: list[dict[str, Any]], width: int = 1000) -> str:
    """One bar per model for a scorer, with its 95% interval as a whisker, on this scorer's own scale.

    Scores in [0, 1] share the scale 0–1; unbounded ones (perplexity, losses) run to their largest upper bound.
    A score that could not be computed is shown as n/a, without a bar.
    """
    row_h, label_w = 30, 220
    height = row_h * len(models) + 20
    scale = width - label_w - 90
    known = [m for m in models if _finite(m["scores"].get(scorer))]
    highest = max(
        (max(m["scores"][scorer], (m.get("intervals", {}).get(scorer) or [0, 0])[1] or 0) for m in known), default=1.0
    )
    top = 1.0 if highest <= 1.0 else highest  # one model's score never fills the chart unless it is the largest
    rows = []
    for i, model in enumerate(models):
        score = model["scores"].get(scorer)
        y = 10 + i * row_h
        rows.append(f'<text x="4" y="{y + 18}">{_e(model["target"])}</text>')
        if not _finite(score):
            rows.append(f'<text class="na" x="{label_w + 4}" y="{y + 18}">n/a</text>')
            continue
        low, high = model.get("intervals", {}).get(scorer) or (score, score)
        low, high = (low if _finite(low) else score), (high if _finite(high) else score)
        color = COLORS[i % len(COLORS)]
        rows.append(
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{max(1.0, score / top * scale):.1f}" '
            f'height="{row_h - 10}" fill="{color}"/><line class="interval" x1="{label_w + low / top * scale:.1f}" '
            f'y1="{y + row_h / 2}" x2="{label_w + high / top * scale:.1f}" y2="{y + row_h / 2}" stroke="#212529" '
            f'stroke-width="2"/><text class="value" x="{label_w + scale + 10}" y="{y + 18}">{score:.4g}</text>'
        )
    return (
        f'<svg id="scores-{_e(scorer)}" class="chart" width="{width}" height="{height}" data-top="{top:g}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def curve_chart(curve: dict[str, Any], width: int = 600, height: int = 220) -> str:
    """Score against training examples, each point with its 95% interval."""
    points = [p for p in curve["points"] if p["examples"] and _finite(p["score"])]
    if not points:
        return ""
    most = max(p["examples"] for p in points)
    values = [v for p in points for v in (p["score"], *p["interval"]) if _finite(v)]
    top, bottom = max(values), min(0.0, min(values))
    span = (top - bottom) or 1.0

    def x_of(examples: float) -> float:
        return 50 + (width - 70) * examples / most

    def y_of(value: float) -> float:
        return height - 30 - (height - 50) * (value - bottom) / span

    marks = []
    for p in points:
        x = x_of(p["examples"])
        low, high = (v if _finite(v) else p["score"] for v in p["interval"])
        marks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y_of(low):.1f}' y2='{y_of(high):.1f}' stroke='#888'/>")
        marks.append(f"<circle cx='{x:.1f}' cy='{y_of(p['score']):.1f}' r='4' fill='#2a6'/>")
        marks.append(f"<text x='{x:.1f}' y='{height - 10}' text-anchor='middle'>{p['examples']}</text>")
    path = " ".join(f"{x_of(p['examples']):.1f},{y_of(p['score']):.1f}" for p in points)
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='learning curve'>"
        f"<polyline points='{path}' fill='none' stroke='#2a6'/>{''.join(marks)}"
        f"<text x='5' y='15'>{_e(curve['scorer'])}</text></svg>"
    )


def sweep_chart(ranking: dict[str, Any], parameter: str, width: int = 600, height: int = 220) -> str:
    """Score against one swept value (a log axis when the values span a factor of 10 or more, as rates do)."""
    points = [p for p in ranking["points"] if _finite(p["values"].get(parameter)) and _finite(p["score"])]
    if len(points) < 2:
        return ""
    xs = [float(p["values"][parameter]) for p in points]
    log = min(xs) > 0 and max(xs) / min(xs) >= 10
    scale = math.log10 if log else float
    low_x, high_x = scale(min(xs)), scale(max(xs))
    values = [v for p in points for v in (p["score"], *p["interval"]) if _finite(v)]
    top, bottom = max(values), min(0.0, min(values))
    span, x_span = (top - bottom) or 1.0, (high_x - low_x) or 1.0

    def x_of(value: float) -> float:
        return 50 + (width - 90) * (scale(value) - low_x) / x_span

    def y_of(value: float) -> float:
        return height - 30 - (height - 50) * (value - bottom) / span

    marks = []
    for p, x_value in sorted(zip(points, xs, strict=True), key=lambda item: item[1]):
        x = x_of(x_value)
        low, high = (v if _finite(v) else p["score"] for v in p["interval"])
        best = p["rank"] == 1
        marks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y_of(low):.1f}' y2='{y_of(high):.1f}' stroke='#888'/>")
        marks.append(f"<circle cx='{x:.1f}' cy='{y_of(p['score']):.1f}' r='{5 if best else 4}' "
                     f"fill='{'#d62' if best else '#27c'}'><title>{_e(p['section'])}</title></circle>")  # fmt: skip
        marks.append(f"<text x='{x:.1f}' y='{height - 10}' text-anchor='middle'>{x_value:g}</text>")
    return (
        f"<svg width='{width}' height='{height}' role='img' aria-label='sweep: {_e(parameter)}'>{''.join(marks)}"
        f"<text x='5' y='15'>{_e(ranking['scorer'])} against {_e(parameter)}{' (log axis)' if log else ''}</text>"
        "</svg>"
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def render(store: Store, experiment: Experiment, data: dict[str, Any]) -> str:
    """The self-contained HTML report of an experiment: loss curves, scores with intervals, per-example outputs."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for j in data["jobs"]:
        metrics = store.metrics(j["job"])
        curves[f"{j['backend']} {j['job']}"] = [(m.step, m.loss) for m in metrics if m.loss is not None]
        valid = [(m.step, m.valid_loss) for m in metrics if m.valid_loss is not None]
        if valid:
            curves[f"{j['backend']} {j['job']} (validation)"] = valid
    best = {f"best step of {job}": found["best_step"] for job, found in (data.get("overfitting") or {}).items()}
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(data['name'])} — fto report</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(data['name'])} <small>experiment {_e(data['experiment'])}</small></h1>",
        "<h2>Scores (95% bootstrap intervals)</h2>",
    ]
    for scorer in data["scorers"]:
        direction = " <small>(lower is better)</small>" if lower_is_better(scorer) else ""
        parts += [f"<h3>{_e(scorer)}{direction}</h3>", score_chart(scorer, data["models"])]
    if data.get("comparisons"):
        parts.append("<h2>Fine-tuned vs base, on the same examples</h2><ul>")
        for c in data["comparisons"]:
            kind = "ok" if c["significant"] else "noise"
            parts.append(f"<li class='{kind}'>{_e(c['text'])} [{_e(c['scorer'])}]</li>")
        parts.append("</ul>")
    parts += [
        "<h2>Training loss</h2>",
        loss_chart(curves, marks=best),
        "<h2>Jobs: time and tokens</h2>",
        "<table><tr><th>job</th><th>backend</th><th>status</th><th>minutes</th><th>trained tokens</th>"
        "<th>final loss</th><th>fine-tuned model</th></tr>",
    ]
    for j in data["jobs"]:
        parts.append(
            f"<tr><td>{_e(j['job'])}</td><td>{_e(j['backend'])}</td><td>{_e(j['status'])}</td>"
            f"<td class='num'>{_e(j['minutes'])}</td><td class='num'>{_e(j['trained_tokens'])}</td>"
            f"<td class='num'>{_e(j['final_loss'])}</td><td>{_e(j['fine_tuned_model'] or j['error'])}</td></tr>"
        )
    parts.append("</table>")
    used = [row for row in data["models"] if row.get("usage")]
    if used:
        parts.append(
            "<h2>Eval calls: tokens, cost, latency</h2><table><tr><th>model</th><th>calls</th><th>input tokens</th>"
            "<th>output tokens</th><th>cost (USD)</th><th>mean latency (s)</th></tr>"
        )
        for row in used:
            u = row["usage"]
            parts.append(
                f"<tr><td>{_e(row['target'])}</td><td class='num'>{_e(u['calls'])}</td>"
                f"<td class='num'>{_e(u['input_tokens'])}</td><td class='num'>{_e(u['output_tokens'])}</td>"
                f"<td class='num'>{_e(u['cost_usd'])}</td><td class='num'>{_e(u['latency_mean_s'])}</td></tr>"
            )
        parts.append("</table>")
    for curve in data.get("learning_curve") or []:
        parts.append(f"<h2>Learning curve: {_e(curve['backend'])}</h2>")
        parts.append(curve_chart(curve))
        parts.append(f"<p>{_e(curve['verdict'])}</p>")
    for ranking in data.get("sweep") or []:
        parts.append(f"<h2>Sweep: {_e(ranking['backend'])}</h2>")
        parts += [sweep_chart(ranking, name) for name in ranking["parameters"]]
        parts.append(_table(*sweep_cells(ranking)))
        parts.append(f"<p>{_e(ranking['verdict'])}</p>")
    if data.get("generalisation_gap"):
        parts.append("<h2>Generalisation gap</h2><ul>")
        parts += [f"<li>{_e(line)}</li>" for line in gap_lines(data["generalisation_gap"])]
        parts.append("</ul>")
    if data.get("overfitting"):
        parts.append("<h2>Overfitting</h2><ul>")
        parts += [f"<li>{_e(job)}: {_e(overfit_text(found))}</li>" for job, found in data["overfitting"].items()]
        parts.append("</ul>")
    if data.get("check"):
        parts.append("<h2>Data check</h2><ul>")
        parts += [f"<li>{_e(line)}</li>" for line in check_lines(data["check"])] or ["<li>no findings</li>"]
        parts.append("</ul>")
    parts += _examples(experiment, data)
    parts.append("</body></html>")
    return "".join(parts)


def _examples(experiment: Experiment, data: dict[str, Any], limit: int = 200) -> list[str]:
    """Per-example outputs side by side, with their scores."""
    folder = experiment_dir(experiment.id) / "eval"
    outputs: dict[str, list[dict[str, Any]]] = {}
    for model in data["models"]:
        path = folder / f"{model['target'].replace('/', '.')}.jsonl"
        if path.exists():
            outputs[model["target"]] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not outputs:
        return []
    first = next(iter(outputs.values()))
    head = "".join(f"<th>{_e(t)}</th>" for t in outputs)
    parts = [
        f"<h2>Examples (first {min(limit, len(first))} of {len(first)})</h2>",
        f"<table id='examples'><tr><th>line</th><th>reference</th>{head}</tr>",
    ]
    for i, row in enumerate(first[:limit]):
        cells = []
        for rows in outputs.values():
            scores = ", ".join(f"{k} {v:.2f}" if _finite(v) else f"{k} n/a" for k, v in rows[i]["scores"].items())
            cells.append(f"<td><pre>{_e(rows[i]['output'])}</pre><small>{_e(scores)}</small></td>")
        parts.append(
            f"<tr><td class='num'>{_e(row['line'])}</td><td><pre>{_e(row['reference'])}</pre></td>{''.join(cells)}</tr>"
        )
    parts.append("</table>")
    return parts

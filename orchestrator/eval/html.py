"""The experiment report as one self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched."""

from __future__ import annotations

import html
import json
from typing import Any

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


def loss_chart(curves: dict[str, list[tuple[int, float]]], width: int = 1000, height: int = 280) -> str:
    """Training loss of every job against its step, on shared axes."""
    points = [p for curve in curves.values() for p in curve]
    if not points:
        return "<p>No training metrics.</p>"
    max_step = max(s for s, _ in points) or 1
    top = max(v for _, v in points) or 1.0
    pad = 40

    def xy(step: int, value: float) -> str:
        return f"{pad + step / max_step * (width - 2 * pad):.1f},{height - pad - value / top * (height - 2 * pad):.1f}"

    lines, legend = [], []
    for i, (label, curve) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(xy(s, v) for s, v in curve)
        lines.append(f'<polyline class="curve" fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        legend.append(f'<text x="{pad + 10}" y="{pad + 16 * i}" fill="{color}">{_e(label)}</text>')
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#868e96"/>'
        f'<line x1="{pad}" y1="{pad / 2}" x2="{pad}" y2="{height - pad}" stroke="#868e96"/>'
        f'<text x="{width / 2}" y="{height - 8}">step (max {max_step})</text>'
        f'<text x="4" y="{pad / 2}">loss (max {top:.3g})</text>'
    )
    return (
        f'<svg id="loss-curves" class="chart" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{axes}{"".join(lines)}{"".join(legend)}</svg>'
    )


def score_chart(scorer: str, models: list[dict[str, Any]], width: int = 1000) -> str:
    """One bar per model for a scorer, with its 95% interval as a whisker."""
    row_h, label_w = 30, 220
    height = row_h * len(models) + 20
    scale = width - label_w - 80
    rows = []
    for i, model in enumerate(models):
        score = model["scores"].get(scorer)
        if score is None:
            continue
        low, high = model.get("intervals", {}).get(scorer) or (score, score)
        y = 10 + i * row_h
        color = COLORS[i % len(COLORS)]
        rows.append(
            f'<text x="4" y="{y + 18}">{_e(model["target"])}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{max(1.0, score * scale):.1f}" height="{row_h - 10}" '
            f'fill="{color}"/><line class="interval" x1="{label_w + (low or 0) * scale:.1f}" y1="{y + row_h / 2}" '
            f'x2="{label_w + (high or 0) * scale:.1f}" y2="{y + row_h / 2}" stroke="#212529" stroke-width="2"/>'
            f'<text x="{label_w + scale + 8}" y="{y + 18}">{score:.3f}</text>'
        )
    return (
        f'<svg id="scores-{_e(scorer)}" class="chart" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def render(store: Store, experiment: Experiment, data: dict[str, Any]) -> str:
    """The self-contained HTML report of an experiment: loss curves, scores with intervals, per-example outputs."""
    curves = {
        f"{j['backend']} {j['job']}": [(m.step, m.loss) for m in store.metrics(j["job"]) if m.loss is not None]
        for j in data["jobs"]
    }
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(data['name'])} — fto report</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(data['name'])} <small>experiment {_e(data['experiment'])}</small></h1>",
        "<h2>Scores (95% bootstrap intervals)</h2>",
    ]
    for scorer in data["scorers"]:
        parts += [f"<h3>{_e(scorer)}</h3>", score_chart(scorer, data["models"])]
    if data.get("comparisons"):
        parts.append("<h2>Fine-tuned vs base, on the same examples</h2><ul>")
        for c in data["comparisons"]:
            kind = "ok" if c["significant"] else "noise"
            parts.append(f"<li class='{kind}'>{_e(c['text'])} [{_e(c['scorer'])}]</li>")
        parts.append("</ul>")
    parts += [
        "<h2>Training loss</h2>",
        loss_chart(curves),
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
            scores = ", ".join(f"{k} {v:.2f}" for k, v in rows[i]["scores"].items())
            cells.append(f"<td><pre>{_e(rows[i]['output'])}</pre><small>{_e(scores)}</small></td>")
        parts.append(
            f"<tr><td class='num'>{_e(row['line'])}</td><td><pre>{_e(row['reference'])}</pre></td>{''.join(cells)}</tr>"
        )
    parts.append("</table>")
    return parts

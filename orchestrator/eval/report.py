"""One comparison of every model in an experiment: a rich table in the terminal, markdown on disk, or JSON."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from fto.orchestrator import experiment_files as files
from fto.orchestrator.eval import overfit
from fto.orchestrator.eval.scorers import lower_is_better
from fto.orchestrator.eval.stats import holm, paired_comparison, wins_losses_ties
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.storage import keep
from fto.orchestrator.store import Store
from fto.orchestrator.sweep import group
from fto.orchestrator.tracking import Tracking
from fto.schemas import Experiment


def comparison(store: Store, experiment: Experiment) -> dict[str, Any]:
    """Everything the report shows, as plain data (this is also `fto compare --json`)."""
    jobs = {j.id: j for j in store.jobs(experiment.id)}
    rows: dict[str, dict[str, Any]] = {}
    scorers: list[str] = []
    for r in store.scores(experiment.id):
        if r["scorer"] not in scorers:
            scorers.append(r["scorer"])
        row = rows.setdefault(
            r["target"],
            {
                "target": r["target"],
                "backend": r["backend"],
                "model": r["model"],
                "job": r["job_id"],
                "examples": r["examples"],
                "scores": {},
                "intervals": {},
            },
        )
        row["scores"][r["scorer"]] = r["score"]
        row["intervals"][r["scorer"]] = [r["low"], r["high"]]
    usage = files.load_json(store, experiment.id, files.USAGE) or {}
    for label, row in rows.items():
        row["usage"] = usage.get(label)
    job_rows = []
    for job in jobs.values():
        last = store.last_metric(job.id)
        minutes = (job.finished_at - job.created_at).total_seconds() / 60 if job.finished_at else None
        job_rows.append(
            {
                "job": job.id,
                "backend": job.backend,
                "status": job.status.value,
                "base_model": job.base_model,
                "fine_tuned_model": job.fine_tuned_model,
                "trained_tokens": job.trained_tokens,
                "error": job.error,
                "final_loss": last.loss if last else None,
                "final_valid_loss": last.valid_loss if last else None,
                "minutes": round(minutes, 2) if minutes is not None else None,
            }
        )
    return {
        "experiment": experiment.id,
        "name": experiment.name,
        "scorers": scorers,
        "models": list(rows.values()),
        "jobs": job_rows,
        "comparisons": comparisons(store, experiment, list(rows), scorers),
        "check": files.load_json(store, experiment.id, files.CHECK),  # the data check at submit
        "learning_curve": learning_curve(store, experiment, rows, scorers),
        "sweep": sweep_ranking(store, experiment, rows, scorers),
        "generalisation_gap": files.load_json(store, experiment.id, files.GAP) or {},
        "overfitting": {
            job.id: found.to_json() for job in jobs.values() if (found := overfit.detect(store.metrics(job.id)))
        },
    }


def _rows(store: Store, experiment: Experiment, section: str) -> list[dict[str, Any]] | None:
    return files.load_rows(store, experiment.id, files.outputs_name(f"{section}/fine-tuned"))


def _per_example(rows: list[dict[str, Any]] | None, scorer: str) -> list[float] | None:
    return None if rows is None else [row["scores"].get(scorer, float("nan")) for row in rows]


def comparisons(store: Store, experiment: Experiment, targets: list[str], scorers: list[str]) -> list[dict[str, Any]]:
    """Paired tests on the same examples, per scorer: each fine-tuned model against its base, and every fine-tuned
    model against every other (local against each hosted one, sweep points, learning-curve points) — the question
    a run on several backends asks. p-values are Holm-adjusted within each scorer's family of tests."""
    tuned = [t for t in targets if t.endswith("/fine-tuned")]
    pairs = [(t.removesuffix("/fine-tuned") + "/base", t, "base") for t in tuned]
    pairs += [(a, b, "between") for i, a in enumerate(tuned) for b in tuned[i + 1 :]]
    outputs = {t: files.load_rows(store, experiment.id, files.outputs_name(t)) for t in targets}
    found = []
    for scorer in scorers:
        family = []
        for a_label, b_label, kind in pairs:
            if a_label not in targets:
                continue
            a, b = _per_example(outputs[a_label], scorer), _per_example(outputs[b_label], scorer)
            if not a or not b or len(a) != len(b) or any(x != x for x in a + b):  # NaN: not scored here
                continue
            family.append((a_label, b_label, kind, a, b))
        results = [paired_comparison(a, b, seed=experiment.spec.seed) for *_, a, b in family]
        adjusted = holm([r.p_value for r in results])
        for (a_label, b_label, kind, a, b), result, p_holm in zip(family, results, adjusted, strict=True):
            lower = lower_is_better(scorer)
            wins, losses, ties = wins_losses_ties(a, b, lower)
            significant = result.significant and p_holm < 0.05
            found.append(
                {
                    "a": a_label,
                    "b": b_label,
                    "kind": kind,  # "base": a fine-tuned model against its base; "between": two fine-tuned models
                    "scorer": scorer,
                    "difference": result.difference,
                    "interval": list(result.interval),
                    "p_value": result.p_value,
                    "p_holm": p_holm,
                    "significant": significant,
                    "wins": wins,
                    "losses": losses,
                    "ties": ties,
                    "lower_is_better": lower,
                    "text": f"{scorer}: "
                    + _describe(result, a_label, b_label, lower, p_holm, significant)
                    + f"; per example {wins} better, {losses} worse, {ties} tied",
                }
            )
    return found


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


def _cell(row: dict[str, Any], scorer: str) -> str:
    score = row["scores"].get(scorer)
    low, high = row.get("intervals", {}).get(scorer) or (None, None)
    if score is None or score != score:
        return "n/a"
    return f"{score:.3f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")


def _short_cell(row: dict[str, Any], scorer: str) -> str:
    """Compact, for an 80-column terminal: the score ± half its interval."""
    score = row["scores"].get(scorer)
    low, high = row.get("intervals", {}).get(scorer) or (None, None)
    if score is None or score != score:
        return "n/a"
    digits = 3 if abs(score) < 10 else 1
    return f"{score:.{digits}f}" + (f" ±{(high - low) / 2:.{digits}f}" if low is not None and high is not None else "")


def table(data: dict[str, Any]) -> Table:
    """The comparison as a terminal table: each model's scores with their 95% intervals."""
    lower = [s for s in data["scorers"] if lower_is_better(s)]
    caption = f"↓ lower is better: {', '.join(lower)}" if lower else None
    t = Table(title=f"{data['name']} ({data['experiment']}): score ± half its 95% interval", caption=caption)
    t.add_column("model", no_wrap=True)
    for scorer in data["scorers"]:
        t.add_column(scorer + (" ↓" if lower_is_better(scorer) else ""), justify="right")
    t.add_column("examples", justify="right")
    for row in data["models"]:
        t.add_row(row["target"], *(_short_cell(row, s) for s in data["scorers"]), str(row["examples"]))
    return t


def markdown(data: dict[str, Any]) -> str:
    """The comparison as report.md: scores, paired comparisons, jobs and eval calls."""
    lines = [f"# {data['name']} — experiment `{data['experiment']}`", "", "## Scores", ""]
    lines.append("| model | " + " | ".join(data["scorers"]) + " | examples |")
    lines.append("|---|" + "---:|" * (len(data["scorers"]) + 1))
    for row in data["models"]:
        cells = " | ".join(_cell(row, s) for s in data["scorers"])
        lines.append(f"| {row['target']} | {cells} | {row['examples']} |")
    lines += [
        "",
        "## Jobs",
        "",
        "| job | backend | status | final loss | valid loss | trained tokens | minutes |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for j in data["jobs"]:
        lines.append(
            f"| {j['job']} | {j['backend']} | {j['status']} | {_num(j['final_loss'])} | "
            f"{_num(j['final_valid_loss'])} | {j['trained_tokens'] or ''} | {_num(j['minutes'])} |"
        )
    used = [row for row in data["models"] if row.get("usage")]
    if used:
        lines += [
            "",
            "## Eval calls: tokens, cost, latency",
            "",
            "| model | calls | input tokens | output tokens | cost (USD) | mean latency (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in used:
            u = row["usage"]
            lines.append(
                f"| {row['target']} | {u['calls']} | {u['input_tokens'] or ''} | {u['output_tokens'] or ''} | "
                f"{_num(u['cost_usd'])} | {_num(u['latency_mean_s'])} |"
            )
    if data.get("comparisons"):
        lines += ["", "## Paired comparisons on the same examples (bootstrap, Holm-adjusted per scorer)", ""]
        lines += [f"- {c['text']} [{c['scorer']}]" for c in data["comparisons"]]
    for curve in data.get("learning_curve") or []:
        lines += ["", f"## Learning curve: {curve['backend']} ({curve['scorer']})", "",
                  "| fraction | examples | score | 95% interval |", "|---:|---:|---:|---|"]  # fmt: skip
        for p in curve["points"]:
            low, high = p["interval"]
            lines.append(f"| {p['fraction']:g} | {p['examples']} | {p['score']:.3f} | {_num(low)} – {_num(high)} |")
        lines += ["", curve["verdict"]]
    for ranking in data.get("sweep") or []:
        lines += ["", f"## Sweep: {ranking['backend']} ({ranking['scorer']})", ""]
        header, rows = sweep_cells(ranking)
        lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + "---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows] + ["", ranking["verdict"]]
    if data.get("generalisation_gap"):
        lines += ["", "## Generalisation gap (a sample of the training data vs the held-out examples)", ""]
        lines += [f"- {line}" for line in gap_lines(data["generalisation_gap"])]
    if data.get("overfitting"):
        lines += ["", "## Overfitting", ""]
        lines += [f"- `{job}`: {overfit_text(found)}" for job, found in data["overfitting"].items()]
    check = data.get("check")
    if check:
        lines += ["", "## Data check", ""]
        lines += [f"- {issue}" for issue in check_lines(check)] or ["- no findings"]
    failed = [j for j in data["jobs"] if j["error"]]
    if failed:
        lines += ["", "## Errors", ""] + [f"- `{j['job']}` ({j['backend']}): {j['error']}" for j in failed]
    return "\n".join(lines) + "\n"


def learning_curve(
    store: Store, experiment: Experiment, rows: dict[str, dict[str, Any]], scorers: list[str]
) -> list[dict[str, Any]]:
    """Per backend of a learning curve: score (first scorer) against training examples, and whether it still
    improves between the two largest fractions by more than the larger one's interval half-width."""
    if not experiment.spec.fractions or not scorers:
        return []
    scorer = scorers[0]
    sign = -1 if lower_is_better(scorer) else 1
    curves: dict[str, list[dict[str, Any]]] = {}
    for job in store.jobs(experiment.id):
        fraction = experiment.spec.fractions.get(job.backend)
        row = rows.get(f"{job.backend}/fine-tuned")
        if fraction is None or row is None or scorer not in row["scores"]:
            continue
        examples = next((int(e.data["examples"]) for e in store.events(job.id) if "examples" in e.data), None)
        curves.setdefault(job.backend.partition("@")[0], []).append(
            {"fraction": fraction, "examples": examples, "score": row["scores"][scorer],
             "interval": row["intervals"][scorer]}
        )  # fmt: skip
    out = []
    for backend, points in curves.items():
        points.sort(key=lambda p: p["fraction"])
        verdict = "one point: nothing to compare"
        if len(points) > 1:
            previous, last = points[-2], points[-1]
            gain = sign * (last["score"] - previous["score"])
            low, high = last["interval"]
            margin = (high - low) / 2 if low is not None and high is not None else 0.0
            moved = (
                f"from {previous['examples']} to {last['examples']} examples ({scorer} {previous['score']:.3f} → "
                f"{last['score']:.3f}"
            )
            verdict = (
                f"still improving {moved}): more data is likely to help"
                if gain > margin
                else f"flat {moved}, within ±{margin:.3f}): more data of the same kind may not help much"
            )
        out.append({"backend": backend, "scorer": scorer, "points": points, "verdict": verdict})
    return out


def sweep_ranking(
    store: Store, experiment: Experiment, rows: dict[str, dict[str, Any]], scorers: list[str]
) -> list[dict[str, Any]]:
    """Per swept section: its points ranked on the first scorer, each with its 95% interval and a paired test
    against the best point on the same examples (is the best really better, or within noise?)."""
    if not experiment.spec.points or not scorers:
        return []
    scorer = scorers[0]
    lower = lower_is_better(scorer)
    groups: dict[str, list[dict[str, Any]]] = {}
    for section, values in experiment.spec.points.items():
        row = rows.get(f"{section}/fine-tuned")
        if row is None or scorer not in row["scores"] or row["scores"][scorer] != row["scores"][scorer]:
            continue
        groups.setdefault(group(section), []).append({"section": section, "values": values,
            "score": row["scores"][scorer], "interval": row["intervals"][scorer]})  # fmt: skip
    out = []
    for name, points in groups.items():
        points.sort(key=lambda p: p["score"], reverse=not lower)
        best = points[0]
        best_scores = _per_example(_rows(store, experiment, best["section"]), scorer)
        for rank, point in enumerate(points, 1):
            point["rank"] = rank
            other = _per_example(_rows(store, experiment, point["section"]), scorer)
            point["versus_best"] = None
            if rank > 1 and best_scores and other and len(best_scores) == len(other):
                result = paired_comparison(other, best_scores, seed=experiment.spec.seed)
                point["versus_best"] = {"difference": result.difference, "interval": list(result.interval),
                                        "p_value": result.p_value, "significant": result.significant}  # fmt: skip
        beaten = [p for p in points[1:] if p["versus_best"] and p["versus_best"]["significant"]]
        tied = [p["section"] for p in points[1:] if p not in beaten]
        verdict = f"best: {best['section']} ({scorer} {best['score']:.3f})"
        if len(points) > 1:
            verdict += f"; significantly better than {len(beaten)} of {len(points) - 1} other point(s)"
            verdict += f"; within noise of {', '.join(tied)}" if tied else ""
        parameters = list(dict.fromkeys(k for p in points for k in p["values"]))
        out.append({"backend": name, "scorer": scorer, "lower_is_better": lower, "parameters": parameters,
                    "points": points, "verdict": verdict})  # fmt: skip
    return out


def sweep_cells(ranking: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A sweep's ranking as a header and rows of cells: the terminal, report.md and report.html show the same."""
    header = ["rank", *ranking["parameters"], ranking["scorer"], "95% interval", "vs best (paired)"]
    rows = []
    for p in ranking["points"]:
        low, high = p["interval"]
        versus = p["versus_best"]
        against = "best" if p["rank"] == 1 else "n/a"
        if versus:
            against = f"{versus['difference']:+.3f}, p={versus['p_value']:.3g}"
            against += " (significant)" if versus["significant"] else " (within noise)"
        values = [str(p["values"].get(k, "")) for k in ranking["parameters"]]
        rows.append([str(p["rank"]), *values, f"{p['score']:.3f}", f"{_num(low)} – {_num(high)}", against])
    return header, rows


def sweep_table(ranking: dict[str, Any]) -> Table:
    """A sweep's ranking for the terminal."""
    header, rows = sweep_cells(ranking)
    t = Table(title=f"sweep: {ranking['backend']}, ranked on {ranking['scorer']}", caption=ranking["verdict"])
    for i, name in enumerate(header):
        t.add_column(name, justify="left" if i == len(header) - 1 else "right")
    for row in rows:
        t.add_row(*row)
    return t


def gap_lines(gaps: dict[str, Any]) -> list[str]:
    """Per fine-tuned model and scorer: training-sample score, held-out score, and memorisation when far apart."""
    lines = []
    for label, found in gaps.items():
        for scorer, g in found["scorers"].items():
            verdict = "memorisation: it answers its training data far better than new examples" if g["memorisation"] \
                else "generalises"  # fmt: skip
            lines.append(f"{label} {scorer}: {g['train']:.3f} on {found['examples']} training examples vs "
                         f"{g['held_out']:.3f} held out (gap {g['gap']:+.3f}) — {verdict}")  # fmt: skip
    return lines


def overfit_text(found: dict[str, Any]) -> str:
    """A stored overfitting finding as one line."""
    return overfit.Overfit(**found).text()


def check_lines(check: dict[str, Any], limit: int = 20) -> list[str]:
    """The data check's findings as lines (the first `limit`, then how many more)."""
    issues = check.get("issues", [])
    shown = []
    for issue in issues[:limit]:
        lines = issue["lines"]
        where = f"{issue['file']}:{', '.join(map(str, lines[:8]))}{'…' if len(lines) > 8 else ''}" if lines else ""
        shown.append(f"{issue['message']} [{issue['code']}]" + (f" — {where}" if where else ""))
    if len(issues) > limit:
        shown.append(f"… {len(issues) - limit} more in check.json")
    return shown


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def write_reports(store: Store, experiment: Experiment) -> tuple[str, str]:
    """report.md (for a pull request) and report.html (self-contained, with charts) in the experiment folder."""
    from fto.orchestrator.eval.html import render

    data = comparison(store, experiment)
    folder = experiment_dir(experiment.id)
    (folder / "report.md").write_text(markdown(data), encoding="utf-8")
    (folder / "report.html").write_text(render(store, experiment, data), encoding="utf-8")
    outputs = sorted(str(p.relative_to(folder)) for p in (folder / "eval").glob("*.json*"))
    keep(store, experiment.id, folder, ["report.md", "report.html", "check.json", *outputs])
    Tracking(store).report(experiment, data, [folder / "report.md", folder / "report.html"])
    return str(folder / "report.md"), str(folder / "report.html")


def verdicts(data: dict[str, Any]) -> list[str]:
    """One line per backend: the fine-tuned model against its base, on the first scorer."""
    if not data["scorers"]:
        return []
    scorer = data["scorers"][0]
    by_target = {row["target"]: row for row in data["models"]}
    lines = []
    for job in data["jobs"]:
        tuned, base = by_target.get(f"{job['backend']}/fine-tuned"), by_target.get(f"{job['backend']}/base")
        if not tuned:
            continue
        line = f"{job['backend']}: fine-tuned {scorer} {tuned['scores'][scorer]:.3f}"
        if base:
            delta = tuned["scores"][scorer] - base["scores"][scorer]
            line += f" vs base {base['scores'][scorer]:.3f} ({delta:+.3f})"
        lines.append(line + f" on {tuned['examples']} held-out examples; model: {job['fine_tuned_model']}")
    return lines

"""`fto grade GRADER --data FILE [--model BACKEND:MODEL]`: a grader's score distribution over a file's reference
answers, or over a model's answers to its prompts — to check a reward before paying for training on it."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fto.orchestrator.errors import ConfigError

console = Console(soft_wrap=True)
BINS = 10
SHOWN_ERRORS = 5


def load_grader(grader: str, job_file: str | None) -> Any:
    """A grader by name from a job file's `graders:`, or the one grader a YAML or JSON file holds."""
    if job_file:
        from fto.orchestrator.config import load_job

        spec = load_job(job_file, choose=False).spec
        found = {g.name: g for g in spec.graders}
        if grader not in found:
            known = ", ".join(found) or "none"
            raise ConfigError(f"no grader {grader!r} in {job_file} (its graders: {known})", field="graders")
        return found[grader]
    path = Path(grader)
    if not path.is_file():
        raise ConfigError(f"{grader}: not a file; name a grader of a job file with --job JOB.yaml", field="GRADER")
    import yaml
    from pydantic import TypeAdapter, ValidationError

    from fto.orchestrator.graders.checks import problem
    from fto.schemas.graders import Grader

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        loaded = TypeAdapter(Grader).validate_python(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not YAML or JSON: {exc}", file=str(path)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], file=str(path), field=field or None) from None
    unusable = problem(loaded)
    if unusable:
        raise ConfigError(unusable[1], file=str(path), field=unusable[0])
    return loaded


def distribution(values: list[float], seed: int = 0) -> dict[str, Any]:
    """Mean with its 95% bootstrap interval, range, and a histogram of BINS equal bins."""
    from fto.orchestrator.eval.stats import bootstrap_interval

    low, high = min(values), max(values)
    width = (high - low) / BINS or 1.0
    counts = [0] * BINS
    for value in values:
        counts[min(BINS - 1, int((value - low) / width))] += 1
    edges = [low + k * width for k in range(BINS + 1)]
    return {"mean": fmean(values), "interval": list(bootstrap_interval(values, seed)), "min": low, "max": high,
            "histogram": [{"from": edges[k], "to": edges[k + 1], "count": counts[k]} for k in range(BINS)]}  # fmt: skip


@click.command()
@click.argument("grader")
@click.option("--data", "data_file", required=True, type=click.Path(dir_okay=False), help="rows to grade")
@click.option("--job", "job_file", type=click.Path(dir_okay=False), help="the job file whose graders: name GRADER")
@click.option("--model", "target", help="BACKEND:MODEL whose answers are graded (default: the rows' own answers)")
@click.option("--max-examples", default=200, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def grade(grader: str, data_file: str, job_file: str | None, target: str | None, max_examples: int,
          as_json: bool) -> None:  # fmt: skip
    """Run a grader over a file: its score distribution, pass rate and per-sample errors. GRADER is a name in
    --job's graders, or a YAML/JSON file holding one grader. Sends nothing to train."""
    from fto.orchestrator.data.load import read_eval_set
    from fto.orchestrator.graders.run import grade_many, item_of, sample_of
    from fto.orchestrator.store import Store

    chosen = load_grader(grader, job_file)
    examples = read_eval_set(data_file)[:max_examples]
    store = Store()
    if target:
        answers = _answers(store, target, examples)
    else:
        answers = [e.prompt_and_reference()[1].content or "" for e in examples]
    grades = grade_many(chosen, [sample_of(a) for a in answers], [item_of(e) for e in examples], store)
    values = [g.value for g in grades if g.value is not None]
    errors = [{"line": e.source_line, "error": g.error} for e, g in zip(examples, grades, strict=True) if g.error]
    found: dict[str, Any] = {"grader": chosen.name, "type": chosen.type, "examples": len(examples),
                             "graded": len(values), "errors": errors, "answers": target or "the rows' own"}  # fmt: skip
    if values:
        found |= distribution(values)
        if chosen.pass_threshold is not None:
            found["pass_rate"] = fmean(float(v >= chosen.pass_threshold) for v in values)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _show(found, chosen.pass_threshold)
    if not values:
        raise SystemExit(1)


def _answers(store: Any, target: str, examples: list[Any]) -> list[str]:
    from fto.backends.base import GenerationParams
    from fto.orchestrator.eval.harness import generate, parse_target

    (chosen,) = parse_target(store, target, None)
    prompts = [list(e.prompt_and_reference()[0]) for e in examples]
    completions = generate(store, chosen.make_backend(), chosen, prompts, GenerationParams(max_new_tokens=256))
    return [c.text for c in completions]


def _show(found: dict[str, Any], threshold: float | None) -> None:
    answers = found["answers"]
    console.print(f"grader {found['grader']} ({found['type']}) on {found['examples']} examples, answers: {answers}",
                  highlight=False)  # fmt: skip
    if found["graded"]:
        low, high = found["interval"]
        line = f"mean {found['mean']:.4g} (95% interval {low:.4g} – {high:.4g}), range {found['min']:.4g} – "
        line += f"{found['max']:.4g}"
        if "pass_rate" in found:
            line += f", pass rate {found['pass_rate']:.1%} at ≥ {threshold:g}"
        console.print(line, highlight=False)
        table = Table("from", "to", "samples", "")
        most = max(b["count"] for b in found["histogram"]) or 1
        for b in found["histogram"]:
            table.add_row(f"{b['from']:.3g}", f"{b['to']:.3g}", str(b["count"]), "█" * round(20 * b["count"] / most))
        console.print(table)
    if found["errors"]:
        console.print(f"[red]{len(found['errors'])} sample(s) could not be graded:[/]")
        for e in found["errors"][:SHOWN_ERRORS]:
            console.print(f"  line {e['line']}: {e['error']}", highlight=False, markup=False)

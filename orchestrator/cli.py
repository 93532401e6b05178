"""`fto`: thin click commands over the Python API (`import fto`): each calls it and prints what it returns.

Nothing here imports torch: training runs in worker processes, and generation imports it only when called.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fto.orchestrator.errors import ConfigError, FtoError

STATUS_LATEST = 50  # jobs `fto status` shows without a key
SHOWN_FINDINGS = 3  # data-check findings listed at submit (most important first); all are in the report
console = Console(soft_wrap=True)  # a long path or error stays on one line
err_console = Console(stderr=True, soft_wrap=True)


class _Group(click.Group):
    """Turns our errors into one clear line and an exit code: no traceback for a user's mistake.

    Installed packages add commands through the `fto.commands` entry-point group (a backend's own tools, such as
    the simulated provider's server), loaded only when listed or called.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in _plugin_commands():
            loaded = _plugin_commands()[cmd_name].load()
            return loaded if isinstance(loaded, click.Command) else None
        return found

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FtoError as exc:
            err_console.print(f"[bold red]error:[/] {_escape(str(exc))}", highlight=False)
            sys.exit(exc.exit_code)


def _plugin_commands() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="fto.commands")}


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@click.group(cls=_Group)
@click.version_option(package_name="fto")
@click.option(
    "--store",
    metavar="LOCATION",
    help="the job store: postgresql://USER@HOST/DB, or a SQLite file (default: FTO_STORE, else FTO_HOME/fto.db)",
)
def cli(store: str | None) -> None:
    """fto: fine-tune the same job on local and hosted backends, and compare the results."""
    if store:
        os.environ["FTO_STORE"] = store  # every Store this process (and the workers it starts) opens


def main() -> None:
    """The `fto` console script."""
    cli()


from fto.orchestrator.data_cli import data  # noqa: E402  (the group is defined before its subcommands attach)
from fto.orchestrator.graders.command import grade  # noqa: E402
from fto.orchestrator.serve.command import serve  # noqa: E402
from fto.orchestrator.store_cli import store  # noqa: E402
from fto.orchestrator.ui.command import ui  # noqa: E402

cli.add_command(data)
cli.add_command(grade)
cli.add_command(serve)
cli.add_command(store)
cli.add_command(ui)


def _store() -> Any:
    from fto.orchestrator.api.experiments import default_store

    return default_store()


def _submit(job_file: str, backend: str | None, allow_sensitive: bool = False, curve: str | None = None) -> Any:
    import fto

    chosen = [n.strip() for n in backend.split(",")] if backend is not None else None
    if chosen is not None and not any(chosen):
        raise ConfigError("--backend needs at least one name", field="--backend")
    with warnings.catch_warnings():  # the findings are printed below, in full
        warnings.simplefilter("ignore", fto.DataCheckWarning)
        experiment = fto.submit(job_file, chosen, allow_sensitive, curve)
    splits = experiment.splits
    console.print(
        f"experiment [bold]{experiment.id}[/] ({experiment.name}): {len(splits.train)} train, "
        f"{len(splits.validation)} validation, {len(splits.eval)} eval examples"
    )
    for notice in experiment.notices:
        err_console.print(f"[yellow]notice:[/] {_escape(notice)}", highlight=False)
    if experiment.check and experiment.check.issues:
        found = experiment.check
        err_console.print(f"[yellow]data check:[/] {_escape(found.summary())}", highlight=False)
        for issue in found.by_importance()[:SHOWN_FINDINGS]:
            err_console.print(f"  {_escape(str(issue))}", highlight=False)
        if len(found.issues) > SHOWN_FINDINGS:
            more = len(found.issues) - SHOWN_FINDINGS
            err_console.print(f"  … {more} more: fto data check {found.file}  (also in the report)", highlight=False)
    for job in experiment.jobs:
        line = f"  {job.backend:10} {job.id}  {job.status}"
        console.print(line + (f"  [red]{_escape(job.error)}[/]" if job.error else ""), highlight=False)
    return experiment


def _wait(job_ids: list[str]) -> list[Any]:
    from fto.orchestrator.api.experiments import wait_for
    from fto.orchestrator.progress import JobsView

    def warn(problem: str) -> None:
        err_console.print(f"[yellow]warning:[/] {_escape(problem)}", highlight=False)

    store = _store()
    try:
        with JobsView(store, console) as show:
            jobs = wait_for(store, job_ids, show, on_problem=warn)
    except KeyboardInterrupt:
        console.print("\nstopped watching; the jobs go on. Pick them up with [bold]fto wait[/]")
        sys.exit(130)
    for job in jobs:
        if job.error:
            message = f"[red]{job.backend} {job.id} {job.status.value}:[/] {_escape(job.error)}"
            err_console.print(message, highlight=False)
    return jobs


def _evaluate_and_report(run: Callable[[Any], Any]) -> None:
    """Evaluate with a progress bar (`run` takes the progress callback and returns the Comparison), then show it."""
    from fto.orchestrator.progress import EvalProgress

    with EvalProgress(console) as show:
        compared = run(show)
    _show_comparison(compared, first_scorer_only=True)
    console.print(f"next: fto compare {compared.experiment.id} --json  ·  fto status {compared.experiment.id}")


def _show_comparison(compared: Any, first_scorer_only: bool) -> None:
    """The scores table, one verdict per backend, notes on the models, the paired tests, and the reports."""
    from fto.backends import registry
    from fto.orchestrator.eval.report import sweep_table, table, verdicts

    experiment, results = compared.experiment, compared.results

    console.print(table(results))
    for ranking in results.sweep:
        console.print(sweep_table(ranking))
    for line in verdicts(results):
        console.print(_escape(line), highlight=False)
    shown: set[str] = set()
    for name, section in experiment.spec.backends.items():
        model = section.model or ""
        note = (
            registry.backend_class(section.type or name).model_note(model)
            if name in registry.available() or section.type
            else None
        )
        if note and note not in shown:  # sections of one backend (a learning curve's) share their notes
            shown.add(note)
            console.print(f"[dim]note: {_escape(note)}[/]", highlight=False)
    for paired in results.comparisons:
        if not first_scorer_only or paired.scorer == results.scorers[0]:
            console.print(_escape(paired.text), highlight=False)
    html_path = compared.report_path
    console.print(f"report: {html_path}  (markdown: {html_path.with_suffix('.md')})")
    from fto.orchestrator.ui.command import DEFAULT_PORT, dashboard_answers

    page = f"http://127.0.0.1:{DEFAULT_PORT}/experiments/{experiment.id}/compare"
    if dashboard_answers(DEFAULT_PORT):
        console.print(f"dashboard: {page}")
    else:  # a URL only where the dashboard answers (another server may hold the port)
        console.print("dashboard: `fto ui` shows this comparison, the loss curves and every answer")


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", help="backend(s) to run on, comma-separated; default: every section in the file")
@click.option("--allow-sensitive", is_flag=True, help="send data the check finds personal or secret to hosted backends")
@click.option(
    "--learning-curve", "curve", metavar="FRACTIONS", help="also train on nested fractions of the data, e.g. 0.25,0.5,1"
)
def run(job_file: str, backend: str | None, allow_sensitive: bool, curve: str | None) -> None:
    """Submit JOB_FILE, wait for training, evaluate base and fine-tuned models, and report."""
    experiment = _submit(job_file, backend, allow_sensitive, curve)
    console.print(f"training; if this process stops, the jobs go on: fto wait {experiment.id}")
    jobs = _wait([j.id for j in experiment.jobs])
    if experiment.spec.eval and any(j.status.value == "succeeded" for j in jobs):
        _evaluate_and_report(lambda show: experiment.evaluate(on_progress=show))
    if not all(j.status.value == "succeeded" for j in jobs):
        sys.exit(1)


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", help="backend(s) to submit to, comma-separated; default: every section in the file")
@click.option("--allow-sensitive", is_flag=True, help="send data the check finds personal or secret to hosted backends")
@click.option(
    "--learning-curve", "curve", metavar="FRACTIONS", help="also train on nested fractions of the data, e.g. 0.25,0.5,1"
)
def submit(job_file: str, backend: str | None, allow_sensitive: bool, curve: str | None) -> None:
    """Submit JOB_FILE and return at once; follow with `fto wait`."""
    experiment = _submit(job_file, backend, allow_sensitive, curve)
    console.print(f"next: fto wait {experiment.id}")
    if any(j.error for j in experiment.jobs):
        sys.exit(1)


@cli.command()
@click.argument("key", required=False)
def wait(key: str | None) -> None:
    """Wait for a job or experiment (default: every unfinished job) to finish.

    KEY is a job id, an experiment id or name, or a unique prefix of an id (as `fto status` shows them).
    """
    store = _store()
    jobs = store.resolve_jobs(key)
    if not jobs:
        console.print("no unfinished jobs")
        return
    jobs = _wait([j.id for j in jobs])
    for experiment_id in dict.fromkeys(j.experiment_id for j in jobs):
        console.print(f"next: fto eval {experiment_id}  (then fto compare {experiment_id})")
    sys.exit(_exit_code(jobs))


@cli.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(key: str | None, as_json: bool) -> None:
    """Show jobs, grouped by experiment: one job, one experiment, or the most recent ones.

    Exits 0 when every job shown has succeeded, 1 when one failed or was cancelled, 2 while some still run.
    """
    from fto.orchestrator.api.experiments import refreshed

    store = _store()
    chosen = refreshed(store, store.resolve_jobs(key) if key else store.recent_jobs(STATUS_LATEST))
    shown = {j.experiment_id for j in chosen}
    started = {e: created for e, _, created in store.experiment_names(limit=10_000) if e in shown}
    started |= {e: store.experiment(e).created_at for e in shown - started.keys()}  # older than those
    # experiments by start time, newest last (next to the prompt); jobs in the order they were made
    jobs = sorted(chosen, key=lambda j: (started[j.experiment_id], j.created_at))
    if as_json:
        click.echo(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
    else:
        names = {e: name for e, name, _ in store.experiment_names(limit=10_000) if e in shown}
        for line in status_lines(jobs, store.latest_metrics([j.id for j in jobs]), names, console.width):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    sys.exit(_exit_code(jobs))


def status_lines(jobs: list[Any], latest: dict[str, Any], names: dict[str, str], width: int) -> list[str]:
    """`fto status` as lines that fit `width` (80 at least) and read the same piped: an experiment's line, then a
    line per job (ids whole, for copying), its model or error below it, paths shortened, errors wrapped."""
    import textwrap

    width = max(width, 80)
    backend_width = max([len(j.backend) for j in jobs] + [7])
    lines: list[str] = []
    for i, job in enumerate(jobs):
        if i == 0 or jobs[i - 1].experiment_id != job.experiment_id:
            lines.append(f"{job.experiment_id}  {names.get(job.experiment_id, '')}".rstrip())
        metric = latest.get(job.id)
        step = f"step {metric.step}/{metric.total_steps}" if metric and metric.total_steps else ""
        loss = f"loss {metric.loss:.4f}" if metric and metric.loss is not None else ""
        row = f"  {job.id}  {job.backend:<{backend_width}}  {job.status.value:<10} {step:>15}  {loss}"
        lines.append(row.rstrip())
        if job.fine_tuned_model:
            lines.append("      model: " + _shortened(job.fine_tuned_model, width - 13))
        if job.error:
            error = " ".join(job.error.split())  # a provider's multi-line message on wrapped lines of its own
            lines += textwrap.wrap(error, width - 1, initial_indent="      error: ", subsequent_indent=" " * 13)
    return lines


def _shortened(text: str, room: int) -> str:
    """A path with the home folder as ~ and, when still too long, its middle elided (its end names the job)."""
    home = os.path.expanduser("~")
    if home != "/" and text.startswith(home + "/"):
        text = "~" + text[len(home) :]
    return text if len(text) <= room else text[: room // 3] + "…" + text[-(room - room // 3 - 1) :]


def _exit_code(jobs: list[Any]) -> int:
    if any(not j.status.terminal for j in jobs):
        return 2
    return 0 if all(j.status.value == "succeeded" for j in jobs) else 1


@cli.command(name="ls")
def ls() -> None:
    """List recent experiments with their jobs' states."""
    store = _store()
    t = Table("experiment", "name", "created", "jobs")
    experiments = store.experiment_names()
    counted = store.status_counts([e for e, _, _ in experiments])
    for experiment_id, name, created in experiments:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(counted[experiment_id].items()))
        t.add_row(experiment_id, name, created.strftime("%Y-%m-%d %H:%M"), counts)
    console.print(t)


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing new events until the job ends")
@click.option("--raw", is_flag=True, help="the provider's own log of the job (a local worker's, a Ray job's)")
def logs(job_id: str, follow: bool, raw: bool) -> None:
    """Print a job's events (and follow them with -f until it ends)."""
    from fto.orchestrator.poll import wait

    store = _store()
    job = store.job(job_id)  # an id or a unique prefix of one
    if raw:
        _raw_log(store, job, follow)
        return
    shown = 0

    def show(_: Any = None) -> None:
        nonlocal shown
        events = store.events(job.id)
        for event in events[shown:]:
            style = {"error": "red", "warning": "yellow"}.get(event.level, "default")
            stamp = event.created_at.strftime("%H:%M:%S")
            console.print(f"{stamp} [{style}]{_escape(event.message)}[/]", highlight=False)
        shown = len(events)

    show()
    if follow and not job.status.terminal:
        try:
            wait(store, [job.id], on_tick=show)
        except KeyboardInterrupt:
            sys.exit(130)
        final = store.job(job.id)
        console.print(final.status.value + (f": {_escape(final.error)}" if final.error else ""))
        sys.exit(_exit_code([final]))


def _raw_log(store: Any, job: Any, follow: bool) -> None:
    """The provider's log, printed as it grows with -f (read again every second) until the job ends."""
    import time

    from fto.orchestrator.submit import backend_for

    if job.provider_job_id is None:
        raise FtoError(f"job {job.id} never reached its provider: `fto logs {job.id}` has its events")
    backend = backend_for(store.experiment(job.experiment_id).spec, job.backend)
    printed = 0
    while True:
        text = backend.log(job.provider_job_id)
        if text is None:
            raise FtoError(f"the {job.backend} backend keeps no log of its own: `fto logs {job.id}` has the events")
        click.echo(text[printed:], nl=False)
        printed = len(text)
        if not follow or store.job(job.id).status.terminal:
            return
        time.sleep(1.0)


@cli.command()
@click.argument("job_id")
def pause(job_id: str) -> None:
    """Pause a running job, where the provider can; `fto resume` continues it."""
    from fto.orchestrator.api import actions

    job = actions.pause(_store(), job_id)
    console.print(f"pause requested: {job.backend} {job.id}")


@cli.command()
@click.argument("key")
def cancel(key: str) -> None:
    """Cancel a job, or every unfinished job of an experiment; finished ones free what they still hold and are
    billed for (a deployment serving the model)."""
    from fto.orchestrator.api import actions

    store = _store()
    for job in actions.cancel(store, key):
        console.print(f"cancel requested: {job.backend} {job.id} (cancelling until the provider confirms)")
    for job, line in actions.release(store, key):
        console.print(f"{job.backend} {job.id}: {line}")


@cli.command()
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="return once the job is running again")
def resume(job_id: str, no_wait: bool) -> None:
    """Continue a cancelled, paused or crashed job from its last checkpoint."""
    from fto.orchestrator.api import actions

    store = _store()
    job = actions.resume(store, job_id)
    console.print(f"resumed {job.backend} {job.id}")
    if not no_wait:
        sys.exit(_exit_code(_wait([job.id])))


@cli.command()
@click.argument("key")
@click.option("--to", "targets", required=True, metavar="BACKEND[,BACKEND…]", help="backends to move to")
@click.option("--from", "source", help="the section to move away from (default: the only one, or openai)")
@click.option(
    "--model", "models", multiple=True, metavar="BACKEND=MODEL", help="a target's base model, not the mapped one"
)
@click.option("--sections", type=click.Path(dir_okay=False, exists=True),
              help="a job file (or YAML with `backends:`) whose sections give the targets' options")  # fmt: skip
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), help="the job file to write (default: NAME-migrated.yaml)"
)
@click.option("--run", "run_it", is_flag=True, help="submit it as a new experiment, then wait, evaluate and report")
@click.pass_context
def migrate(
    ctx: click.Context,
    key: str,
    targets: str,
    source: str | None,
    models: tuple[str, ...],
    sections: str | None,
    out: str | None,
    run_it: bool,
) -> None:
    """Move an experiment (or job file) to other backends: a job file for them, models and settings mapped; its
    comparison sets the old fine-tuned models beside the new ones."""
    from fto.orchestrator import migrate as moving

    overrides = dict(m.split("=", 1) for m in models if "=" in m)
    if len(overrides) != len(models):
        raise click.BadParameter("use BACKEND=MODEL", param_hint="--model")
    spec, origin, earlier = moving.load_source(_store(), key)
    given = moving.sections_of(sections) if sections else None
    found = moving.migrate(spec, [t for t in targets.split(",") if t], source, overrides, earlier, given)
    old_models = found.spec.eval.compare_with if found.spec.eval else []
    console.print(f"{origin} ({found.source}) → {', '.join(c.target for c in found.choices)}")
    for choice in found.choices:  # one line each: read at a glance, and found by grep
        console.print(f"  {choice.target}: {choice.source_model} → {choice.model} ({choice.why})", soft_wrap=True)
    for note in found.notes:
        console.print(f"[yellow]note:[/] {note}")
    path = Path(out or f"{found.spec.name}.yaml")
    path.write_text(found.yaml(origin), encoding="utf-8")
    console.print(f"wrote {path}" + (f"; its comparison includes {', '.join(old_models)}" if old_models else ""))
    if run_it:
        ctx.invoke(run, job_file=str(path), backend=None, allow_sensitive=False, curve=None)
    else:
        console.print(f"next: fto run {path}")


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", help="backends to plan for, comma-separated (default: every section in the file)")
@click.option("--all", "every", is_flag=True, help="every installed backend")
@click.option("--models", help="candidate base models, comma-separated (default: each section's model)")
@click.option(
    "--device", help="plan local memory for this device: h100-80gb, a10g-24gb, cpu-24gb, … (default: this machine)"
)
@click.option("--probe", is_flag=True, help="measure local training's tokens/s with a few real steps on this machine")
@click.option("--baseline", is_flag=True, help="score the eval set on each candidate base model (asks before spending)")
@click.option("--yes", "-y", is_flag=True, help="with --baseline: do not ask before spending")
@click.option("--json", "as_json", is_flag=True, help="the plan as JSON")
def plan(job_file: str, backend: str | None, every: bool, models: str | None, device: str | None,
         probe: bool, baseline: bool, yes: bool, as_json: bool) -> None:  # fmt: skip
    """What JOB_FILE would cost, take and need on each backend and base model, before anything is sent
    (with --baseline: the eval set scored on each base model, its cost shown and asked first)."""
    from fto.backends import registry
    from fto.orchestrator import plan as planning
    from fto.orchestrator.config import load_job

    loaded = load_job(job_file, None, choose=False)
    names = sorted(registry.available()) if every else (backend.split(",") if backend else list(loaded.spec.backends))
    names = [n for n in names if registry.available().get(n) is None or registry.backend_class(n).describe().name == n
             or n in loaded.spec.backends]  # an old name of a backend listed under its own is planned once  # fmt: skip
    found = planning.plan(loaded.spec, names, _store(), models.split(",") if models else None, device)
    if probe:
        found = planning.with_probe(loaded.spec, found)
    if baseline:
        found = _with_baseline(loaded.spec, found, yes, as_json)
    if as_json:
        click.echo(found.model_dump_json(indent=2))
        return
    table = Table("backend", "model", "tokens", "cost", "time", "memory", "blocked / warnings")
    for row in found.rows:
        time = "no past jobs"
        if row.expected_hours is not None and row.throughput:
            basis = f"{row.throughput.jobs} jobs" if row.throughput.jobs else "probed"
            time = f"{row.expected_hours:.3f} h ({row.throughput.tokens_per_second:,.0f} tok/s, {basis})"
        cost = f"${row.cost_usd:,.2f}" if row.cost_usd is not None else "—"
        if row.hosting_usd_per_hour:
            cost += f" + ${row.hosting_usd_per_hour:.2f}/h hosting"
        held = (f"{row.memory.needed_gib['total']:.2f}/{row.memory.device_gib:g} GiB"
                + ("" if row.memory.fits else " [red]does not fit[/]")) if row.memory else "—"  # fmt: skip
        notes = "; ".join([f"[red]{b}[/]" for b in row.blocked] + row.warnings) or "ok"
        table.add_row(row.backend, row.model, f"{row.charged_tokens:,}", cost, time, held, notes)
    console.print(table)
    for advice in found.recommendations:
        console.print(f"{advice.kind}: {advice.backend} {advice.model} — {advice.why}")
    if found.baseline:
        _print_baseline(loaded.spec, found)
    console.print("costs are estimates from each backend's provider.json; nothing was sent to any provider"
                  + (" but the base models' answers" if found.baseline else ""))  # fmt: skip


def _with_baseline(spec: Any, found: Any, yes: bool, quiet: bool) -> Any:
    """The plan with --baseline's scores: the cost quoted and asked first; candidates that cannot be scored said."""
    from fto.orchestrator.plan import baseline, with_baseline

    if spec.eval is None:
        raise ConfigError("--baseline needs the job file's eval section", field="eval")
    held_out = baseline.examples(spec)
    quoted = baseline.quote(spec, [r for r in found.rows if not r.blocked], held_out)
    out = err_console if quiet else console
    for row, cost, why in quoted:
        shown = "unknown (no price in provider.json)" if cost is None else f"${cost:,.4f}"
        out.print(f"baseline {row.backend} {row.model}: " + (f"skipped: {why}" if why else f"{len(held_out)} "
                  f"examples, about {shown}"))  # fmt: skip
    chosen = [row for row, _, why in quoted if not why]
    total = sum(cost or 0.0 for _, cost, why in quoted if not why)
    unknown = any(cost is None for _, cost, why in quoted if not why)
    if chosen and (total > 0 or unknown) and not yes:
        if not sys.stdin.isatty():
            raise ConfigError("--baseline spends money on hosted inference: add --yes to go on", field="--baseline")
        click.confirm(f"score the base models for about ${total:,.2f}{' and more' if unknown else ''}?",
                      abort=True, err=quiet)  # fmt: skip
    return with_baseline(found, baseline.score(spec, chosen, held_out, _store()) if chosen else [])


def _print_baseline(spec: Any, found: Any) -> None:
    table = Table("rank", "backend", "base model", *spec.eval.scorers, "examples")
    for rank, row in enumerate(found.baseline, 1):
        cells = [_interval(row.scores.get(name)) for name in spec.eval.scorers]
        table.add_row(str(rank), row.backend, row.model, *cells, str(row.examples))
    console.print(table)
    console.print(f"their answers: fto compare {found.baseline[0].experiment}")


def _interval(score: Any) -> str:
    if score is None:
        return "—"
    return f"{score.value:.3f}" + (f" [{score.low:.3f}, {score.high:.3f}]" if score.low is not None else "")


@cli.command(name="eval")
@click.argument("experiment", required=False)
@click.option(
    "--target",
    "-t",
    "target_specs",
    multiple=True,
    help="also evaluate: job:ID, an experiment, or BACKEND:MODEL (e.g. local:/models/x, sim:sim-base)",
)
@click.option("--data", "data_file", type=click.Path(dir_okay=False), help="an eval set (any format) instead")
@click.option("--scorer", "scorer_names", multiple=True, help="scorers for --data (default exact_match, token_f1)")
@click.option("--max-examples", type=int, default=100, show_default=True, help="with --data")
@click.option("--judge", "judge_model", help="with --data: the LLM judge, BACKEND:MODEL (a backend that can judge)")
@click.option("--judge-url", help="with --judge: an endpoint speaking that backend's API")
def eval_(
    experiment: str | None,
    target_specs: tuple[str, ...],
    data_file: str | None,
    scorer_names: tuple[str, ...],
    max_examples: int,
    judge_model: str | None,
    judge_url: str | None,
) -> None:
    """Evaluate models on the same examples and report.

    By default: the base and fine-tuned models of an experiment (default: the latest) on its held-out examples,
    plus any --target. With --data FILE: only the --target models, on that file (an experiment of its own).
    """
    import fto

    if data_file:
        judged = judge_model, judge_url
        _evaluate_and_report(lambda show: fto.evaluate_file(data_file, target_specs, scorer_names, max_examples,
                                                            *judged, on_progress=show))  # fmt: skip
        return
    if judge_model:
        raise ConfigError("--judge goes with --data; for an experiment, set eval.judge in its job file")
    chosen = fto.experiment(experiment)
    _evaluate_and_report(lambda show: chosen.evaluate(target_specs, on_progress=show))


@cli.command()
@click.argument("experiment", required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def compare(experiment: str | None, as_json: bool) -> None:
    """Compare every evaluated model of an experiment (default: the latest): scores with 95% intervals, paired
    tests of each fine-tuned model against its base, and the reports (report.html rewritten)."""
    import fto

    compared = fto.experiment(experiment).compare()
    if as_json:
        click.echo(compared.results.model_dump_json(indent=2))
    else:
        _show_comparison(compared, first_scorer_only=False)


@cli.command()
@click.argument("job_id")
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Choice(["merged", "ollama", "vllm", "gguf"]),
    help="merged: transformers layout; ollama: a Modelfile; vllm: files and command; gguf: through llama.cpp",
)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="folder to write (default ./JOB-TARGET)")
def export(job_id: str, target: str, output: str | None) -> None:
    """Take a finished job's model to where models run; a hosted model says how to call it."""
    import fto

    for line in fto.job(job_id).export(target, output):
        console.print(_escape(line), highlight=False)


@cli.command()
@click.option("--results", is_flag=True, help="the schema of `fto compare --json` instead")
def schema(results: bool) -> None:
    """Print the JSON Schema of the job file (for editor completion), or of an experiment's results."""
    if results:
        from fto.schemas.results import results_json_schema

        click.echo(json.dumps(results_json_schema(), indent=2))
        return
    from fto.orchestrator.job_schema import job_file_schema

    click.echo(json.dumps(job_file_schema(), indent=2))


@cli.command()
def backends() -> None:
    """List the installed backends (entry-point group fto.backends), with what each provider's users must know."""
    from fto.backends.registry import available, backend_class, missing_requirement

    for name, ep in sorted(available().items()):
        try:
            cls = backend_class(name)
            missing, notice = missing_requirement(cls), cls.notice()
        except FtoError as exc:  # a backend whose extra is missing is listed all the same
            missing, notice = str(exc), None
        usable = "[red]not usable here[/]" if missing else "[green]usable[/]         "  # the same width shown
        console.print(f"{name:12} {usable} {ep.value}", highlight=False)
        for said, style in ((missing, "red"), (notice, "yellow")):
            if said:
                console.print(f"{'':12} [{style}]{_escape(said)}[/]", highlight=False)

"""`fto`: thin click commands over config → data → backend → store → poll → eval → report.

Nothing here imports torch: training runs in worker processes, and generation imports it only when called.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fto.orchestrator.errors import ConfigError, FtoError

SHOWN_FINDINGS = 3  # data-check findings listed at submit (most important first); all are in the report
STATUS_REFRESH_SECONDS = 2.0  # how long `fto status` asks providers about stale jobs
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
from fto.orchestrator.serve.command import serve  # noqa: E402
from fto.orchestrator.store_cli import store  # noqa: E402
from fto.orchestrator.ui.command import ui  # noqa: E402

cli.add_command(data)
cli.add_command(serve)
cli.add_command(store)
cli.add_command(ui)


def _store() -> Any:
    from fto.orchestrator.store import Store

    return Store()


def _submit(job_file: str, backend: str | None, allow_sensitive: bool = False, curve: str | None = None) -> Any:
    from fto.orchestrator.config import load_job
    from fto.orchestrator.submit import submit

    loaded = load_job(job_file, backend)
    if curve and loaded.spec.points:
        raise FtoError("--learning-curve and a sweep in one experiment: run them as two experiments")
    if curve:
        from fto.orchestrator.learning_curve import expand, parse_fractions

        loaded = expand(loaded, parse_fractions(curve))
    store = _store()
    submitted = submit(store, loaded, allow_sensitive)
    console.print(
        f"experiment [bold]{submitted.experiment.id}[/] ({submitted.experiment.name}): "
        f"{len(submitted.data.train)} train, {len(submitted.data.validation)} validation, "
        f"{len(submitted.data.eval)} eval examples"
    )
    for notice in submitted.notices:
        err_console.print(f"[yellow]notice:[/] {_escape(notice)}", highlight=False)
    if submitted.check and submitted.check.issues:
        found = submitted.check
        err_console.print(f"[yellow]data check:[/] {_escape(found.summary())}", highlight=False)
        for issue in found.by_importance()[:SHOWN_FINDINGS]:
            err_console.print(f"  {_escape(str(issue))}", highlight=False)
        if len(found.issues) > SHOWN_FINDINGS:
            more = len(found.issues) - SHOWN_FINDINGS
            err_console.print(f"  … {more} more: fto data check {found.file}  (also in the report)", highlight=False)
    for job in submitted.jobs:
        line = f"  {job.backend:10} {job.id}  {job.status.value}"
        console.print(line + (f"  [red]{_escape(job.error)}[/]" if job.error else ""), highlight=False)
    return store, submitted


def _wait(store: Any, job_ids: list[str]) -> list[Any]:
    from fto.orchestrator.notify import notify_finished
    from fto.orchestrator.poll import wait
    from fto.orchestrator.progress import JobsView

    try:
        with JobsView(store, console) as show:
            jobs = wait(store, job_ids, on_tick=show)
    except KeyboardInterrupt:
        console.print("\nstopped watching; the jobs go on. Pick them up with [bold]fto wait[/]")
        sys.exit(130)
    for job in jobs:
        if job.error:
            message = f"[red]{job.backend} {job.id} {job.status.value}:[/] {_escape(job.error)}"
            err_console.print(message, highlight=False)
    for problem in notify_finished(store, [j.experiment_id for j in jobs]):
        err_console.print(f"[yellow]warning:[/] {_escape(problem)}", highlight=False)
    return jobs


def _evaluate_and_report(store: Any, experiment: Any, extra: list[Any] | None = None, only_extra: bool = False) -> None:
    from fto.orchestrator.eval.harness import evaluate
    from fto.orchestrator.eval.report import comparison
    from fto.orchestrator.progress import EvalProgress

    with EvalProgress(console) as show:
        evaluate(store, experiment, on_progress=show, extra=extra, only_extra=only_extra)
    data = comparison(store, experiment)
    _show_comparison(store, experiment, data, first_scorer_only=True)
    console.print(f"next: fto compare {experiment.id} --json  ·  fto status {experiment.id}")


def _show_comparison(store: Any, experiment: Any, data: dict[str, Any], first_scorer_only: bool) -> None:
    """The scores table, one verdict per backend, notes on the models, the paired tests, and the reports."""
    from fto.backends import registry
    from fto.orchestrator.eval.report import sweep_table, table, verdicts, write_reports

    console.print(table(data))
    for ranking in data.get("sweep") or []:
        console.print(sweep_table(ranking))
    for line in verdicts(data):
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
    for paired in data["comparisons"]:
        if not first_scorer_only or paired["scorer"] == data["scorers"][0]:
            console.print(_escape(paired["text"]), highlight=False)
    markdown_path, html_path = write_reports(store, experiment)
    console.print(f"report: {html_path}  (markdown: {markdown_path})")
    from fto.orchestrator.ui.command import DEFAULT_PORT

    console.print(
        f"dashboard: run `fto ui`, then open http://127.0.0.1:{DEFAULT_PORT}/experiments/{experiment.id}/compare"
    )


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", help="backend(s) to run on, comma-separated; default: every section in the file")
@click.option("--allow-sensitive", is_flag=True, help="send data the check finds personal or secret to hosted backends")
@click.option(
    "--learning-curve", "curve", metavar="FRACTIONS", help="also train on nested fractions of the data, e.g. 0.25,0.5,1"
)
def run(job_file: str, backend: str | None, allow_sensitive: bool, curve: str | None) -> None:
    """Submit JOB_FILE, wait for training, evaluate base and fine-tuned models, and report."""
    store, submitted = _submit(job_file, backend, allow_sensitive, curve)
    console.print(f"training; if this process stops, the jobs go on: fto wait {submitted.experiment.id}")
    jobs = _wait(store, [j.id for j in submitted.jobs])
    if submitted.experiment.spec.eval and any(j.status.value == "succeeded" for j in jobs):
        _evaluate_and_report(store, submitted.experiment)
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
    _, submitted = _submit(job_file, backend, allow_sensitive, curve)
    console.print(f"next: fto wait {submitted.experiment.id}")
    if any(j.error for j in submitted.jobs):
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
    jobs = _wait(store, [j.id for j in jobs])
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
    store = _store()
    chosen = store.resolve_jobs(key) if key else store.jobs()[-50:]
    _refresh_stale(store, chosen)
    started = {j.experiment_id: store.experiment(j.experiment_id).created_at for j in chosen}
    # experiments by start time, newest last (next to the prompt); jobs in the order they were made
    jobs = sorted(store.jobs_by_id([j.id for j in chosen]), key=lambda j: (started[j.experiment_id], j.created_at))
    if as_json:
        click.echo(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
    else:
        t = Table()
        for column in ("experiment", "job", "backend", "status", "step", "loss"):
            t.add_column(column, no_wrap=True)  # ids are for copying: never cut (unique prefixes work too)
        t.add_column("fine-tuned model / error", overflow="fold")
        for i, job in enumerate(jobs):
            metric = store.last_metric(job.id)
            step = f"{metric.step}/{metric.total_steps}" if metric and metric.total_steps else ""
            loss = f"{metric.loss:.4f}" if metric and metric.loss is not None else ""
            first = i == 0 or jobs[i - 1].experiment_id != job.experiment_id
            last = i + 1 == len(jobs) or jobs[i + 1].experiment_id != job.experiment_id
            detail = _escape(job.fine_tuned_model or job.error or "")
            t.add_row(
                job.experiment_id if first else "",
                job.id,
                job.backend,
                job.status.value,
                step,
                loss,
                detail,
                end_section=last,
            )
        console.print(t)
    sys.exit(_exit_code(jobs))


def _refresh_stale(store: Any, jobs: list[Any]) -> None:
    """Ask providers about unfinished jobs whose stored state is older than their poll interval (briefly)."""
    from datetime import UTC, datetime

    from fto.orchestrator.submit import backend_for

    stale = []
    for job in jobs:
        if job.status.terminal or job.provider_job_id is None:
            continue
        interval = backend_for(store.experiment(job.experiment_id).spec, job.backend).min_poll_interval
        if (datetime.now(UTC) - job.updated_at).total_seconds() > interval:
            stale.append(job.id)
    if stale:
        import asyncio

        from fto.orchestrator.poll import Poller

        asyncio.run(Poller(store).run(stale, timeout=STATUS_REFRESH_SECONDS))


def _exit_code(jobs: list[Any]) -> int:
    if any(not j.status.terminal for j in jobs):
        return 2
    return 0 if all(j.status.value == "succeeded" for j in jobs) else 1


@cli.command(name="ls")
def ls() -> None:
    """List recent experiments with their jobs' states."""
    from collections import Counter

    store = _store()
    t = Table("experiment", "name", "created", "jobs")
    for experiment in store.experiments():
        counts = Counter(j.status.value for j in store.jobs(experiment.id))
        created = experiment.created_at.strftime("%Y-%m-%d %H:%M")
        t.add_row(experiment.id, experiment.name, created, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    console.print(t)


@cli.command()
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="keep printing new events until the job ends")
@click.option("--raw", is_flag=True, help="the provider's own log of the job (a local worker's, a Ray job's)")
def logs(job_id: str, follow: bool, raw: bool) -> None:
    """Print a job's events (and follow them with -f until it ends)."""
    import asyncio

    from fto.orchestrator.poll import Poller

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
            asyncio.run(Poller(store, on_tick=show).run([job.id]))
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
    from fto.orchestrator import actions

    job = actions.pause(_store(), job_id)
    console.print(f"pause requested: {job.backend} {job.id}")


@cli.command()
@click.argument("key")
def cancel(key: str) -> None:
    """Cancel a job, or every unfinished job of an experiment."""
    from fto.orchestrator import actions

    for job in actions.cancel(_store(), key):
        console.print(f"cancel requested: {job.backend} {job.id} (cancelling until the provider confirms)")


@cli.command()
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="return once the job is running again")
def resume(job_id: str, no_wait: bool) -> None:
    """Continue a cancelled, paused or crashed job from its last checkpoint."""
    from fto.orchestrator import actions

    store = _store()
    job = actions.resume(store, job_id)
    console.print(f"resumed {job.backend} {job.id}")
    if not no_wait:
        sys.exit(_exit_code(_wait(store, [job.id])))


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
    from fto.orchestrator.eval.harness import parse_target

    store = _store()
    if data_file:
        if not target_specs:
            raise FtoError("--data needs at least one --target to evaluate")
        judge = _judge_option(judge_model, judge_url)
        exp = _eval_only_experiment(store, data_file, list(scorer_names), max_examples, judge)
        only_extra = True
    else:
        if judge_model:
            raise ConfigError("--judge goes with --data; for an experiment, set eval.judge in its job file")
        exp = store.experiment(experiment) if experiment else store.latest_experiment()
        only_extra = False
    extra = [t for spec in target_specs for t in parse_target(store, spec, exp.spec)]
    _evaluate_and_report(store, exp, extra, only_extra)


def _judge_option(judge_model: str | None, judge_url: str | None) -> dict[str, Any] | None:
    if not judge_model:
        return None
    provider, _, model = judge_model.partition(":")
    if not provider or not model:
        raise ConfigError(f"--judge {judge_model!r}: use BACKEND:MODEL", field="--judge")
    from fto.backends.registry import backend_class

    backend_class(provider, field="--judge")
    return {"provider": provider, "model": model, "pairwise": False, **({"base_url": judge_url} if judge_url else {})}


def _eval_only_experiment(
    store: Any, data_file: str, scorer_names: list[str], max_examples: int, judge: dict[str, Any] | None = None
) -> Any:
    """An experiment with no jobs: the eval set of one file, for comparing models that already exist."""
    from pathlib import Path

    from fto.orchestrator.data.load import read_eval_set, save_conversations
    from fto.orchestrator.paths import experiment_dir
    from fto.schemas import JobSpec

    path = Path(data_file).resolve()
    spec = JobSpec.model_validate(
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
    from fto.orchestrator.eval import scorers

    for name in spec.eval.scorers if spec.eval else []:
        scorers.get(name)
    examples = read_eval_set(str(path))[:max_examples]
    experiment, _ = store.create_experiment(spec, None, [])
    save_conversations(examples, experiment_dir(experiment.id) / "eval.jsonl")
    return experiment


@cli.command()
@click.argument("experiment", required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def compare(experiment: str | None, as_json: bool) -> None:
    """Compare every evaluated model of an experiment (default: the latest): scores with 95% intervals, paired
    tests of each fine-tuned model against its base, and the reports (report.html rewritten)."""
    from fto.orchestrator.eval.report import comparison

    store = _store()
    exp = store.experiment(experiment) if experiment else store.latest_experiment()
    data = comparison(store, exp)
    if not data["models"]:
        raise FtoError(f"experiment {exp.id} has no eval results yet; run `fto eval {exp.id}`")
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _show_comparison(store, exp, data, first_scorer_only=False)


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
    from pathlib import Path

    from fto.orchestrator.submit import backend_for

    store = _store()
    job = store.job(job_id)
    if job.status.value != "succeeded" or not job.fine_tuned_model:
        raise FtoError(f"job {job.id} has no fine-tuned model to export (it is {job.status.value})")
    backend = backend_for(store.experiment(job.experiment_id).spec, job.backend)
    for line in backend.export(job.provider_job_id or job.id, job.fine_tuned_model, target,
                               Path(output) if output else None):  # fmt: skip
        console.print(_escape(line), highlight=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the job file (for editor completion)."""
    from fto.orchestrator.job_schema import job_file_schema

    click.echo(json.dumps(job_file_schema(), indent=2))


@cli.command()
def backends() -> None:
    """List the installed backends (entry-point group fto.backends), with what each provider's users must know."""
    from fto.backends.registry import available, backend_class

    for name, ep in sorted(available().items()):
        console.print(f"{name:12} {ep.value}", highlight=False)
        try:
            notice = backend_class(name).notice()
        except FtoError as exc:  # a backend whose extra is missing is listed all the same
            notice = str(exc)
        if notice:
            console.print(f"{'':12} [yellow]{_escape(notice)}[/]", highlight=False)

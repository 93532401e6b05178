"""`fto data …`: validate, count, convert and split datasets (thin commands over fto.orchestrator.data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(soft_wrap=True)

_format = click.option(
    "--format", "fmt", default="auto", show_default=True, help="input format (see `fto data formats`)"
)
_mapping = click.option(
    "--mapping", help="custom columns: a dataset_info.json entry as FILE or FILE:NAME (LLaMA-Factory)"
)
_target = click.option(
    "--for", "target", metavar="BACKEND", help="check against this backend's rules (see `fto backends`)"
)


def _readable(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A data file argument as a regular file: a pipe is read once into a copy kept until the command ends; a
    device, a folder or a FIFO nobody writes to is a clear error."""
    if value is None:
        return None
    from fto.orchestrator.data.source import data_input

    return str(ctx.with_resource(data_input(value)))


_input_file = click.argument("file", type=click.Path(dir_okay=False), callback=_readable)


def _load_mapping(spec: str | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    from fto.orchestrator.data.read import load_mapping

    return load_mapping(spec)


@click.group()
def data() -> None:
    """Validate, inspect, convert and split datasets."""


@data.command()
def formats() -> None:
    """List the dataset formats fto reads and writes."""
    from fto.backends.registry import available
    from fto.orchestrator.data.formats import all_formats

    t = Table("format", "reads", "writes", "description")
    for name, f in all_formats().items():
        alias = f" (an older name of {f.name})" if name != f.name else ""
        t.add_row(name, "/".join(sorted(f.kinds)), "yes" if f.writable else "", f.description + alias)
    console.print(t)
    console.print(f"`--to BACKEND` writes a backend's own training format: {', '.join(sorted(available()))}")


@data.command()
@_input_file
@_target
@click.option("--model", help="target model (token limit); default: the target's default model")
@click.option("--tokens/--no-tokens", default=True, help="count tokens to check per-example limits (needs --for)")
@_format
@_mapping
@click.option("--show", default=20, show_default=True, help="how many findings to list")
@click.option("--json", "as_json", is_flag=True)
def validate(
    file: str,
    target: str | None,
    model: str | None,
    tokens: bool,
    fmt: str,
    mapping: str | None,
    show: int,
    as_json: bool,
) -> None:
    """Check FILE line by line; exits 1 when it has errors."""
    from fto.orchestrator.api import data as api

    report = api.validate(file, target, model, tokens, fmt, _load_mapping(mapping), show)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for finding in report.shown:
            style = "red" if finding.level == "error" else "yellow"
            console.print(f"[{style}]{finding.level}[/] {finding}", highlight=False, markup=True)
        for (level, code), n in sorted(report.counts.items()):
            console.print(f"  {n:>7} × {code} ({level})", highlight=False)
        verdict = "[green]ok[/]" if report.ok else "[red]invalid[/]"
        console.print(
            f"{verdict}: {report.examples} examples ({report.format}), {report.errors} errors, "
            f"{report.warnings} warnings" + (f" for {target}" if target else "")
        )
    sys.exit(0 if report.ok else 1)


@data.command()
@_input_file
@_target
@click.option("--model", help="target model; default: the target's default model")
@click.option("--tokenizer", help="count with this model folder's tokenizer instead")
@click.option("--epochs", type=int, help="epochs to price; default: what the provider picks for 'auto'")
@click.option("--quote", is_flag=True, help="also ask the provider its own price (uploads the file; needs its key)")
@_format
@_mapping
@click.option("--json", "as_json", is_flag=True)
@click.option("--open", "open_page", is_flag=True, help="also register FILE with the dashboard and open its page")
def stats(
    file: str,
    target: str | None,
    model: str | None,
    tokenizer: str | None,
    epochs: int | None,
    quote: bool,
    fmt: str,
    mapping: str | None,
    as_json: bool,
    open_page: bool,
) -> None:
    """Examples, messages and tokens per example, and the estimated training cost; exits 1 when FILE has no
    example that can be read."""
    from fto.orchestrator.api import data as api

    result = api.stats(file, target, model, tokenizer, epochs, quote, fmt, _load_mapping(mapping)).model_dump()
    if result["provider_quote"] is None:
        del result["provider_quote"]
    if open_page:
        _open_in_dashboard(file)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_stats(result, target)
    if not result["examples"]:
        from fto.orchestrator.errors import DataError

        raise DataError(f"no example could be read: `fto data validate {file}` says why", file=file)


def _open_in_dashboard(file: str) -> None:
    import webbrowser

    from fto.orchestrator.ui.command import DEFAULT_PORT, register_files

    (address,) = register_files((Path(file),))
    url = f"http://127.0.0.1:{DEFAULT_PORT}{address}"
    click.echo(f"dashboard page: {url}  (start the dashboard with `fto ui` if it is not running)", err=True)
    if sys.stdout.isatty():  # a person at a terminal, not a script or a test
        webbrowser.open(url)


def _print_stats(result: dict[str, Any], target: str | None) -> None:
    console.print(
        f"{result['file']}: {result['examples']} examples ({result['format']})"
        + (f" for {target} {result['model']} ({result['provider_label']})" if target else "")
    )
    console.print(
        f"tokenizer: {result['tokenizer']}" + ("" if result["tokens_exact"] else "  [yellow](counts are estimates)[/]")
    )
    if target and not result["model_known"]:
        console.print(
            f"[yellow]warning:[/] {result['model']} is not in {target}'s model table: its token limit and price are "
            "unknown (check the name, or add it to $FTO_HOME/providers.json)"
        )
    console.print(
        f"missing a system message: {result['missing_system']}, missing a user message: {result['missing_user']}"
    )
    t = Table("per example", "min", "max", "mean", "median", "p10", "p90")
    for key in ("messages_per_example", "total_tokens_per_example", "assistant_tokens_per_example"):
        d = result[key] or {}
        t.add_row(
            key.replace("_per_example", "").replace("_", " "),
            *(str(d.get(k, "")) for k in ("min", "max", "mean", "median", "p10", "p90")),
        )
    console.print(t)
    if result["token_limit"]:
        console.print(
            f"{result['over_limit']} examples over the {result['token_limit']:,}-token limit (truncated in training)"
        )
    billing, epochs, charged = result["billing_tokens"], result["epochs"], result["charged_tokens"]
    console.print(f"billing tokens: {billing:,} × {epochs} epochs = {charged:,} charged")
    if result["estimated_cost_usd"] is not None:
        console.print(
            f"estimated cost: ${result['estimated_cost_usd']:,.2f} "
            f"at ${result['usd_per_1m_training_tokens']}/1M tokens "
            f"(prices: the {target} backend's provider.json, or $FTO_HOME/providers.json)"
        )
    elif target:
        console.print(f"no price for {result['model']} in the price table; add it to $FTO_HOME/providers.json")
    if result.get("hosting_usd_per_hour"):
        console.print(
            f"hosting: ${result['hosting_usd_per_hour']:.2f}/hour for each deployment serving the fine-tuned model "
            "(billed while it exists, used or not)"
        )
    if "provider_quote" in result:
        console.print(f"provider's quote: {result['provider_quote']}")


@data.command()
@_input_file
@click.option("--eval", "eval_file", type=click.Path(dir_okay=False), callback=_readable,
              help="an eval set to look for leaks into")  # fmt: skip
@_target
@click.option("--model", help="--for BACKEND: the model whose token limit answers are cut at")
@click.option("--max-tokens", type=int, help="flag examples longer than this many tokens (answers cut in training)")
@click.option("--threshold", default=0.8, show_default=True, type=click.FloatRange(0.1, 1.0),
              help="similarity (MinHash Jaccard) from which examples count as near-duplicates")  # fmt: skip
@_format
@_mapping
@click.option("--json", "as_json", is_flag=True)
def check(
    file: str,
    eval_file: str | None,
    target: str | None,
    model: str | None,
    max_tokens: int | None,
    threshold: float,
    fmt: str,
    mapping: str | None,
    as_json: bool,
) -> None:
    """Look for the common mistakes: too little data, duplicates and near-duplicates, conflicting answers, eval
    leaks, empty or cut answers, odd answers, and sensitive data (e-mails, phones, cards, IBANs, keys).

    Findings are warnings: exit 0 unless the file cannot be read. `fto submit` and `fto run` run the same check.
    """
    from fto.orchestrator.api import data as api

    report = api.check(file, eval_file, target, model, max_tokens, threshold, fmt, _load_mapping(mapping))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    console.print(f"{file}: {report.examples} examples" + (f", eval {eval_file}: {report.eval_examples}" if eval_file
                                                               else ""), highlight=False)  # fmt: skip
    for issue in report.issues:
        console.print(f"[yellow]warning:[/] {escape(str(issue))}", highlight=False)
    console.print("no findings" if not report.issues else f"{len(report.issues)} findings: " +
                  ", ".join(f"{code} {n}" for code, n in report.counts.items()))  # fmt: skip


@data.command()
@_input_file
@click.option("--to", "to", required=True, help="a format (see `fto data formats`), or a backend: its training format")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--model", help="--to BACKEND: the base model (a tokenizing format uses its tokenizer and template)")
@click.option("--max-length", default=4096, show_default=True, help="--to BACKEND: truncate longer tokenized examples")
@click.option("--skip-unwritable", is_flag=True, help="skip examples the target cannot hold instead of failing")
@click.option("--skip-invalid", is_flag=True, help="skip examples with errors (counted) instead of failing")
@_format
@_mapping
def convert(
    file: str,
    to: str,
    output: str,
    model: str | None,
    max_length: int,
    skip_unwritable: bool,
    skip_invalid: bool,
    fmt: str,
    mapping: str | None,
) -> None:
    """Convert FILE to another format (checked first: bad input writes nothing)."""
    from fto.orchestrator.api import data as api

    done = api.convert(file, to, output, model, max_length, skip_unwritable, skip_invalid, fmt, _load_mapping(mapping))
    console.print(
        f"wrote {done.written} examples to {output} ({to})"
        + (f"; skipped {done.unwritable} it cannot hold" if done.unwritable else "")
    )
    if done.invalid:
        console.print(f"skipped examples with {done.invalid} errors; see `fto data validate {file}`")


@data.command()
@_input_file
@click.option("--validation", "fraction", default=0.1, show_default=True, help="fraction held out")
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--to", "to", help="output format; default: the input's")
@_format
@_mapping
def split(
    file: str, fraction: float, seed: int, output_dir: str, to: str | None, fmt: str, mapping: str | None
) -> None:
    """Split FILE into train.jsonl and validation.jsonl (seeded: the same seed gives the same split)."""
    from fto.orchestrator.api import data as api

    train, held = api.split(file, output_dir, fraction, seed, to, fmt, _load_mapping(mapping))
    console.print(f"{train} train and {held} validation examples in {output_dir}")

"""`fto.data`: the data layer from Python — validate, stats, check, convert — returning typed results (the
`fto data …` commands print these)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fto.orchestrator.data.check.report import CheckReport
from fto.orchestrator.data.validate import Report
from fto.orchestrator.errors import ConfigError, DataError

__all__ = ["CheckReport", "Converted", "DataStats", "Report", "check", "convert", "split", "stats", "validate"]


class Distribution(BaseModel):
    """min, max, mean, median, p10 and p90 of a per-example count."""

    min: float
    max: float
    mean: float
    median: float
    p10: float
    p90: float


class Histogram(BaseModel):
    """Counts in equal-width bins: `edges` has one more value than `counts`."""

    edges: list[float]
    counts: list[int]


class DataStats(BaseModel):
    """Examples, tokens per example and the training cost of a file, as one provider counts and prices them."""

    file: str
    format: str
    target: str | None
    model: str | None
    model_known: bool
    tokenizer: str
    tokens_exact: bool
    examples: int
    missing_system: int
    missing_user: int
    messages_per_example: Distribution | None
    total_tokens_per_example: Distribution | None
    total_tokens_histogram: Histogram | None
    assistant_tokens_per_example: Distribution | None
    token_limit: int | None
    over_limit: int
    billing_tokens: int
    epochs: int
    charged_tokens: int
    usd_per_1m_training_tokens: float | None
    estimated_cost_usd: float | None
    provider_label: str | None = None
    hosting_usd_per_hour: float | None = None  # a deployment serving the fine-tuned model, while it exists
    validation: dict[str, int]
    provider_quote: str | None = None


@dataclass
class Converted:
    """What `convert` wrote: examples written, skipped as unwritable, and skipped as invalid (with their errors)."""

    output: str
    written: int
    unwritable: int
    invalid: int


def validate(
    path: str | Path,
    target: str | None = None,
    model: str | None = None,
    tokens: bool = True,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
    show: int = 20,
) -> Report:
    """Check every example of `path` (by backend `target`'s rules and token limit, when given)."""
    from fto.orchestrator.data.validate import validate_file

    measure_fn, limit = None, None
    if target and tokens:
        from fto.backends.registry import backend_class
        from fto.orchestrator.data.stats import measure

        backend = backend_class(target, field="--for")
        model, card = backend.describe().model(model)
        counter = backend.token_counter(model)
        measure_fn, limit = (lambda r: measure(r, counter)), (card.max_tokens_per_example if card else None)
    return validate_file(path, target, fmt, mapping, measure=measure_fn, token_limit=limit, max_shown=show)


def stats(
    path: str | Path,
    target: str | None = None,
    model: str | None = None,
    tokenizer: str | None = None,
    epochs: int | None = None,
    quote: bool = False,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> DataStats:
    """Counts, token distributions and the estimated training cost of `path`; `quote=True` also asks the
    provider its own price (it uploads the file and needs the provider's key)."""
    from fto.orchestrator.data.stats import dataset_stats

    result = dataset_stats(path, target, model, tokenizer, fmt, mapping, epochs)
    if quote:
        if not target:
            raise ConfigError("--quote asks a provider: name it with --for (target=)", field="--quote")
        from fto.orchestrator.data.quote import provider_quote

        said = provider_quote(str(path), target, model, epochs, fmt, mapping)
        result["provider_quote"] = said or f"{target} quotes no price before a job: the estimate is from its table"
    return DataStats.model_validate(result)


def check(
    path: str | Path,
    eval_path: str | Path | None = None,
    target: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    threshold: float = 0.8,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> CheckReport:
    """The common mistakes in a training file: too little data, duplicates and near-duplicates (MinHash at
    `threshold`), conflicts, leaks into `eval_path`, empty or cut answers, odd answers, sensitive data."""
    from fto.orchestrator.data.check import CheckOptions, check_file
    from fto.orchestrator.data.check.limits import token_limit

    limit, counter = token_limit(target, model, max_tokens)
    options = CheckOptions(near_duplicate_threshold=threshold, token_limit=limit, count_tokens=counter)
    return check_file(str(path), str(eval_path) if eval_path else None, options, fmt, mapping)


def convert(
    path: str | Path,
    to: str,
    output: str | Path,
    model: str | None = None,
    max_length: int = 4096,
    skip_unwritable: bool = False,
    skip_invalid: bool = False,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> Converted:
    """`path` in another format, or in backend `to`'s training format; checked first, so bad input writes nothing
    (unless `skip_invalid`), and a failed write leaves no half file."""
    from fto.backends.registry import available, backend_class
    from fto.orchestrator.data.formats import all_formats
    from fto.orchestrator.data.read import read_records
    from fto.orchestrator.data.validate import require_valid, valid_records, validate_file

    if to not in all_formats() and to not in available():
        known = ", ".join(f for f, kind in all_formats().items() if kind.writable)
        raise ConfigError(f"unknown target {to!r}: a format ({known}) or a backend ({', '.join(available())})",
                          field="--to")  # fmt: skip
    target = backend_class(to).training_format(model, max_length) if to in available() else to
    report: Report | None = None
    if skip_invalid:
        report, records = valid_records(path, fmt, mapping)
    else:
        require_valid(validate_file(path, None, fmt, mapping))
        records = read_records(path, fmt, mapping)
    written, skipped = _write(records, output, target, skip_unwritable, path)
    return Converted(str(output), written, skipped, report.errors if report else 0)


def split(
    path: str | Path,
    output_dir: str | Path,
    fraction: float = 0.1,
    seed: int = 0,
    to: str | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """train.jsonl and validation.jsonl in `output_dir` (seeded: the same seed, the same split); their sizes."""
    from fto.orchestrator.data.load import seeded_split
    from fto.orchestrator.data.read import read_records, resolve_format

    if not 0 < fraction < 1:
        raise DataError(f"must lie between 0 and 1, got {fraction}", field="--validation")
    target = to or resolve_format(path, fmt, mapping).name
    train, held = seeded_split(list(read_records(path, fmt, mapping)), fraction, seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("validation", held)):
        _write(part, out / f"{name}.jsonl", target, False, path)
    return len(train), len(held)


def _write(records: Any, output: str | Path, target: Any, skip: bool, source: str | Path) -> tuple[int, int]:
    from fto.orchestrator.data.write import write_records

    folder = Path(output).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)  # `-o out/x.jsonl` into a folder not made yet
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
        raise DataError(f"cannot create the output's folder {folder}: {why or exc}", file=str(output)) from None
    try:
        return write_records(records, str(output), target, skip_unwritable=skip)
    except DataError as exc:
        Path(output).unlink(missing_ok=True)  # never leave half a file behind
        raise DataError(f"{exc.message} (--skip-unwritable leaves such examples out)", file=str(source),
                        line=exc.line, field=exc.field) from None  # fmt: skip

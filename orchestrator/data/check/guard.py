"""The check `fto submit` runs on a job's data before anything is recorded or sent: findings become warnings,
`check.strict` ones errors, and sensitive data stops a job for a hosted backend unless the user allows it."""

from __future__ import annotations

from collections.abc import Sequence

from fto.backends.base import Backend
from fto.backends.tokenizers import ESTIMATE_ENCODING, tiktoken_counter
from fto.orchestrator.data.check.checks import CheckOptions, CheckReport, check_records, strict_errors
from fto.orchestrator.data.check.sensitive import WHAT
from fto.orchestrator.data.load import DatasetSplits
from fto.orchestrator.errors import DataError
from fto.schemas import JobSpec


def check_before_submit(
    spec: JobSpec, data: DatasetSplits, backends: Sequence[Backend], allow_sensitive: bool
) -> CheckReport | None:
    """The data check of a job (None when the job file turns it off); raises what must stop the job."""
    if not spec.check.enabled:
        return None
    limit = spec.hyperparameters.max_seq_length
    options = CheckOptions(
        near_duplicate_threshold=spec.check.near_duplicate_threshold,
        token_limit=limit,
        count_tokens=tiktoken_counter(ESTIMATE_ENCODING, False, "an estimate").count if limit else None,
        method=spec.method,
    )
    eval_file = spec.eval.data if spec.eval and spec.eval.data != "validation" else spec.data.train
    report = check_records(data.train, spec.data.train, options, data.eval, eval_file)
    errors = strict_errors(report, spec.check.strict)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more findings check.strict makes errors)" if len(errors) > 1 else ""
        raise DataError(
            f"{first.message} [{first.code}: an error under check.strict]{more}",
            file=first.file,
            line=first.lines[0] if first.lines else None,
        )
    hosted = [b.name for b in backends if b.hosted]
    if report.sensitive and hosted and not (allow_sensitive or spec.check.sensitive == "allow"):
        found = ", ".join(f"{n} examples with {WHAT[code]}" for code, n in report.sensitive.items())
        first = next(i for i in report.issues if i.code.startswith("sensitive_"))
        raise DataError(
            f"{found}: not sent to {', '.join(hosted)} without your consent — pass --allow-sensitive or set "
            "`check: {sensitive: allow}` (the local backend keeps data on this machine and never needs it); "
            "`fto data check` lists every line",
            file=first.file,
            line=first.lines[0],
        )
    return report

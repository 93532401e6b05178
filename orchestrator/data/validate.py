"""Validate a dataset for a target in one streaming pass: every problem as a finding with code, line and field.

The checks are those of OpenAI's cookbook data-prep notebook (same codes), plus what providers enforce.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fto.orchestrator.data.formats import RecordError
from fto.orchestrator.data.read import resolve_format
from fto.orchestrator.data.source import Span, iter_items
from fto.orchestrator.errors import DataError
from fto.schemas import Conversation, Message, PreferencePair, Record
from fto.schemas.provider import ProviderInfo

Level = Literal["error", "warning"]
Measure = Callable[[Record], tuple[int, int]]  # record → (total tokens, assistant tokens)
MeasureMany = Callable[[list[Record]], "Pending"]  # a window of records, counted elsewhere
Observe = Callable[[Record, int, int], None]
WINDOW = 256  # records counted together when counting runs beside parsing


class Pending(Protocol):
    """Counts being made elsewhere: (total tokens, assistant tokens) per record, once ready."""

    def result(self) -> list[tuple[int, int]]:
        """Wait for the counts."""
        ...


@dataclass(frozen=True)
class Target:
    """What a provider enforces, as the installed backend describes it."""

    name: str
    info: ProviderInfo
    methods: frozenset[str]

    @classmethod
    def named(cls, name: str) -> Target:
        from fto.backends import registry

        backend = registry.backend_class(name, field="--for")
        return cls(name=name, info=backend.describe(), methods=backend.methods)


@dataclass(frozen=True)
class Finding:
    code: str
    level: Level
    message: str
    file: str
    line: int | None
    field: str | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message} [{self.code}]"


@dataclass
class Report:
    file: str
    format: str
    target: str | None
    examples: int = 0
    shown: list[Finding] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (level, code) → count
    errors: int = 0

    @property
    def warnings(self) -> int:
        return sum(n for (level, _), n in self.counts.items() if level == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (`fto data validate --json`)."""
        return {
            "file": self.file,
            "format": self.format,
            "target": self.target,
            "examples": self.examples,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "counts": [{"level": level, "code": code, "count": n} for (level, code), n in sorted(self.counts.items())],
            "findings": [asdict(f) for f in self.shown],
        }


class _Collector:
    def __init__(self, report: Report, target: Target | None, max_shown: int):
        self.report, self.max_shown = report, max_shown
        self.strict = target.info.data.strict if target else frozenset()
        self.line: int | None = None

    def __call__(self, code: str, field: str | None, message: str, level: Level = "warning") -> None:
        if level == "warning" and code in self.strict:
            level = "error"
        self.report.counts[(level, code)] += 1
        self.report.errors += level == "error"
        if len(self.report.shown) < self.max_shown:
            self.report.shown.append(Finding(code, level, message, self.report.file, self.line, field))

    def error(self, code: str, field: str | None, message: str) -> None:
        self(code, field, message, "error")


def validate_file(
    path: str | Path,
    target: str | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
    measure: Measure | None = None,
    token_limit: int | None = None,
    observe: Observe | None = None,
    max_shown: int = 20,
    measure_many: MeasureMany | None = None,
    span: Span | None = None,
) -> Report:
    """Check every example of `path` (for backend `target` when given); findings collect in the returned report.

    `measure_many` (instead of `measure`) takes a window of records and returns a future: tokens are counted on
    another thread while this one parses the next window (tokenizers release the GIL); findings keep their lines.
    With `span`, only that part of the file is checked, and the checks of the whole file are left to `merged`.
    """
    report = Report(file=str(path), format="unknown", target=target)
    scan = _scan(path, report, target, fmt, mapping, measure, token_limit, observe, max_shown, span)
    if measure_many is None:
        for _ in scan:
            pass
        return report
    emit = _Collector(report, Target.named(target) if target else None, max_shown)
    pending: deque[tuple[list[Record], Pending]] = deque()
    window: list[Record] = []
    for record, _ in scan:
        window.append(record)
        if len(window) == WINDOW:
            pending.append((window, measure_many(window)))
            window = []
            if len(pending) > 1:
                _measured(*pending.popleft(), emit, token_limit, observe)
    if window:
        pending.append((window, measure_many(window)))
    while pending:
        _measured(*pending.popleft(), emit, token_limit, observe)
    return report


def _measured(
    records: list[Record],
    counted: Pending,
    emit: _Collector,
    token_limit: int | None,
    observe: Observe | None,
) -> None:
    """A counted window's token findings (each at its record's line) and observations."""
    for record, (total, assistant) in zip(records, counted.result(), strict=True):
        if token_limit and total > token_limit:
            emit.line = record.source_line
            emit(
                "too_many_tokens", None, f"{total:,} tokens, over the limit of {token_limit:,} (it would be truncated)"
            )
        if observe:
            observe(record, total, assistant)
    emit.line = None


def valid_records(
    path: str | Path, fmt: str = "auto", mapping: dict[str, Any] | None = None
) -> tuple[Report, Iterator[Record]]:
    """The records without errors (for `convert --skip-invalid`); the report fills in as they are read."""
    report = Report(file=str(path), format="unknown", target=None)
    scan = _scan(path, report, None, fmt, mapping, None, None, None, 20, None)
    return report, (record for record, clean in scan if clean)


def _scan(
    path: str | Path,
    report: Report,
    target_name: str | None,
    fmt: str,
    mapping: dict[str, Any] | None,
    measure: Measure | None,
    token_limit: int | None,
    observe: Observe | None,
    max_shown: int,
    span: Span | None,
) -> Iterator[tuple[Record, bool]]:
    """One pass: yields each record and whether it passed, while findings collect in `report`."""
    target = Target.named(target_name) if target_name else None
    emit = _Collector(report, target, max_shown)
    try:
        reader = resolve_format(path, fmt, mapping)
    except DataError as exc:
        if exc.code is None:  # not a problem of the file's content (a missing file, a bad mapping)
            raise
        emit.line = exc.line
        emit.error(exc.code, exc.field, exc.message)
        return
    report.format = reader.name
    for item in iter_items(path, span):
        emit.line = item.line or None
        if item.obj is None:
            (emit if item.warning else emit.error)(item.code or "invalid_json", None, item.error or "unreadable")
            continue
        errors_before = report.errors
        try:
            record = reader.parse(item.obj, emit)
        except RecordError as exc:
            emit.error(exc.code, exc.field, exc.message)
            continue
        record.source_line = item.line
        report.examples += 1
        if isinstance(record, Conversation):
            _check_conversation(record, target, emit)
        else:
            _check_pair(record, target, emit)
        if measure is not None:
            total, assistant = measure(record)
            if token_limit and total > token_limit:
                emit(
                    "too_many_tokens",
                    None,
                    f"{total:,} tokens, over the limit of {token_limit:,} (it would be truncated)",
                )
            if observe:
                observe(record, total, assistant)
        yield record, report.errors == errors_before
    emit.line = None
    if span is None:
        _check_file(Path(path), report, target, emit)


def merged(parts: list[Report], max_shown: int = 20) -> Report:
    """One report of a file checked in spans (`parts` in file order): counts summed, the first findings shown, and
    the checks of the whole file made."""
    first = parts[0]
    report = Report(file=first.file, format=first.format, target=first.target)
    for part in parts:
        report.examples += part.examples
        report.errors += part.errors
        report.counts.update(part.counts)
        report.shown.extend(part.shown[: max_shown - len(report.shown)])
    target = Target.named(first.target) if first.target else None
    _check_file(Path(first.file), report, target, _Collector(report, target, max_shown))
    return report


def _check_file(path: Path, report: Report, target: Target | None, emit: _Collector) -> None:
    if report.examples == 0 and report.errors == 0:
        emit.error("empty_file", None, "no examples in file")
    if target is None:
        return
    rules, label = target.info.data, target.info.label
    if report.examples < rules.min_examples:
        emit.error("too_few_examples", None, f"{report.examples} examples; {label} needs at least {rules.min_examples}")
    if rules.max_examples is not None and report.examples > rules.max_examples:
        emit.error("too_many_examples", None, f"{report.examples} examples; {label} takes at most {rules.max_examples}")
    limit = rules.file_size_limit_bytes
    size = path.stat().st_size
    if limit and size > limit:
        note = f" ({rules.file_size_note})" if rules.file_size_note else ""
        emit.error("file_too_large", None, f"{size:,} bytes; the limit is {limit:,}{note}")


def _check_conversation(conversation: Conversation, target: Target | None, emit: _Collector) -> None:
    messages = conversation.messages
    _check_messages(messages, conversation, "messages", emit)
    roles = [m.role for m in messages]
    if roles == ["user", "assistant"]:  # one question, one answer (most files): of the turn checks, only weights apply
        if messages[1].weight == 0:
            emit.error("no_trainable_turn", "messages", "every assistant message has weight 0: nothing to learn")
        if target is not None:
            _check_for_target(conversation, roles, target, emit)
        return
    turns = [r for r in roles if r != "system"]
    if "assistant" not in roles:
        emit.error("example_missing_assistant_message", "messages", "no assistant message to learn from")
    elif all(m.weight == 0 for m in messages if m.role == "assistant"):
        emit.error("no_trainable_turn", "messages", "every assistant message has weight 0: nothing to learn")
    if len(turns) < len(roles) - 1 or (len(turns) < len(roles) and roles[0] != "system"):
        emit("system_not_first", "messages", "a system message after the first turn")
    if turns and turns[0] != "user":
        emit("first_turn_not_user", "messages[0].role", f"the conversation starts with {turns[0]!r}, not 'user'")
    if turns and turns[-1] != "assistant":
        emit("last_turn_not_assistant", "messages", "the last turn is not the assistant's: it is not trained on")
    for i in range(1, len(roles)):
        repeated = roles[i] == roles[i - 1] and roles[i] in ("user", "assistant")
        if repeated and not (messages[i].tool_calls or messages[i - 1].tool_calls):  # a reply after a call is new
            emit("consecutive_roles", f"messages[{i}].role", f"two {roles[i]!r} messages in a row")
    if target is not None:
        _check_for_target(conversation, roles, target, emit)


def _check_for_target(conversation: Conversation, roles: Sequence[str], target: Target, emit: _Collector) -> None:
    messages = conversation.messages
    if not target.info.data.tools and (conversation.tools or "tool" in roles or any(m.tool_calls for m in messages)):
        emit.error("tools_unsupported", "tools", f"{target.info.label} fine-tuning takes text turns only, no tools")
    if conversation.label is not None and not target.info.data.labels:
        emit("label_ignored", "label", f"{target.info.label} does not train on KTO labels; the label is ignored")


def _check_messages(
    messages: list[Message], record: Conversation | PreferencePair, field: str, emit: _Collector
) -> None:
    declared = {t.name for t in record.tools} if record.tools else set()
    called: set[str] = set()
    for i, m in enumerate(messages):
        if not m.tool_calls and m.role != "tool":
            if not m.content or m.content.isspace():
                emit.error("missing_content", f"{field}[{i}].content", f"empty {m.role} message")
            continue  # the common case: a plain text turn
        where = f"{field}[{i}]"
        if m.tool_calls:
            for j, call in enumerate(m.tool_calls):
                if call.id:
                    called.add(call.id)
                try:
                    json.loads(call.arguments)
                except json.JSONDecodeError as exc:
                    emit.error(
                        "tool_call_bad_arguments", f"{where}.tool_calls[{j}].arguments", f"not valid JSON: {exc.msg}"
                    )
                if declared and call.name not in declared:
                    emit.error(
                        "tool_call_undeclared",
                        f"{where}.tool_calls[{j}].name",
                        f"calls {call.name!r}, which tools does not declare",
                    )
        elif not m.content or m.content.isspace():
            emit.error("missing_content", f"{where}.content", f"empty {m.role} message")
        if m.role == "tool" and m.tool_call_id and called and m.tool_call_id not in called:
            emit(
                "tool_result_without_call",
                f"{where}.tool_call_id",
                f"answers {m.tool_call_id!r}, which no earlier call made",
            )


def _check_pair(pair: PreferencePair, target: Target | None, emit: _Collector) -> None:
    if not pair.prompt:
        emit.error("missing_prompt", "prompt", "a preference pair needs a prompt")
    for name, turns in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        _check_messages(turns, pair, name, emit)
        if not turns or turns[-1].role != "assistant":
            emit.error("example_missing_assistant_message", name, f"{name} does not end with an assistant message")
    _check_messages(pair.prompt, pair, "prompt", emit)
    if pair.chosen == pair.rejected:
        emit("identical_pair", "rejected", "chosen and rejected are the same: nothing to learn")
    if target is not None and "dpo" not in target.methods:
        emit.error(
            "preference_unsupported",
            None,
            f"{target.info.label} fine-tunes with SFT only; preference pairs are refused",
        )


def require_valid(report: Report) -> None:
    """Raise the first error as a DataError (for paths that must stop on bad data)."""
    first = next((f for f in report.shown if f.level == "error"), None)
    if first is not None:
        more = report.errors - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''}; see `fto data validate`)" if more else ""
        raise DataError(
            first.message + f" [{first.code}]" + suffix, file=first.file, line=first.line, field=first.field
        )
    if not report.ok:
        raise DataError(f"{report.errors} errors; see `fto data validate {report.file}`", file=report.file)

"""The data check: every finding a code, a message, the file and its lines. Findings are warnings; a job file's
`check.strict` makes chosen codes errors, and sensitive data stops a job for a hosted backend unless allowed."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fto.orchestrator.data.check import sensitive, similar
from fto.schemas import Conversation, PreferencePair, Record

# Fine-tuning guides call a few hundred examples a minimum and thousands better (per method).
GUIDELINE = {"sft": 500, "dpo": 1000}
CLASS_LIKE_MAX_LABELS = 20  # answers look like classes when there are this few distinct short ones
REPEATED_ANSWER_MIN = 5  # one answer for at least this many different prompts (and 5% of them) is suspicious
FORM_MAJORITY = 0.8  # when this share of answers is JSON, the others are flagged
NEAR_DUPLICATE_LIMIT = 100_000  # near-duplicates are looked for among this many examples (memory grows with them)
Count = Callable[[str], int]


@dataclass(frozen=True)
class Issue:
    """One finding: what, where (training file lines, and eval file lines for leaks), how many."""

    code: str
    message: str
    file: str
    lines: list[int] = field(default_factory=list)
    eval_file: str | None = None
    eval_lines: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.lines[:8])) + ("…" if len(self.lines) > 8 else "")
        where = f"{self.file}:{shown}" if self.lines else self.file
        if self.eval_lines:
            held = ", ".join(map(str, self.eval_lines[:8])) + ("…" if len(self.eval_lines) > 8 else "")
            where += f" (eval {self.eval_file}:{held})"
        return f"{where}: {self.message} [{self.code}]"


@dataclass(frozen=True)
class CheckOptions:
    """How closely to look: near-duplicate similarity, the token limit answers are cut at, and how to count."""

    near_duplicate_threshold: float = 0.8
    token_limit: int | None = None
    count_tokens: Count | None = None
    method: str = "sft"


@dataclass
class CheckReport:
    """What the check found in a training file (and against an eval set)."""

    file: str
    examples: int
    eval_file: str | None = None
    eval_examples: int = 0
    issues: list[Issue] = field(default_factory=list)

    def by_importance(self) -> list[Issue]:
        """Findings with what matters most first: sensitive data, leaks, conflicts, then the rest."""
        order = ["sensitive_", "eval_leak", "eval_near_leak", "conflict", "cut_answer", "empty_answer", "duplicate",
                 "too_little_data", "answer_form", "label_imbalance", "repeated_answer", "near_duplicate"]  # fmt: skip

        def rank(issue: Issue) -> int:
            return next((i for i, code in enumerate(order) if issue.code.startswith(code)), len(order))

        return sorted(self.issues, key=rank)

    def summary(self) -> str:
        """One line: how many findings of each kind."""
        return ", ".join(f"{code} {n}" for code, n in self.counts.items()) or "no findings"

    @property
    def counts(self) -> dict[str, int]:
        """Findings per code."""
        return dict(Counter(issue.code for issue in self.issues))

    @property
    def sensitive(self) -> dict[str, int]:
        """Items of sensitive data per kind (e-mail addresses, …): what a hosted backend would receive."""
        return {i.code: len(i.lines) for i in self.issues if i.code.startswith("sensitive_")}

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "file": self.file,
            "examples": self.examples,
            "eval_file": self.eval_file,
            "eval_examples": self.eval_examples,
            "counts": self.counts,
            "issues": [asdict(issue) for issue in self.by_importance()],
        }


@dataclass(frozen=True)
class _Row:
    line: int
    prompt: str
    answer: str
    text: str  # everything, for sensitive data


def _rows(records: Sequence[Record]) -> list[_Row]:
    rows = []
    for number, record in enumerate(records, 1):
        line = record.source_line or number
        if isinstance(record, PreferencePair):
            prompt = "\n".join(f"{m.role}: {m.content or ''}" for m in record.prompt)
            answer = "\n".join(m.content or "" for m in record.chosen)
            rest = " ".join(m.content or "" for m in record.rejected)
        elif isinstance(record, Conversation):
            messages = list(record.messages)
            last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))
            prompt = "\n".join(f"{m.role}: {m.content or ''}" for m in messages[:last])
            answer = _answer_text(messages[last]) if last < len(messages) else ""
            rest = ""
        else:
            continue
        rows.append(_Row(line=line, prompt=prompt, answer=answer, text=f"{prompt}\n{answer}\n{rest}"))
    return rows


def _answer_text(message: Any) -> str:
    """What an answer says: its text, or the tool calls it makes."""
    calls = " ".join(f"{c.name}({c.arguments})" for c in message.tool_calls or [])
    return " ".join(part for part in (message.content or "", calls) if part)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def check_records(
    records: Sequence[Record],
    file: str,
    options: CheckOptions | None = None,
    eval_records: Sequence[Record] = (),
    eval_file: str | None = None,
) -> CheckReport:
    """Every check over records already read (with their source lines)."""
    options = options or CheckOptions()
    rows = _rows(records)
    report = CheckReport(file=file, examples=len(rows), eval_file=eval_file, eval_examples=len(eval_records))
    add = report.issues.append
    guideline = GUIDELINE.get(options.method, GUIDELINE["sft"])
    if len(rows) < guideline:
        add(Issue("too_little_data", f"{len(rows)} examples: guides call a few hundred a minimum and thousands "
                  f"better for {options.method.upper()} (fto flags fewer than {guideline}); "
                  "`fto run --learning-curve 0.25,0.5,1` shows whether more would help", file))  # fmt: skip
    _duplicates(rows, file, options, add)
    _conflicts(rows, file, add)
    _answers(rows, file, options, add)
    _sensitive(rows, file, add)
    if eval_records:
        held = _rows(eval_records)
        _leaks(rows, held, file, eval_file or file, options, add)
        if eval_file and eval_file != file:  # eval prompts go to every model too
            _sensitive(held, eval_file, add)
    return report


def _duplicates(rows: list[_Row], file: str, options: CheckOptions, add: Callable[[Issue], None]) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        groups[_normal(row.prompt + "\n" + row.answer)].append(row.line)
    exact = [lines for lines in groups.values() if len(lines) > 1]
    for lines in exact:
        add(Issue("duplicate", f"{len(lines)} identical examples", file, lines))
    first_of = {lines[0] for lines in groups.values()}  # one of each exact group takes part in the near search
    candidates = [row for row in rows if row.line in first_of]
    if len(candidates) > NEAR_DUPLICATE_LIMIT:
        add(Issue("near_duplicate_sampled", f"near-duplicates were looked for among the first {NEAR_DUPLICATE_LIMIT:,} "
                  f"of {len(candidates):,} distinct examples", file))  # fmt: skip
        candidates = candidates[:NEAR_DUPLICATE_LIMIT]
    index = similar.Index(options.near_duplicate_threshold)
    seen: set[int] = set()
    for position, signature in enumerate(similar.signatures([r.prompt + "\n" + r.answer for r in candidates])):
        row = candidates[position]
        close = [candidates[k].line for k in index.similar(signature) if candidates[k].line not in seen]
        if close:
            lines = sorted([*close, row.line])
            seen.update(lines)
            add(Issue("near_duplicate", f"{len(lines)} examples at least {options.near_duplicate_threshold:.0%} "
                      "alike (MinHash of word 3-grams)", file, lines))  # fmt: skip
        index.add(position, signature)


def _conflicts(rows: list[_Row], file: str, add: Callable[[Issue], None]) -> None:
    answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        answers[_normal(row.prompt)][_normal(row.answer)].append(row.line)
    for by_answer in answers.values():
        if len(by_answer) > 1:
            lines = sorted(line for group in by_answer.values() for line in group)
            add(Issue("conflict", f"the same prompt with {len(by_answer)} different answers", file, lines))


def _answers(rows: list[_Row], file: str, options: CheckOptions, add: Callable[[Issue], None]) -> None:
    empty = [r.line for r in rows if not r.answer.strip()]
    if empty:
        add(Issue("empty_answer", f"{len(empty)} examples whose answer is empty or whitespace", file, empty))
    if options.token_limit and options.count_tokens:
        cut = [r.line for r in rows if options.count_tokens(r.prompt + r.answer) > options.token_limit]
        if cut:
            add(Issue("cut_answer", f"{len(cut)} examples longer than the {options.token_limit:,}-token limit: their "
                      "answers are cut in training", file, cut))  # fmt: skip
    answered = [r for r in rows if r.answer.strip()]
    by_answer: dict[str, list[_Row]] = defaultdict(list)
    for row in answered:
        by_answer[_normal(row.answer)].append(row)
    class_like = (
        len(answered) >= 20
        and len(by_answer) <= CLASS_LIKE_MAX_LABELS
        and all(len(answer.split()) <= 3 for answer in by_answer)
    )
    if class_like:
        sizes = sorted(((len(group), label) for label, group in by_answer.items()), reverse=True)
        if len(sizes) > 1 and sizes[-1][0] * 10 < sizes[0][0]:
            shown = ", ".join(f"{label!r}: {n}" for n, label in sizes)
            lines = sorted(r.line for r in by_answer[sizes[-1][1]])
            add(Issue("label_imbalance", f"answers look like classes and are unbalanced ({shown}): the rarest is "
                      "under a tenth of the commonest", file, lines))  # fmt: skip
    else:
        floor = max(REPEATED_ANSWER_MIN, len(answered) // 20)
        for answer, group in by_answer.items():
            prompts = {_normal(r.prompt) for r in group}
            if len(prompts) >= floor:
                add(Issue("repeated_answer", f"one answer ({answer[:40]!r}) for {len(prompts)} different prompts",
                          file, sorted(r.line for r in group)))  # fmt: skip
    parsed = [_is_json(r.answer) for r in answered]
    if len(answered) >= 10 and sum(parsed) >= FORM_MAJORITY * len(answered) and not all(parsed):
        odd = [r.line for r, ok in zip(answered, parsed, strict=True) if not ok]
        add(Issue("answer_form", f"{sum(parsed)} of {len(answered)} answers are JSON; these {len(odd)} do not parse",
                  file, odd))  # fmt: skip


def _is_json(text: str) -> bool:
    text = text.strip()
    if not text or text[0] not in "[{":
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _sensitive(rows: list[_Row], file: str, add: Callable[[Issue], None]) -> None:
    for code, detect in sensitive.DETECTORS.items():
        lines = [r.line for r in rows for _ in detect(r.text)]
        if lines:
            where = sorted(set(lines))
            add(Issue(code, f"{len(lines)} {sensitive.WHAT[code]} in {len(where)} examples", file, where))


def _leaks(
    rows: list[_Row], held: list[_Row], file: str, eval_file: str, options: CheckOptions, add: Callable[[Issue], None]
) -> None:
    """Eval examples also in the training data, exactly or nearly: they inflate every score."""
    exact_keys = {_normal(r.prompt): r.line for r in rows}
    exact = [(r.line, exact_keys[_normal(r.prompt)]) for r in held if _normal(r.prompt) in exact_keys]
    if exact:
        add(Issue("eval_leak", f"{len(exact)} eval prompts also in the training data", file,
                  sorted({t for _, t in exact}), eval_file, sorted(e for e, _ in exact)))  # fmt: skip
    leaked = {e for e, _ in exact}
    index = similar.Index(options.near_duplicate_threshold)
    for position, signature in enumerate(similar.signatures([r.prompt for r in rows])):
        index.add(position, signature)
    near: list[tuple[int, int]] = []
    for row, signature in zip(held, similar.signatures([r.prompt for r in held]), strict=True):
        if row.line not in leaked:
            near += [(row.line, rows[k].line) for k in index.similar(signature)]
    if near:
        add(Issue("eval_near_leak", f"{len({e for e, _ in near})} eval prompts at least "
                  f"{options.near_duplicate_threshold:.0%} alike to training prompts", file,
                  sorted({t for _, t in near}), eval_file, sorted({e for e, _ in near})))  # fmt: skip


def check_file(
    path: str,
    eval_path: str | None = None,
    options: CheckOptions | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> CheckReport:
    """Read a training file (and an eval file) and check them."""
    from fto.orchestrator.data.read import read_records

    records = list(read_records(path, fmt, mapping))
    options = options or CheckOptions(method="dpo" if records and isinstance(records[0], PreferencePair) else "sft")
    held = list(read_records(eval_path, fmt, mapping)) if eval_path else []
    return check_records(records, path, options, held, eval_path)


def strict_errors(report: CheckReport, strict: Sequence[str]) -> list[Issue]:
    """The findings a job file's `check.strict` makes errors (`sensitive` stands for every sensitive_* code)."""
    wanted = set(strict)
    return [i for i in report.issues if i.code in wanted or ("sensitive" in wanted and i.code.startswith("sensitive_"))]

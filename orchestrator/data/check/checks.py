"""The data check: every finding a code, a message, the file and its lines. Findings are warnings; a job file's
`check.strict` makes chosen codes errors, and sensitive data stops a job for a hosted backend unless allowed."""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fto.orchestrator.data.check import sensitive, similar
from fto.orchestrator.data.check.report import CheckReport, Issue
from fto.schemas import Conversation, PreferencePair, Record

# Fine-tuning guides call a few hundred examples a minimum and thousands better (per method).
GUIDELINE = {"sft": 500, "dpo": 1000}
CLASS_LIKE_MAX_LABELS = 20  # answers look like classes when there are this few distinct short ones
REPEATED_ANSWER_MIN = 5  # one answer for at least this many different prompts (and 5% of them) is suspicious
FORM_MAJORITY = 0.8  # when this share of answers is JSON, the others are flagged
CHUNK = 2048  # rows hashed together (the near-duplicate signatures are computed a chunk at a time)
LIKELY_MARGIN = 0.15  # candidates whose signatures suggest less than threshold - this are not worth reading again
Count = Callable[[str], int]


@dataclass(frozen=True)
class CheckOptions:
    """How closely to look: near-duplicate similarity, the token limit answers are cut at, and how to count."""

    near_duplicate_threshold: float = 0.8
    token_limit: int | None = None
    count_tokens: Count | None = None
    method: str = "sft"


@dataclass(frozen=True)
class _Row:
    line: int
    prompt: str
    answer: str
    text: str  # everything, for sensitive data


def _rows(records: Iterable[Record]) -> Iterator[_Row]:
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
        yield _Row(line=line, prompt=prompt, answer=answer, text=f"{prompt}\n{answer}\n{rest}")


def _answer_text(message: Any) -> str:
    """What an answer says: its text, or the tool calls it makes."""
    calls = " ".join(f"{c.name}({c.arguments})" for c in message.tool_calls or [])
    return " ".join(part for part in (message.content or "", calls) if part)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _hash(value: str | tuple[str, str]) -> int:
    """A 64-bit key for grouping equal texts within one run (Python's own hash: fast, and stable in a process)."""
    return hash(value) % 2**64


# Rows come back by position for the few checks that need their text (a candidate pair, a label's name): from
# memory when the records are there, by reading the file again when they are not.
Fetch = Callable[[set[int]], dict[int, _Row]]


class _Scan:
    """What the check keeps of each example while reading: hashes, flags and LSH band keys — never its text, so
    memory stays small however long the file."""

    def __init__(self, options: CheckOptions, prompt_keys: bool):
        self.options, self.with_prompt_keys = options, prompt_keys
        self.lines, self.full, self.prompt, self.answer = array("q"), array("Q"), array("Q"), array("Q")
        self.answered, self.json, self.short = bytearray(), bytearray(), bytearray()
        self.empty: list[int] = []
        self.cut: list[int] = []
        self.sensitive: dict[str, list[int]] = defaultdict(list)
        self.signatures: list[np.ndarray] = []
        self.has: list[np.ndarray] = []
        self.prompt_signatures: list[np.ndarray] = []
        self.prompt_has: list[np.ndarray] = []

    def add(self, rows: list[_Row]) -> None:
        """Take in a chunk of rows."""
        limit, count = self.options.token_limit, self.options.count_tokens
        for row in rows:
            prompt, answer = _normal(row.prompt), _normal(row.answer)
            self.lines.append(row.line)
            self.prompt.append(_hash(prompt))
            self.answer.append(_hash(answer))
            self.full.append(_hash((prompt, answer)))
            self.answered.append(bool(answer))
            self.json.append(_is_json(row.answer))
            self.short.append(answer.count(" ") < 3)  # three words at most (spaces are single once normal)
            if not answer:
                self.empty.append(row.line)
            if limit and count and count(row.prompt + row.answer) > limit:
                self.cut.append(row.line)
            for code, items in sensitive.find_all(row.text).items():
                self.sensitive[code] += [row.line] * items
        signatures, has = similar.signatures([r.prompt + "\n" + r.answer for r in rows])
        self.signatures.append(signatures)
        self.has.append(has)
        if self.with_prompt_keys:
            signatures, has = similar.signatures([r.prompt for r in rows])
            self.prompt_signatures.append(signatures)
            self.prompt_has.append(has)

    def arrays(self) -> dict[str, np.ndarray]:
        """The kept facts as arrays, one entry per row."""

        def stack(parts: list[np.ndarray], width: int, dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, width) if width else 0, dtype=dtype)

        return {
            "line": np.frombuffer(self.lines, dtype=np.int64) if self.lines else np.zeros(0, np.int64),
            "full": np.array(self.full, dtype=np.uint64),
            "prompt": np.array(self.prompt, dtype=np.uint64),
            "answer": np.array(self.answer, dtype=np.uint64),
            "answered": np.frombuffer(bytes(self.answered), dtype=bool),
            "json": np.frombuffer(bytes(self.json), dtype=bool),
            "short": np.frombuffer(bytes(self.short), dtype=bool),
            "signatures": stack(self.signatures, similar.SLOTS, np.uint8),
            "has": stack(self.has, 0, bool),
            "prompt_signatures": stack(self.prompt_signatures, similar.SLOTS, np.uint8),
            "prompt_has": stack(self.prompt_has, 0, bool),
        }


def _scan(rows: Iterable[_Row], options: CheckOptions, prompt_keys: bool) -> _Scan:
    scan = _Scan(options, prompt_keys)
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            scan.add(chunk)
            chunk = []
    if chunk:
        scan.add(chunk)
    return scan


def _groups(values: np.ndarray, smallest: int = 1) -> list[np.ndarray]:
    """Row indices of each value held by at least `smallest` rows: groups in order of first appearance, rows in
    order within each group."""
    if not len(values):
        return []
    order = np.argsort(values, kind="stable")
    cuts = np.flatnonzero(np.diff(values[order])) + 1
    starts, ends = np.concatenate(([0], cuts)), np.concatenate((cuts, [len(values)]))
    kept = ends - starts >= smallest
    groups = [order[start:end] for start, end in zip(starts[kept], ends[kept], strict=True)]
    return sorted(groups, key=lambda g: int(g[0]))


def check_records(
    records: Sequence[Record],
    file: str,
    options: CheckOptions | None = None,
    eval_records: Sequence[Record] = (),
    eval_file: str | None = None,
) -> CheckReport:
    """Every check over records already read (with their source lines)."""
    rows, held = list(_rows(records)), list(_rows(eval_records))
    return _check(
        rows, lambda wanted: {i: rows[i] for i in wanted}, file, options or CheckOptions(),
        held if eval_records else None, lambda wanted: {i: held[i] for i in wanted}, eval_file,
    )  # fmt: skip


def check_file(
    path: str,
    eval_path: str | None = None,
    options: CheckOptions | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
) -> CheckReport:
    """Read a training file (and an eval file) and check them, streaming: the file is read once, and again only
    for the rows a finding needs the text of."""
    from fto.orchestrator.data.read import read_records

    def reader(source: str) -> Callable[[], Iterator[_Row]]:
        return lambda: _rows(read_records(source, fmt, mapping))

    train = reader(path)
    if options is None:
        first = next(iter(read_records(path, fmt, mapping)), None)
        options = CheckOptions(method="dpo" if isinstance(first, PreferencePair) else "sft")
    held = reader(eval_path) if eval_path else None
    return _check(train(), _refetch(train), path, options, held() if held else None,
                  _refetch(held) if held else None, eval_path)  # fmt: skip


def _refetch(rows: Callable[[], Iterator[_Row]]) -> Fetch:
    """Rows by position, read again from the file (stopping after the last one wanted)."""

    def fetch(wanted: set[int]) -> dict[int, _Row]:
        found: dict[int, _Row] = {}
        if not wanted:
            return found
        last = max(wanted)
        for position, row in enumerate(rows()):
            if position in wanted:
                found[position] = row
            if position >= last:
                break
        return found

    return fetch


def _check(
    rows: Iterable[_Row],
    fetch: Fetch,
    file: str,
    options: CheckOptions,
    held: Iterable[_Row] | None,
    fetch_held: Fetch | None,
    eval_file: str | None,
) -> CheckReport:
    scan = _scan(rows, options, prompt_keys=held is not None)
    train = scan.arrays()
    report = CheckReport(file=file, examples=len(train["line"]), eval_file=eval_file)
    add = report.issues.append
    guideline = GUIDELINE.get(options.method, GUIDELINE["sft"])
    if report.examples < guideline:
        add(Issue("too_little_data", f"{report.examples} examples: guides call a few hundred a minimum and thousands "
                  f"better for {options.method.upper()} (fto flags fewer than {guideline}); "
                  "`fto run --learning-curve 0.25,0.5,1` shows whether more would help", file))  # fmt: skip
    _duplicates(train, fetch, file, options, add)
    _conflicts(train, file, add)
    _answers(train, scan.cut, fetch, file, options, add)
    _sensitive(scan.sensitive, file, add)
    if held is not None and fetch_held is not None:
        evaluated = _scan(held, options, prompt_keys=True)
        report.eval_examples = len(evaluated.lines)
        _leaks(train, evaluated.arrays(), fetch, fetch_held, file, eval_file or file, options, add)
        if eval_file and eval_file != file:  # eval prompts go to every model too
            _sensitive(evaluated.sensitive, eval_file, add)
    return report


def _duplicates(
    train: dict[str, np.ndarray], fetch: Fetch, file: str, options: CheckOptions, add: Callable[[Issue], None]
) -> None:
    lines = train["line"]
    usable = train["has"].copy()
    for group in _groups(train["full"], smallest=2):
        if len(group) > 1:
            add(Issue("duplicate", f"{len(group)} identical examples", file, [int(x) for x in lines[group]]))
            usable[group[1:]] = False  # one of each exact group takes part in the near search
    threshold = options.near_duplicate_threshold
    signatures = train["signatures"]
    keys = similar.band_keys(signatures, threshold)
    pairs = similar.candidate_pairs(keys, usable, signatures, threshold - LIKELY_MARGIN)
    rows = fetch({int(k) for k in np.unique(pairs)})
    order = sorted(rows)
    sets = dict(zip(order, similar.shingle_sets([rows[k].prompt + "\n" + rows[k].answer for k in order]), strict=True))
    close_to: dict[int, list[int]] = defaultdict(list)
    for i, j in similar.confirmed(map(tuple, pairs.tolist()), sets, options.near_duplicate_threshold):
        close_to[j].append(i)
    seen: set[int] = set()
    for j in sorted(close_to):
        close = [int(lines[i]) for i in sorted(close_to[j]) if int(lines[i]) not in seen]
        if close:
            found = sorted([*close, int(lines[j])])
            seen.update(found)
            add(Issue("near_duplicate", f"{len(found)} examples at least {options.near_duplicate_threshold:.0%} "
                      "alike (MinHash of word 3-grams)", file, found))  # fmt: skip


def _conflicts(train: dict[str, np.ndarray], file: str, add: Callable[[Issue], None]) -> None:
    for group in _groups(train["prompt"], smallest=2):
        answers = np.unique(train["answer"][group])
        if len(answers) > 1:
            lines = sorted(int(x) for x in train["line"][group])
            add(Issue("conflict", f"the same prompt with {len(answers)} different answers", file, lines))


def _answers(
    train: dict[str, np.ndarray],
    cut: list[int],
    fetch: Fetch,
    file: str,
    options: CheckOptions,
    add: Callable[[Issue], None],
) -> None:
    lines, answered = train["line"], np.flatnonzero(train["answered"])
    empty = [int(x) for x in lines[~train["answered"]]]
    if empty:
        add(Issue("empty_answer", f"{len(empty)} examples whose answer is empty or whitespace", file, empty))
    if cut:
        add(Issue("cut_answer", f"{len(cut)} examples longer than the {options.token_limit:,}-token limit: their "
                  "answers are cut in training", file, cut))  # fmt: skip
    labels = len(np.unique(train["answer"][answered]))
    class_like = len(answered) >= 20 and labels <= CLASS_LIKE_MAX_LABELS and bool(train["short"][answered].all())
    if class_like:
        groups = [answered[g] for g in _groups(train["answer"][answered])]
        sizes = sorted(((len(g), int(g[0])) for g in groups), key=lambda s: (-s[0], s[1]))
        if len(sizes) > 1 and sizes[-1][0] * 10 < sizes[0][0]:
            named = fetch({first for _, first in sizes})
            shown = ", ".join(f"{_normal(named[first].answer)!r}: {n}" for n, first in sizes)
            rarest = next(g for g in groups if int(g[0]) == sizes[-1][1])
            add(Issue("label_imbalance", f"answers look like classes and are unbalanced ({shown}): the rarest is "
                      "under a tenth of the commonest", file, sorted(int(x) for x in lines[rarest])))  # fmt: skip
    else:
        floor = max(REPEATED_ANSWER_MIN, len(answered) // 20)
        groups = [answered[g] for g in _groups(train["answer"][answered], smallest=floor)]
        flagged = [g for g in groups if len(np.unique(train["prompt"][g])) >= floor]
        named = fetch({int(g[0]) for g in flagged})
        for group in flagged:
            answer = _normal(named[int(group[0])].answer)
            add(Issue("repeated_answer", f"one answer ({answer[:40]!r}) for {len(np.unique(train['prompt'][group]))} "
                      "different prompts", file, sorted(int(x) for x in lines[group])))  # fmt: skip
    parsed = train["json"][answered]
    if len(answered) >= 10 and parsed.sum() >= FORM_MAJORITY * len(answered) and not parsed.all():
        odd = [int(x) for x in lines[answered[~parsed]]]
        add(Issue("answer_form", f"{int(parsed.sum())} of {len(answered)} answers are JSON; these {len(odd)} do not "
                  "parse", file, odd))  # fmt: skip


def _is_json(text: str) -> bool:
    text = text.strip()
    if not text or text[0] not in "[{":
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _sensitive(found: dict[str, list[int]], file: str, add: Callable[[Issue], None]) -> None:
    for code in sensitive.DETECTORS:
        lines = found.get(code, [])
        if lines:
            where = sorted(set(lines))
            add(Issue(code, f"{len(lines)} {sensitive.WHAT[code]} in {len(where)} examples", file, where))


def _leaks(
    train: dict[str, np.ndarray],
    held: dict[str, np.ndarray],
    fetch: Fetch,
    fetch_held: Fetch,
    file: str,
    eval_file: str,
    options: CheckOptions,
    add: Callable[[Issue], None],
) -> None:
    """Eval examples also in the training data, exactly or nearly: they inflate every score."""
    last_with = dict(zip(train["prompt"].tolist(), train["line"].tolist(), strict=True))
    exact = [
        (int(e), last_with[p]) for e, p in zip(held["line"], held["prompt"].tolist(), strict=True) if p in last_with
    ]
    if exact:
        add(Issue("eval_leak", f"{len(exact)} eval prompts also in the training data", file,
                  sorted({t for _, t in exact}), eval_file, sorted(e for e, _ in exact)))  # fmt: skip
    leaked = np.isin(held["prompt"], train["prompt"])
    threshold = options.near_duplicate_threshold
    mine_signatures, their_signatures = held["prompt_signatures"], train["prompt_signatures"]
    pairs = similar.cross_pairs(similar.band_keys(mine_signatures, threshold), held["prompt_has"] & ~leaked,
                                similar.band_keys(their_signatures, threshold), train["prompt_has"])  # fmt: skip
    likely = similar.estimate(mine_signatures[pairs[:, 0]], their_signatures[pairs[:, 1]]) >= threshold - LIKELY_MARGIN
    pairs = pairs[likely]
    if not len(pairs):
        return
    mine, theirs = fetch_held({int(k) for k in pairs[:, 0]}), fetch({int(k) for k in pairs[:, 1]})
    mine_sets = dict(zip(mine, similar.shingle_sets([r.prompt for r in mine.values()]), strict=True))
    their_sets = dict(zip(theirs, similar.shingle_sets([r.prompt for r in theirs.values()]), strict=True))
    near = [
        (int(held["line"][e]), int(train["line"][t]))
        for e, t in pairs.tolist()
        if similar.jaccard(mine_sets[e], their_sets[t]) >= options.near_duplicate_threshold
    ]
    if near:
        add(Issue("eval_near_leak", f"{len({e for e, _ in near})} eval prompts at least "
                  f"{options.near_duplicate_threshold:.0%} alike to training prompts", file,
                  sorted({t for _, t in near}), eval_file, sorted({e for e, _ in near})))  # fmt: skip


def strict_errors(report: CheckReport, strict: Sequence[str]) -> list[Issue]:
    """The findings a job file's `check.strict` makes errors (`sensitive` stands for every sensitive_* code)."""
    wanted = set(strict)
    return [i for i in report.issues if i.code in wanted or ("sensitive" in wanted and i.code.startswith("sensitive_"))]

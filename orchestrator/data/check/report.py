"""What `fto data check` found: findings and the report that holds them (plain data, light to import)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


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

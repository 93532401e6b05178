"""`score_model` and `label_model` graders: a model reads the rendered messages and answers with a number or a
label, through any backend that can judge (the same path as eval.judge), its answers cached and priced."""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fto.backends.base import GenerationParams
from fto.orchestrator.eval.usage import call_cost
from fto.orchestrator.store import Store
from fto.schemas import Completion, Message
from fto.schemas.graders import LabelModelGrader, ScoreModelGrader

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
CONCURRENCY = 8


class ModelGrading:
    """Asks a grader's model, caching each answer in the store like generations."""

    def __init__(self, grader: ScoreModelGrader | LabelModelGrader, store: Store | None) -> None:
        self.grader, self.store = grader, store
        self._backend: Any = None
        self.cost_usd = 0.0

    def _ask(self, messages: list[Message]) -> Completion:
        if self._backend is None:
            from fto.backends import registry

            cls = registry.backend_class(self.grader.provider, field=f"graders.{self.grader.name}.provider")
            self._backend = cls.for_judge(self.grader.provider, self.grader.model, self.grader.base_url)
        return self._backend.complete(
            self.grader.model, messages, GenerationParams(max_new_tokens=self.grader.max_tokens)
        )

    def answers(self, conversations: list[list[Message]]) -> list[str]:
        """The model's reply to each conversation (cached ones reused)."""
        keys = [hashlib.sha256(json.dumps(["grader", self.grader.provider, self.grader.model,
                                            [m.model_dump() for m in c]]).encode()).hexdigest()
                for c in conversations]  # fmt: skip
        known = self.store.cached_generations(keys) if self.store else {}
        missing = [i for i, k in enumerate(keys) if k not in known]
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            replies = list(pool.map(self._ask, [conversations[i] for i in missing]))
        for reply in replies:
            self.cost_usd += call_cost(self.grader.provider, self.grader.model, reply) or 0.0
        if self.store:
            self.store.save_generations([(keys[i], r) for i, r in zip(missing, replies, strict=True)])
        known.update((keys[i], r) for i, r in zip(missing, replies, strict=True))
        return [known[k].text for k in keys]


def read_score(grader: ScoreModelGrader, reply: str) -> tuple[float | None, str | None]:
    """The reply's last number, which must lie in the grader's range."""
    found = _NUMBER.findall(reply)
    if not found:
        return None, f"the grader model gave no number: {reply[:80]!r}"
    value = float(found[-1])
    low, high = grader.range
    if not low <= value <= high:
        return None, f"the grader model's number {value:g} is outside its range [{low:g}, {high:g}]"
    return value, None


def read_label(grader: LabelModelGrader, reply: str) -> tuple[float | None, str | None]:
    """1 when the reply's label (the last of the grader's labels it names) is a passing one."""
    text = reply.lower()
    named = [(m.start(), label) for label in grader.labels
             for m in re.finditer(rf"(?<!\w){re.escape(label.lower())}(?!\w)", text)]  # fmt: skip
    if not named:
        return None, f"the grader model named none of {grader.labels}: {reply[:80]!r}"
    label = max(named)[1]
    return float(label in grader.passing_labels), None

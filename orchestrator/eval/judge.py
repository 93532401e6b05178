"""LLM-as-judge: a pointwise score against a rubric, and pairwise verdicts between two answers.

The judge is any installed backend that can act as one (`Backend.for_judge`), called through that backend's own
client; its key comes from the environment. Prompts and raw verdicts are kept next to the scores, and verdicts are
cached like generations, so a re-run asks the judge nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fto.backends.base import GenerationParams
from fto.orchestrator.store import Store
from fto.schemas import Completion, JudgeSpec, Message

SYSTEM = "You are a careful, impartial judge of answers written by AI assistants."
POINTWISE = (
    "{rubric}\n\n[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Answer to rate]\n{answer}\n\n"
    'Explain briefly, then give a rating from 1 to 10 in exactly this form: "Rating: [[5]]".'
)
PAIRWISE = (
    "{rubric}\n\n[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\n"
    'Explain briefly, then give your verdict in exactly this form: "[[A]]" if A is better, "[[B]]" if B is better, '
    '"[[C]]" for a tie.'
)
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_VERDICT = re.compile(r"\[\[([ABC])\]\]")


class Judge:
    """Asks the judge model of an `eval.judge` section for ratings and pairwise verdicts."""

    def __init__(self, spec: JudgeSpec, store: Store):
        self.spec, self.store = spec, store
        self._backend: Any = None

    def _ask(self, prompt: str) -> Completion:
        """One verdict, through the provider's own backend (the same client code as every other call)."""
        if self._backend is None:
            from fto.backends import registry

            backend = registry.backend_class(self.spec.provider, field="eval.judge.provider")
            self._backend = backend.for_judge(self.spec.provider, self.spec.model, self.spec.base_url)
        messages = [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]
        return self._backend.complete(self.spec.model, messages, GenerationParams(max_new_tokens=512))

    def _map(self, prompts: list[str]) -> list[str]:
        """Verdicts for prompts: cached ones reused, the rest asked concurrently, then stored (from this thread)."""
        keys = [
            hashlib.sha256(json.dumps(["judge", self.spec.provider, self.spec.model, p]).encode()).hexdigest()
            for p in prompts
        ]
        known = self.store.cached_generations(keys)
        missing = [i for i, k in enumerate(keys) if k not in known]
        with ThreadPoolExecutor(max_workers=self.spec.max_concurrency) as pool:
            replies = list(pool.map(self._ask, [prompts[i] for i in missing]))
        self.store.save_generations([(keys[i], reply) for i, reply in zip(missing, replies, strict=True)])
        known.update((keys[i], reply) for i, reply in zip(missing, replies, strict=True))
        return [known[k].text for k in keys]

    def rate(self, items: list[tuple[str, str, str]]) -> list[tuple[float, str, str]]:
        """(question, reference, answer) → (score in [0, 1], prompt, raw verdict); an unreadable verdict scores 0."""
        prompts = [POINTWISE.format(rubric=self.spec.rubric, question=q, reference=r, answer=a) for q, r, a in items]
        out = []
        for prompt, raw in zip(prompts, self._map(prompts), strict=True):
            found = _RATING.findall(raw)
            score = (min(10.0, max(1.0, float(found[-1]))) - 1) / 9 if found else 0.0
            out.append((score, prompt, raw))
        return out

    def compare(self, items: list[tuple[str, str, str, str]]) -> list[tuple[float, str, str]]:
        """(question, reference, a, b) → (1 if B wins, 0.5 tie, 0 if A wins; prompt; raw verdict).

        Each pair is judged twice with the answers swapped, so the judge's bias for a position cancels out.
        """
        forward = [PAIRWISE.format(rubric=self.spec.rubric, question=q, reference=r, a=a, b=b) for q, r, a, b in items]
        swapped = [PAIRWISE.format(rubric=self.spec.rubric, question=q, reference=r, a=b, b=a) for q, r, a, b in items]
        verdicts = self._map(forward + swapped)
        out = []
        for i, prompt in enumerate(forward):
            first, second = _win(verdicts[i], b_is="B"), _win(verdicts[len(items) + i], b_is="A")
            out.append(((first + second) / 2, prompt, verdicts[i] + "\n---\n" + verdicts[len(items) + i]))
        return out


def question_text(messages: list[Any]) -> str:
    """The conversation so far, as the judge reads it."""
    return "\n".join(f"{m.role}: {m.content or ''}" for m in messages)


def _win(raw: str, b_is: str) -> float:
    found = _VERDICT.findall(raw)
    if not found or found[-1] == "C":
        return 0.5
    return 1.0 if found[-1] == b_is else 0.0

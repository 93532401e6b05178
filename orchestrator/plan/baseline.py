"""`fto plan --baseline`: the job's eval set scored on each candidate base model before any training, so the user
sees which base starts highest and how much room fine-tuning has.

The eval set is the one `fto run` would hold out (the same split, seed and scorers); each candidate answers through
its backend (hosted inference or local generation) as in `fto eval`, and the scores carry 95% intervals. What the
answers would cost is quoted first (provider.json's inference prices), and the caller asks before spending.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fto.backends import registry
from fto.orchestrator.store import Store
from fto.schemas import Conversation, JobSpec
from fto.schemas.plan import Baseline, PlanRow
from fto.schemas.results import Score

PROMPT_CHARS_PER_TOKEN = 4  # the quote's token estimate of a prompt (the answer is counted at max_new_tokens)


def examples(spec: JobSpec) -> list[Conversation]:
    """The held-out examples `fto run` would evaluate on (at most eval.max_examples)."""
    from fto.orchestrator.data.load import load_splits

    assert spec.eval is not None
    return list(load_splits(spec).eval)[: spec.eval.max_examples or None]


def quote(spec: JobSpec, rows: list[PlanRow], held_out: list[Conversation]) -> list[tuple[PlanRow, float | None, str]]:
    """Each candidate with what scoring it would cost (None: no price known) and why it cannot be scored ("")."""
    assert spec.eval is not None
    prompt_tokens = sum(len(e.model_dump_json()) for e in held_out) / PROMPT_CHARS_PER_TOKEN
    answer_tokens = len(held_out) * spec.eval.max_new_tokens
    found: list[tuple[PlanRow, float | None, str]] = []
    for row in rows:
        if row.model.startswith("embedded:"):
            found.append((row, 0.0, "built per job with random weights: its baseline is no better than chance"))
            continue
        price = registry.backend_class(row.backend).inference_price(row.model)
        cost = None if price is None else (prompt_tokens * price[0] + answer_tokens * price[1]) / 1e6
        found.append((row, 0.0 if not row.hosted else cost, ""))
    return found


def score(spec: JobSpec, candidates: list[PlanRow], held_out: list[Conversation], store: Store) -> list[Baseline]:
    """The candidates on the held-out examples, best first by the first scorer (with its 95% interval)."""
    from fto.orchestrator.api.experiments import evaluate_file
    from fto.orchestrator.experiment_files import rows_text

    assert spec.eval is not None
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "held-out.jsonl"
        data.write_text(rows_text(held_out))
        targets = [f"{row.backend}:{row.model}" for row in candidates]
        compared = evaluate_file(data, targets, scorers=list(spec.eval.scorers), max_examples=len(held_out),
                                 store=store)  # fmt: skip
    by_target = {(m.target.section, m.target.model): m for m in compared.models}
    scored = []
    for row in candidates:
        result = by_target.get((row.backend, row.model))
        if result is None:
            continue
        scored.append(Baseline(backend=row.backend, model=row.model, examples=result.examples,
                               scores={k: Score(value=v.value, low=v.low, high=v.high)
                                       for k, v in result.scores.items()},
                               experiment=compared.experiment.id))  # fmt: skip
    first = spec.eval.scorers[0] if spec.eval.scorers else None
    return sorted(scored, key=lambda b: -(b.scores[first].value if first and first in b.scores else 0.0))

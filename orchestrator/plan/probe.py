"""`fto plan --probe`: tokens per second measured from a few real training steps on this machine, for the
backends that train here (local), where the store has no past jobs to learn from or the user wants a fresh figure.

The steps are local jobs' steps (fto.loop on the local trainer: the same packed rows, attention per example and
precision, within 5% of the trainer's tokens/s; docs/benchmarks.md) on the job's own first examples, at its batch
size; the first step warms up and is not counted. Nothing is kept: the probe's adapter is thrown away.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from fto.orchestrator.data.load import read_dataset
from fto.schemas import Conversation, JobSpec, Message, PreferencePair
from fto.schemas.plan import PlanRow, Throughput

STEPS = 3  # timed steps, after one to warm up
AUTO_BATCH = 8


def probe(spec: JobSpec, row: PlanRow) -> Throughput:
    """Tokens/s of `row`'s model trained on the job's first examples: median of the timed steps, their spread."""
    from fto import loop
    from fto.backends.local.loop import LocalLoop, base_folder

    batch = spec.hyperparameters.batch_size if isinstance(spec.hyperparameters.batch_size, int) else AUTO_BATCH
    rows = read_dataset(spec.data.train, spec.data.format, spec.data.mapping, spec.method)[: batch * (STEPS + 1)]
    with tempfile.TemporaryDirectory() as scratch:
        folder, embedded = base_folder(row.model, Path(scratch))
        trainer = LocalLoop(folder, embedded=embedded, rank=spec.hyperparameters.lora.r, seed=spec.seed,
                            state_root=Path(scratch) / "states")  # fmt: skip
        examples = [loop.chat_datum(trainer.tokenizer, [m.model_dump(exclude_none=True) for m in _messages(r)])
                    for r in rows]  # fmt: skip
        rates = []
        for step in range(STEPS + 1):
            part = examples[(step * batch) % len(examples) :][:batch] or examples[:batch]
            started = time.perf_counter()
            loop.sft_step(trainer, part, 1e-4)
            if step:
                rates.append(sum(len(d.tokens) + 1 for d in part) / (time.perf_counter() - started))
    return Throughput(
        tokens_per_second=round(statistics.median(rates), 1),
        low=round(min(rates), 1),
        high=round(max(rates), 1),
        jobs=0,
        basis=f"probe: {STEPS} steps of {batch} on this machine",
    )


def _messages(record: Conversation | PreferencePair) -> list[Message]:
    """A conversation's messages; a preference pair's prompt and chosen answer (what DPO's forward reads)."""
    if isinstance(record, Conversation):
        return list(record.messages)
    return [*record.prompt, *record.chosen]

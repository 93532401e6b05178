"""A learning curve: one job per fraction of the training data (nested subsets, the same seed) for each chosen
backend, in one experiment, so the report can say whether more data would still help.

`fto run job.yaml --learning-curve 0.25,0.5,1` turns each backend section NAME into sections `NAME@0.25`,
`NAME@0.5`, `NAME@1` of the same backend, and records which fraction each trains on in the job's `fractions`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from fto.orchestrator.config import LoadedJob
from fto.orchestrator.errors import ConfigError
from fto.schemas import BackendSection, Record


def parse_fractions(text: str) -> list[float]:
    """`0.25,0.5,1` → [0.25, 0.5, 1.0]: distinct, each in (0, 1], in increasing order."""
    try:
        fractions = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(
            f"--learning-curve {text!r}: fractions such as 0.25,0.5,1", field="--learning-curve"
        ) from None
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ConfigError(f"--learning-curve {text!r}: each fraction in (0, 1]", field="--learning-curve")
    return fractions


def expand(loaded: LoadedJob, fractions: list[float]) -> LoadedJob:
    """The job with one section per (backend, fraction), each recording its fraction."""
    sections: dict[str, BackendSection] = {}
    chosen: list[str] = []
    given: dict[str, float] = {}
    for name in loaded.backends:
        section = loaded.spec.backends.get(name) or BackendSection()
        data: dict[str, Any] = {**section.model_dump(exclude_none=True), "type": section.type or name}
        for fraction in fractions:
            label = f"{name}@{fraction:g}"
            sections[label] = BackendSection.model_validate(data)
            chosen.append(label)
            given[label] = fraction
    spec = loaded.spec.model_copy(update={"backends": {**loaded.spec.backends, **sections}, "fractions": given})
    return replace(loaded, spec=spec, backends=chosen)


def subset(train: list[Record], fraction: float | None, seed: int) -> list[Record]:
    """The first `fraction` of a seeded shuffle of `train`: a larger fraction holds every smaller one."""
    if fraction is None or fraction >= 1:
        return train
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    keep = sorted(order[: max(1, round(len(train) * fraction))])
    return [train[i] for i in keep]

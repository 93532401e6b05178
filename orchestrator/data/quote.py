"""A provider's own price for training on a file (`fto data stats --for NAME --quote`): the file is prepared and
uploaded as a job would upload it, then the backend asks its provider. Providers that quote no price say so."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fto.backends import registry
from fto.orchestrator import retry
from fto.orchestrator.data.load import read_dataset
from fto.schemas import BackendSection, JobSpec


def provider_quote(
    path: str, target: str, model: str | None, epochs: int | None, fmt: str, mapping: dict[str, Any] | None
) -> str | None:
    """The provider's quote as one line, or None when this provider quotes no price before a job."""
    records = read_dataset(path, fmt, mapping)
    spec = JobSpec.model_validate(
        {
            "name": "quote",
            "data": {"train": path, "validation": None, "format": fmt},
            "hyperparameters": {"epochs": epochs or "auto"},
            "eval": None,
        }
    )
    backend = registry.create(target, BackendSection.model_validate({"model": model} if model else {}))
    backend.check(spec)
    with tempfile.TemporaryDirectory(prefix="fto-quote-") as folder:
        prepared = backend.prepare(spec, records, [], Path(folder))
        uploaded = retry.call(lambda: backend.upload(prepared))
        return retry.call(lambda: backend.price_quote(spec, uploaded))

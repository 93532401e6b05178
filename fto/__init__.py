"""fto, the fine-tuning orchestrator, from Python: the same jobs, backends, store and reports as the `fto` CLI.

    import fto

    spec = fto.JobSpec.from_file("examples/quickstart.yaml")
    experiment = fto.submit(spec, backends=["local"])
    experiment.wait(progress=True)
    comparison = experiment.evaluate()

The names below are the public API (docs/python.md; changes are listed in CHANGELOG.md); everything under
fto.orchestrator, fto.backends and fto.schemas is internal. They load on first use, so `import fto` (and the CLI)
stays quick.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fto.orchestrator.api import data
    from fto.orchestrator.api.experiments import (
        DataCheckWarning,
        Experiment,
        Job,
        evaluate_file,
        experiment,
        experiments,
        job,
        submit,
    )
    from fto.orchestrator.api.results import Comparison, Metrics
    from fto.orchestrator.api.spec import JobSpec
    from fto.orchestrator.errors import ConfigError, DataError, FtoError
    from fto.schemas.job import JobStatus
    from fto.schemas.results import ComparisonKind, ExperimentResults, ModelResult, ModelRole, PairedTest, Target

__version__ = "0.1.0"
__all__ = [
    "Comparison",
    "ComparisonKind",
    "ConfigError",
    "DataCheckWarning",
    "DataError",
    "Experiment",
    "ExperimentResults",
    "FtoError",
    "Job",
    "JobSpec",
    "JobStatus",
    "Metrics",
    "ModelResult",
    "ModelRole",
    "PairedTest",
    "Target",
    "data",
    "evaluate_file",
    "experiment",
    "experiments",
    "job",
    "submit",
]

_WHERE = {
    "data": "fto.orchestrator.api.data",
    "DataCheckWarning": "fto.orchestrator.api.experiments",
    "Experiment": "fto.orchestrator.api.experiments",
    "Job": "fto.orchestrator.api.experiments",
    "evaluate_file": "fto.orchestrator.api.experiments",
    "experiment": "fto.orchestrator.api.experiments",
    "experiments": "fto.orchestrator.api.experiments",
    "job": "fto.orchestrator.api.experiments",
    "submit": "fto.orchestrator.api.experiments",
    "Comparison": "fto.orchestrator.api.results",
    "Metrics": "fto.orchestrator.api.results",
    "JobSpec": "fto.orchestrator.api.spec",
    "ConfigError": "fto.orchestrator.errors",
    "DataError": "fto.orchestrator.errors",
    "FtoError": "fto.orchestrator.errors",
    "JobStatus": "fto.schemas.job",
    "ComparisonKind": "fto.schemas.results",
    "ExperimentResults": "fto.schemas.results",
    "ModelResult": "fto.schemas.results",
    "ModelRole": "fto.schemas.results",
    "PairedTest": "fto.schemas.results",
    "Target": "fto.schemas.results",
}


def __getattr__(name: str) -> Any:
    """Each public name is imported when first used."""
    if name not in _WHERE:
        raise AttributeError(f"module 'fto' has no attribute {name!r}")
    module = import_module(_WHERE[name])
    value = module if name == "data" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

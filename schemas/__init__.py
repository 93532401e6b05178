"""Pure data shared by every stage: the job file, job records, canonical dataset records. No I/O.

Each name loads its module on first use (PEP 562), so a data command that needs only the dataset records does not
build the job file's models at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fto.schemas.job import (
        Checkpoint,
        Completion,
        Experiment,
        Job,
        JobEvent,
        JobListing,
        JobStatus,
        ListedJob,
        Metric,
        ProviderJob,
        ProviderUpdates,
    )
    from fto.schemas.job_spec import (
        BackendSection,
        DataSpec,
        EvalSpec,
        Hyperparameters,
        JobSpec,
        JudgeSpec,
        LoraSpec,
        RftSpec,
    )
    from fto.schemas.records import Conversation, Message, PreferencePair, Record, Tool, ToolCall

_MODULES = {
    "job": ["Checkpoint", "Completion", "Experiment", "Job", "JobEvent", "JobListing", "JobStatus", "ListedJob",
            "Metric", "ProviderJob", "ProviderUpdates"],
    "job_spec": ["BackendSection", "DataSpec", "EvalSpec", "Hyperparameters", "JobSpec", "JudgeSpec", "LoraSpec",
                 "RftSpec"],
    "records": ["Conversation", "Message", "PreferencePair", "Record", "Tool", "ToolCall"],
}  # fmt: skip
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "BackendSection",
    "Checkpoint",
    "Completion",
    "Conversation",
    "DataSpec",
    "EvalSpec",
    "Experiment",
    "Hyperparameters",
    "Job",
    "JobEvent",
    "JobListing",
    "JobSpec",
    "JobStatus",
    "JudgeSpec",
    "ListedJob",
    "LoraSpec",
    "Message",
    "Metric",
    "PreferencePair",
    "ProviderJob",
    "ProviderUpdates",
    "Record",
    "RftSpec",
    "Tool",
    "ToolCall",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fto.schemas' has no attribute {name!r}")
    value = getattr(import_module(f"fto.schemas.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return __all__

"""Pure data shared by every stage: the job file, job records, canonical dataset records. No I/O."""

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
)
from fto.schemas.records import Conversation, Message, PreferencePair, Record, Tool, ToolCall

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
    "Tool",
    "ToolCall",
]

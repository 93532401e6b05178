"""Job records as the store keeps them, and what a backend reports about a provider's job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from fto.schemas.job_spec import JobSpec


class JobStatus(StrEnum):
    """The one status enum every backend maps its provider's statuses into."""

    PENDING = "pending"  # recorded in the store, not yet accepted by the provider
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"  # a cancel was asked; the provider has not stopped the job yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled): no status follows."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(BaseModel):
    """One fine-tuning job of an experiment, on one backend, as the store keeps it."""

    id: str
    experiment_id: str
    backend: str
    provider_job_id: str | None = None
    status: JobStatus = JobStatus.PENDING
    base_model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class Experiment(BaseModel):
    """One job file submitted once: one job per chosen backend."""

    id: str
    name: str
    spec: JobSpec
    spec_path: str | None = None
    created_at: datetime


class JobEvent(BaseModel):
    """Something that happened to a job, as the provider or fto reported it."""

    created_at: datetime
    level: Literal["info", "warning", "error"] = "info"
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class Metric(BaseModel):
    """Training progress at one step."""

    step: int
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    valid_loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    reward_accuracy: float | None = Field(default=None, description="DPO: pairs whose chosen reply wins")
    reward: float | None = Field(default=None, description="RFT: mean reward of the step's sampled answers")
    reward_std: float | None = Field(default=None, description="RFT: spread of those rewards")
    reward_parts: dict[str, float] | None = Field(default=None, description="RFT: a multi grader's parts, each mean")
    kl: float | None = Field(default=None, description="RFT: KL divergence from the base model, per answer token")
    completion_tokens: float | None = Field(default=None, description="RFT: mean length of the sampled answers")
    grader_errors: int | None = Field(default=None, description="RFT: answers the grader could not score")
    valid_reward: float | None = Field(default=None, description="RFT: mean reward on the validation prompts")
    created_at: datetime | None = None


class Checkpoint(BaseModel):
    """A saved point of a job's training that can be queried or resumed from."""

    step: int
    model: str = Field(description="what complete() accepts to query this checkpoint")
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: datetime | None = None


class ProviderJob(BaseModel):
    """A provider's view of a job, converted at the backend's edge into our terms."""

    status: JobStatus
    base_model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None


class Completion(BaseModel):
    """One model reply, with what it cost: tokens as the provider counted them, and seconds of wall time."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None


class ProviderUpdates(BaseModel):
    """What happened to a job since a cursor: new events, metrics and checkpoints, and the next cursor."""

    events: list[JobEvent] = Field(default_factory=list)
    metrics: list[Metric] = Field(default_factory=list)
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    cursor: str | None = None


class ListedJob(BaseModel):
    """A job as a provider's list endpoint shows it: its state, and the provider's stamp of its last change."""

    state: ProviderJob
    changed: str | None = None  # None: the list cannot tell whether new events or metrics came
    updates: ProviderUpdates | None = None  # its news after the poller's cursor, where the list carries them


class JobListing(BaseModel):
    """One page of a provider's list of jobs: a batch poll's answer."""

    jobs: dict[str, ListedJob] = Field(default_factory=dict)  # by the provider's job id
    next_page: str | None = None  # pass back for the next page; None: the last one
    as_of: str | None = None  # the provider's clock at this answer: pass it back as `changed_since` next time

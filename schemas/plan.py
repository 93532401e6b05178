"""What `fto plan` answers, per backend and base model: cost, time, memory, what blocks it. Pure data."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fto.schemas.results import Score


class Throughput(BaseModel):
    """Tokens per second of past jobs on a backend and base model (median, quartiles, how many jobs), or of a few
    steps measured now (`--probe`: jobs 0)."""

    tokens_per_second: float
    low: float
    high: float
    jobs: int
    basis: str = Field(default="past jobs in the store", description="where the figure comes from")


class MemoryPlan(BaseModel):
    """Memory local training needs on a device, by what holds it (GiB), and the largest micro-batch that fits."""

    device: str
    device_gib: float
    tuning: str
    micro_batch_tokens: int
    params: int
    needed_gib: dict[str, float]
    fits: bool
    largest_micro_batch_tokens: int


class PlanRow(BaseModel):
    """One backend and base model."""

    backend: str
    model: str
    label: str
    hosted: bool = True
    examples: int = 0
    charged_tokens: int = 0
    epochs: int = 0
    cost_usd: float | None = None
    cost_basis: str = ""
    hosting_usd_per_hour: float | None = None
    throughput: Throughput | None = None
    expected_hours: float | None = None
    blocked: list[str] = Field(default_factory=list, description="what would refuse the job")
    warnings: list[str] = Field(default_factory=list)
    memory: MemoryPlan | None = None


class Recommendation(BaseModel):
    """cheapest, fastest, best baseline or fits: which row, and why."""

    kind: str
    backend: str
    model: str
    why: str


class Baseline(BaseModel):
    """`--baseline`: a candidate base model scored on the job's eval set before any training."""

    backend: str
    model: str
    examples: int
    scores: dict[str, Score] = Field(description="scorer → value with its 95% interval")
    experiment: str = Field(description="the eval-only experiment holding its answers (`fto compare EXP`)")


class Plan(BaseModel):
    """`fto plan --json`."""

    rows: list[PlanRow]
    recommendations: list[Recommendation]
    baseline: list[Baseline] = Field(default_factory=list, description="--baseline: best first")

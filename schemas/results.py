"""An experiment's results as one typed record: the models evaluated, their scores with intervals, the paired
tests between them, cost and time, learning curves, sweeps, the generalisation gap, overfitting and the data check.

`fto compare --json` prints it, `fto schema --results` prints its JSON Schema, and the terminal table, report.md,
report.html, the dashboard and the notebook all render this one object.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fto.schemas.job import JobStatus


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelRole(StrEnum):
    """What an evaluated model is, relative to the experiment."""

    BASE = "base"  # the model a job started from
    FINE_TUNED = "fine_tuned"  # a job's result
    CHECKPOINT = "checkpoint"  # a job's result at an earlier step, or a job of another experiment (`job:ID`)
    EXTERNAL = "external"  # any other model named on the command line (`BACKEND:MODEL`)


class ComparisonKind(StrEnum):
    """Which pair a paired test compares."""

    BASE = "base"  # a fine-tuned model against its own base
    BETWEEN = "between"  # two fine-tuned models (local against a hosted one, sweep or learning-curve points)


class Target(_Record):
    """A model to evaluate, addressed the same way whatever the backend: never parsed out of its label."""

    label: str = Field(description="how reports name it, and the key its results are kept under")
    section: str = Field(description="the backend section of the job file (or a registered backend's name)")
    role: ModelRole
    model: str = Field(description="the model id the backend generates with")
    job: str | None = Field(default=None, description="the job it came from, if any")
    base_model: str | None = Field(default=None, description="what a fine-tuned model was tuned from")


class Score(_Record):
    """One scorer's value with its 95% bootstrap interval (None where it cannot be resampled)."""

    value: float
    low: float | None = None
    high: float | None = None


class Usage(_Record):
    """The eval's calls to one model: tokens as the provider counted them, dollars, latency (None: unknown)."""

    calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_mean_s: float | None = None
    latency_p50_s: float | None = None


class ExampleResult(_Record):
    """One model's answer to one held-out example, as the eval records it (per model, in the store)."""

    # a score this backend cannot compute is NaN, kept as NaN (not null) through the stored JSON
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    line: int | None = Field(default=None, description="the example's line in its file")
    prompt: str = Field(default="", description="the conversation so far, as text")
    reference: str | None = None
    output: str
    scores: dict[str, float] = Field(description="each scorer's and grader's value")
    grader_errors: dict[str, str] = Field(default_factory=dict, description="why a grader gave no value (scored 0)")
    input_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None
    cost_usd: float | None = None


class ModelResult(_Record):
    """One evaluated model: its scores on the held-out examples, what its eval cost, and what its training cost."""

    target: Target
    examples: int
    scores: dict[str, Score] = Field(description="scorer → score, in the job file's order")
    usage: Usage | None = None
    training_hours: float | None = Field(default=None, description="wall-clock hours of its job, submit to end")
    training_cost_usd: float | None = Field(default=None, description="trained tokens at the provider's price")
    quality_per_dollar: float | None = Field(default=None, description="first higher-is-better score per training USD")
    quality_per_hour: float | None = Field(default=None, description="first higher-is-better score per training hour")

    @property
    def label(self) -> str:
        """The model's name in reports."""
        return self.target.label

    def value(self, scorer: str) -> float | None:
        """A scorer's value, None where this model was not scored on it."""
        found = self.scores.get(scorer)
        return found.value if found else None


class JobResult(_Record):
    """One job of the experiment, as the report lists it."""

    job: str
    backend: str
    status: JobStatus
    base_model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None
    final_loss: float | None = None
    final_valid_loss: float | None = None
    minutes: float | None = None


class PairedTest(_Record):
    """Model b against model a on the same examples, for one scorer."""

    a: Target
    b: Target
    kind: ComparisonKind
    scorer: str
    difference: float = Field(description="mean of b − a per example")
    interval: tuple[float, float] = Field(description="95% bootstrap interval of the difference")
    p_value: float = Field(description="two-sided paired permutation (sign-flip) test")
    p_holm: float = Field(description="Holm-adjusted within the scorer's family of tests")
    significant: bool = Field(description="the interval excludes 0 and the Holm-adjusted p-value is below 0.05")
    wins: int = Field(description="examples where b scored better than a")
    losses: int = Field(description="examples where b scored worse than a")
    ties: int
    lower_is_better: bool
    text: str = Field(description="the test in one line")


class RankEntry(_Record):
    """A model's place on the first scorer, with its interval and whether the best is significantly better."""

    rank: int
    target: Target
    scorer: str
    score: Score
    behind_best: bool = Field(description="a paired test finds the best model significantly better than this one")


class CurvePoint(_Record):
    """One point of a learning curve: the fraction of the data, its examples, the score and its interval."""

    fraction: float
    examples: int | None
    score: float
    interval: tuple[float | None, float | None]


class LearningCurve(_Record):
    """Score against training examples, for one backend of a learning curve."""

    backend: str
    scorer: str
    points: list[CurvePoint]
    verdict: str


class VersusBest(_Record):
    """A sweep point against the best point on the same examples (b − a: this point minus the best)."""

    difference: float
    interval: tuple[float, float]
    p_value: float
    significant: bool


class SweepPoint(_Record):
    """One point of a sweep: its section, its hyperparameter values, its score, rank and test against the best."""

    section: str
    values: dict[str, Any]
    score: float
    interval: tuple[float | None, float | None]
    rank: int = 0
    versus_best: VersusBest | None = None


class SweepRanking(_Record):
    """A swept section's points ranked on the first scorer, each tested against the best."""

    backend: str
    scorer: str
    lower_is_better: bool
    parameters: list[str]
    points: list[SweepPoint]
    verdict: str


class GapScore(_Record):
    """One scorer's training-sample and held-out scores, their gap, and whether it is memorisation."""

    train: float
    held_out: float
    gap: float
    memorisation: bool


class Gap(_Record):
    """The generalisation gap of one fine-tuned model: its scores on a training sample against held-out ones."""

    examples: int
    scorers: dict[str, GapScore]


class OverfitFinding(_Record):
    """Validation loss rising while training loss falls."""

    best_step: int
    best_valid_loss: float
    last_step: int
    last_valid_loss: float
    train_loss_at_best: float | None
    last_train_loss: float | None
    text: str


class CheckFinding(_Record):
    """One finding of the data check: what, and where (training lines; eval lines for a leak)."""

    code: str
    message: str
    file: str
    lines: list[int] = Field(default_factory=list)
    eval_file: str | None = None
    eval_lines: list[int] = Field(default_factory=list)


class DataCheck(_Record):
    """The data check run at submission."""

    file: str
    examples: int
    eval_file: str | None = None
    eval_examples: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    issues: list[CheckFinding] = Field(default_factory=list)


class ExperimentResults(_Record):
    """Everything an experiment's comparison shows."""

    experiment: str
    name: str
    scorers: list[str]
    lower_is_better: dict[str, bool] = Field(default_factory=dict)
    models: list[ModelResult]
    jobs: list[JobResult]
    comparisons: list[PairedTest]
    ranking: list[RankEntry] = Field(default_factory=list)
    check: DataCheck | None = None
    learning_curve: list[LearningCurve] = Field(default_factory=list)
    sweep: list[SweepRanking] = Field(default_factory=list)
    generalisation_gap: dict[str, Gap] = Field(default_factory=dict, description="fine-tuned model's label → gap")
    overfitting: dict[str, OverfitFinding] = Field(default_factory=dict, description="job → finding")

    def model(self, label: str) -> ModelResult | None:
        """The model reports name `label`, if evaluated."""
        return next((m for m in self.models if m.target.label == label), None)

    def base_of(self, tuned: ModelResult) -> ModelResult | None:
        """The base model evaluated for a fine-tuned model's job, if any."""
        return next(
            (m for m in self.models if m.target.role == ModelRole.BASE and m.target.section == tuned.target.section),
            None,
        )


def results_json_schema() -> dict[str, Any]:
    """The JSON Schema of `fto compare --json`."""
    return ExperimentResults.model_json_schema()

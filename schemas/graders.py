"""Graders: one definition that scores an answer, as an eval metric and as a reinforcement fine-tuning reward.

Modelled on OpenAI's grader objects (the canonical form: `string_check`, `text_similarity`, `score_model`,
`label_model`, `python`, `multi`), with `{{ item.FIELD }}` (the dataset row) and `{{ sample.output_text }}` (the
model's answer) templating. A grader listed in `eval.scorers` is a metric; with `pass_threshold` it also gives a
pass rate (`NAME_pass`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GraderName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="how eval.scorers names it")]
SIMILARITY = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: GraderName
    pass_threshold: float | None = Field(default=None, description="a value at or above it passes")


class StringCheckGrader(_Grader):
    """Compares two rendered strings: 1 when the operation holds, else 0."""

    type: Literal["string_check"]
    input: str = Field(description="template, e.g. {{ sample.output_text }}")
    reference: str = Field(description="template, e.g. {{ item.answer }}")
    operation: Literal["eq", "ne", "like", "ilike"] = Field(
        description="eq/ne: equal or not; like: input contains reference; ilike: the same, ignoring case"
    )


class TextSimilarityGrader(_Grader):
    """How close two rendered strings are, in [0, 1]."""

    type: Literal["text_similarity"]
    input: str
    reference: str
    evaluation_metric: Literal[
        "fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l", "gleu", "meteor",
        "cosine",
    ]  # fmt: skip

    @model_validator(mode="after")
    def _supported(self) -> TextSimilarityGrader:
        if self.evaluation_metric not in SIMILARITY:
            raise ValueError(
                f"evaluation_metric {self.evaluation_metric!r} is a known grader metric, but fto does not compute "
                f"it yet (fto computes: {', '.join(SIMILARITY)})"
            )
        return self


class GraderMessage(BaseModel):
    """One message a model grader is sent; `content` is a template."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "developer"]
    content: str = Field(description="template")


class _ModelGrader(_Grader):
    provider: str = Field(description="the backend whose model answers (its key from the environment)")
    model: str
    base_url: str | None = None
    input: list[GraderMessage] = Field(min_length=1)
    max_tokens: int = Field(default=512, gt=0, le=32_768)


class ScoreModelGrader(_ModelGrader):
    """A model reads the rendered messages and answers with a number in `range` (its last number is taken)."""

    type: Literal["score_model"]
    range: tuple[float, float] = (0.0, 1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ScoreModelGrader:
        if self.range[0] >= self.range[1]:
            raise ValueError("range must be [low, high] with low < high")
        return self


class LabelModelGrader(_ModelGrader):
    """A model answers with one of `labels`; 1 when it is among `passing_labels`."""

    type: Literal["label_model"]
    labels: list[str] = Field(min_length=2)
    passing_labels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self) -> LabelModelGrader:
        unknown = set(self.passing_labels) - set(self.labels)
        if unknown:
            raise ValueError(f"passing_labels not among labels: {sorted(unknown)}")
        return self


class PythonGrader(_Grader):
    """`def grade(sample: dict, item: dict) -> float` in `source`, run in a sandboxed process (docs/graders.md)."""

    type: Literal["python"]
    source: str = Field(min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=600, description="per sample")
    memory_mb: int = Field(default=1024, ge=64, le=65_536)


class MultiGrader(_Grader):
    """Several graders combined by `calculate_output`, an arithmetic formula over their names."""

    type: Literal["multi"]
    graders: dict[str, Grader] = Field(min_length=1)
    calculate_output: str = Field(description="e.g. 0.5 * format + 0.5 * answer; min, max, abs, sqrt, log, exp")


Grader = Annotated[
    StringCheckGrader | TextSimilarityGrader | ScoreModelGrader | LabelModelGrader | PythonGrader | MultiGrader,
    Field(discriminator="type"),
]
MultiGrader.model_rebuild()

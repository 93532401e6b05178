"""What Bedrock model customization takes from each model family: data format, hyperparameters and their ranges,
record limits, and the runtime that queries the result. No I/O.

Ranges are AWS's tables ("Custom model hyperparameters", Bedrock user guide): Claude 3 Haiku, Amazon Nova
Micro / Lite / Pro, Meta Llama 3.1 and 3.2. Bedrock takes every hyperparameter value as a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec


@dataclass(frozen=True)
class Knob:
    """One hyperparameter in Bedrock's name, where its value comes from, and its range."""

    name: str  # Bedrock's name, e.g. epochCount
    source: str  # ours: `hyperparameters.epochs`, or an option of the backend's section
    low: float
    high: float
    integer: bool = False
    needs_validation: bool = False  # early stopping watches the validation loss


@dataclass(frozen=True)
class Family:
    """A model family Bedrock can customize."""

    name: str
    label: str
    prefixes: tuple[str, ...]  # base model ids start with one of these
    training_format: str
    knobs: tuple[Knob, ...]
    min_records: int
    max_records: int
    runtime: Literal["anthropic", "converse"]
    single_turn: bool = False  # prompt/completion: one user turn, one answer

    def hyperparameters(self, spec: JobSpec, options: Any, has_validation: bool, backend: str) -> dict[str, str]:
        """Bedrock's hyperParameters for this family: only what the job sets, ranges checked, values as strings."""
        out: dict[str, str] = {}
        for knob in self.knobs:
            value = _value(knob.source, spec, options)
            if value is None or value == "auto" or (knob.needs_validation and not has_validation):
                continue
            if not knob.low <= value <= knob.high:
                raise UnsupportedError(
                    f"{knob.source} = {value:g} is outside Bedrock's range {knob.low:g}–{knob.high:g} for {self.label}",
                    backend=backend,
                )
            out[knob.name] = str(int(value)) if knob.integer else f"{float(value):g}"
        return out

    def unused(self, spec: JobSpec) -> list[str]:
        """Hyperparameters the job file sets that this family does not take."""
        taken = {k.source for k in self.knobs}
        mine = ("epochs", "batch_size", "learning_rate", "learning_rate_multiplier", "warmup_ratio", "max_seq_length",
                "lora")  # fmt: skip
        return [f"hyperparameters.{n}" for n in mine if n in spec.hyperparameters.model_fields_set and
                f"hyperparameters.{n}" not in taken]  # fmt: skip


def _value(source: str, spec: JobSpec, options: Any) -> Any:
    if source.startswith("hyperparameters."):
        return getattr(spec.hyperparameters, source.removeprefix("hyperparameters."))
    return getattr(options, source)


EPOCHS = "hyperparameters.epochs"
FAMILIES = (
    Family(
        name="claude",
        label="Claude",
        prefixes=("anthropic.",),
        training_format="bedrock_claude",
        knobs=(
            Knob("epochCount", EPOCHS, 1, 10, integer=True),
            Knob("batchSize", "hyperparameters.batch_size", 4, 256, integer=True),
            Knob("learningRateMultiplier", "hyperparameters.learning_rate_multiplier", 0.1, 2.0),
            Knob("earlyStoppingThreshold", "early_stopping_threshold", 0.0, 0.1, needs_validation=True),
            Knob("earlyStoppingPatience", "early_stopping_patience", 1, 10, integer=True, needs_validation=True),
        ),
        min_records=32,
        max_records=10000,
        runtime="anthropic",
    ),
    Family(
        name="nova",
        label="Amazon Nova",
        prefixes=("amazon.nova-",),
        training_format="bedrock_nova",
        knobs=(
            Knob("epochCount", EPOCHS, 1, 5, integer=True),
            Knob("learningRate", "hyperparameters.learning_rate", 1e-6, 1e-4),
            Knob("learningRateWarmupSteps", "learning_rate_warmup_steps", 0, 100, integer=True),
        ),
        min_records=8,
        max_records=20000,
        runtime="converse",
    ),
    Family(
        name="llama",
        label="Meta Llama",
        prefixes=("meta.llama3-1", "meta.llama3-2", "meta.llama3-"),
        training_format="prompt_completion",
        knobs=(
            Knob("epochCount", EPOCHS, 1, 10, integer=True),
            Knob("batchSize", "hyperparameters.batch_size", 1, 1, integer=True),
            Knob("learningRate", "hyperparameters.learning_rate", 5e-6, 0.1),
        ),
        min_records=1,
        max_records=10000,
        runtime="converse",
        single_turn=True,
    ),
)


def family_of(model: str, backend: str) -> Family:
    """The family of a Bedrock base model id; one Bedrock cannot customize is refused."""
    for family in FAMILIES:
        if model.startswith(family.prefixes):
            return family
    known = ", ".join(f"{f.label} ({'/'.join(f.prefixes)}…)" for f in FAMILIES)
    raise UnsupportedError(f"{model}: not a model family fto customizes on Bedrock (known: {known})", backend=backend)

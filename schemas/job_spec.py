"""The common job schema: one file describes data, method, hyperparameters, backends and eval."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from fto.schemas.graders import Grader

Auto = Literal["auto"]
# Upper bounds no real run comes near, so a typo (`epochs: 1000000000000`) is an error at its line, never a worker
# that grows until the machine dies. Bounds that depend on the model or the data are checked at submit.
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 65_536
MAX_LORA_RANK = 4096
MAX_SEQ_LENGTH = 1_048_576
MAX_SAMPLES_PER_PROMPT = 256


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


Float = Annotated[float, BeforeValidator(_not_bool)]  # YAML's `yes` is no learning rate


class _Strict(BaseModel):
    # A misspelt key must be an error, never silently ignored; NaN and infinity are never a setting.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataSpec(_Strict):
    """Where the training data is, how it is read, and how validation examples are held out."""

    train: str = Field(description="training file (paths are relative to the job file)")
    validation: float | str | None = Field(
        default=0.1,
        description="a fraction of train held out (seeded), a file, or null for none",
    )
    format: str = Field(default="auto", description="input format (see `fto data formats`), or auto to detect it")
    mapping: dict[str, Any] | None = Field(
        default=None, description="custom column names: a LLaMA-Factory dataset_info.json entry"
    )

    @field_validator("validation")
    @classmethod
    def _fraction_in_range(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError("a validation fraction must lie between 0 and 1")
        return value


class LoraSpec(_Strict):
    """LoRA adapter settings (rank, scale, dropout, target modules)."""

    r: StrictInt = Field(default=16, gt=0, le=MAX_LORA_RANK, description="adapter rank (at most the model's width)")
    alpha: Float = Field(default=32, gt=0, le=1e6)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class Hyperparameters(_Strict):
    """How to train: epochs, batch size, learning rate (or a provider's multiplier) and the local trainer's knobs."""

    epochs: Annotated[StrictInt, Field(le=MAX_EPOCHS)] | Auto = Field(
        default="auto", description=f"passes over the training data (1–{MAX_EPOCHS})"
    )
    batch_size: Annotated[StrictInt, Field(le=MAX_BATCH_SIZE)] | Auto = Field(
        default="auto", description="examples per optimizer step (at most the training examples)"
    )
    learning_rate: Float | None = Field(
        default=None, gt=0, description="absolute learning rate (local training); null picks a default"
    )
    learning_rate_multiplier: Annotated[Float, Field(le=1000.0)] | Auto = Field(
        default="auto", description="multiplier on the provider's base learning rate (hosted training)"
    )
    warmup_ratio: Float = Field(default=0.1, ge=0.0, lt=1.0)
    max_seq_length: StrictInt | None = Field(
        default=None, gt=0, le=MAX_SEQ_LENGTH, description="longer examples are truncated"
    )
    beta: Annotated[Float, Field(le=100.0)] | Auto = Field(
        default="auto", description="DPO and RFT: strength of the pull towards the reference (RFT: the KL weight)"
    )
    lora: LoraSpec = Field(default_factory=LoraSpec)

    @field_validator("epochs", "batch_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("must be a positive integer or 'auto'")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _positive_float(cls, value: float | str) -> float | str:
        if isinstance(value, float) and value <= 0:
            raise ValueError("must be positive or 'auto'")
        return value

    @field_validator("beta")
    @classmethod
    def _not_negative(cls, value: float | str) -> float | str:
        if isinstance(value, float) and value < 0:  # RFT without a KL term is beta 0; DPO's is refused at its line
            raise ValueError("must be 0 or more, or 'auto'")
        return value


class RftSpec(_Strict):
    """Reinforcement fine-tuning: the grader that rewards each sampled answer, and how answers are sampled.

    Settings a provider does not take are recorded as warnings on its job; one it cannot express is refused.
    """

    grader: str = Field(description="the reward: the name of a grader in `graders:` (a multi grader combines several)")
    samples_per_prompt: Annotated[StrictInt, Field(ge=2, le=MAX_SAMPLES_PER_PROMPT)] | Auto = Field(
        default="auto", description="answers sampled per prompt and compared with each other (the group)"
    )
    max_new_tokens: Annotated[StrictInt, Field(gt=0, le=MAX_SEQ_LENGTH)] | Auto = Field(
        default="auto", description="longest sampled answer, in tokens"
    )
    temperature: Float = Field(default=1.0, gt=0.0, le=2.0, description="sampling temperature of the answers")
    reasoning_effort: Literal["auto", "low", "medium", "high"] = Field(
        default="auto", description="reasoning models: how long they think (where the provider takes it)"
    )
    compute_multiplier: Annotated[Float, Field(gt=0.0, le=10.0)] | Auto = Field(
        default="auto", description="compute spent on exploring answers (where the provider takes it)"
    )
    eval_interval: Annotated[StrictInt, Field(gt=0)] | Auto = Field(
        default="auto", description="steps between evaluations on the validation prompts"
    )
    eval_samples: Annotated[StrictInt, Field(gt=0, le=64)] | Auto = Field(
        default="auto", description="answers sampled per validation prompt at each evaluation"
    )
    on_grader_error: Literal["skip", "fail"] = Field(
        default="skip",
        description="an answer the grader cannot score (it crashed, hung, gave no number): skip it (trained on "
        "neither way, counted in the grader_errors metric) or fail the job",
    )


class BackendSection(BaseModel):
    """One backend's section: the base model plus options that the backend itself validates."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str | None = Field(default=None, description="base model to fine-tune, in the backend's own naming")
    type: str | None = Field(
        default=None, description="the backend, when the section's name is not one (e.g. two sections of one backend)"
    )

    def options(self) -> dict[str, Any]:
        """The section's backend-specific options (everything but `model`)."""
        return dict(self.model_extra or {})

    def backend_options(self) -> dict[str, Any]:
        """What the backend's own Options model validates: everything but `type`."""
        return self.model_dump(exclude_none=True, exclude={"type"})


class JudgeSpec(_Strict):
    """An LLM that grades answers (the `judge` scorer) and picks the better of two (pairwise win rates)."""

    provider: str = Field(description="the backend that calls the judge model (one that can act as a judge)")
    model: str = Field(description="the judge model, in that backend's naming")
    base_url: str | None = Field(default=None, description="an endpoint speaking that backend's API")
    rubric: str = Field(
        default="Rate how well the answer responds to the question, for correctness and helpfulness, "
        "using the reference answer when one is given.",
        description="what the judge scores on",
    )
    pairwise: bool = Field(default=True, description="also compare each fine-tuned model with its base, per example")
    max_concurrency: int = Field(default=8, gt=0)


class EvalSpec(_Strict):
    """How to evaluate: which examples, which scorers, generation settings, an optional judge."""

    data: str = Field(default="validation", description="'validation' for the held-out split, or a file of examples")
    scorers: list[str] = Field(default_factory=lambda: ["exact_match", "token_f1"], min_length=1)
    max_examples: int | None = Field(default=100, gt=0)
    max_new_tokens: int = Field(default=64, gt=0)
    temperature: float = Field(default=0.0, ge=0.0)
    base: bool = Field(default=True, description="also evaluate each backend's base model, for comparison")
    train_sample: int = Field(
        default=50,
        ge=0,
        description="training examples each fine-tuned model also answers, to measure the generalisation gap (0: off)",
    )
    checkpoint: Literal["last", "best"] = Field(
        default="last",
        description="best: when a job overfit, evaluate the checkpoint saved closest before its best validation loss",
    )
    judge: JudgeSpec | None = Field(default=None, description="an LLM judge; its key comes from the environment")
    compare_with: list[str] = Field(
        default_factory=list,
        description="earlier models evaluated beside this experiment's: job:ID (say, the jobs it was migrated from)",
    )


class NotifySpec(_Strict):
    """Called once when every job of the experiment has ended."""

    webhook: str | None = Field(default=None, pattern=r"^https?://", description="URL to POST a JSON summary to")
    webhook_env: str | None = Field(default=None, description="environment variable holding the URL (for secret URLs)")
    command: str | None = Field(default=None, description="shell command; FTO_EXPERIMENT and FTO_STATUS are set")


class MlflowTracking(_Strict):
    """Where MLflow keeps the runs: one run per job, its parameters, metrics, eval scores and reports."""

    tracking_uri: str = Field(description="any URI MLflow accepts: a folder, sqlite:///runs.db, http://host:5000")
    experiment: str | None = Field(default=None, description="the MLflow experiment (default: the job file's name)")
    artifact_location: str | None = Field(
        default=None,
        description="where a new MLflow experiment keeps artifacts (default: the server's choice; for a SQLite "
        "store, an mlartifacts folder beside its file rather than MLflow's ./mlruns in whatever folder fto runs in)",
    )


class TrackingSpec(_Strict):
    """Experiment trackers that fto logs every job to, for every backend."""

    mlflow: MlflowTracking | None = None


# The data check's finding codes (orchestrator/data/check); `sensitive` stands for every sensitive_* one.
CHECK_CODES = frozenset({
    "too_little_data", "duplicate", "near_duplicate", "conflict", "eval_leak",
    "eval_near_leak", "empty_answer", "cut_answer", "repeated_answer", "label_imbalance", "answer_form", "sensitive",
    "sensitive_email", "sensitive_phone", "sensitive_card", "sensitive_iban", "sensitive_secret",
})  # fmt: skip


class CheckSpec(_Strict):
    """The data check `fto submit` runs before anything is sent: which findings stop the job."""

    enabled: bool = Field(default=True, description="false skips the check (formats are still validated)")
    strict: list[str] = Field(
        default_factory=list,
        description="finding codes that are errors here (e.g. duplicate, eval_leak; `sensitive` for every kind)",
    )
    sensitive: Literal["refuse", "allow"] = Field(
        default="refuse", description="allow: send e-mails, phone numbers, cards, IBANs or keys to hosted backends"
    )
    near_duplicate_threshold: float = Field(default=0.8, ge=0.1, le=1.0, description="MinHash Jaccard similarity")

    @field_validator("strict")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        unknown = [c for c in codes if c not in CHECK_CODES]
        if unknown:
            raise ValueError(f"unknown finding code {unknown[0]!r} (codes: {', '.join(sorted(CHECK_CODES))})")
        return codes


class SweepRange(_Strict):
    """A range a random sweep draws from (uniformly, or log-uniformly for rates)."""

    low: float
    high: float
    log: bool = Field(default=False, description="draw log-uniformly (learning rates)")
    integer: bool = Field(default=False, description="round to whole numbers (ranks, epochs)")

    @field_validator("high")
    @classmethod
    def _above_low(cls, value: float, info: Any) -> float:
        low = info.data.get("low")
        if low is not None and value <= low:
            raise ValueError("high must be above low")
        return value


class SweepSpec(_Strict):
    """Hyperparameter points to train, one job each, in one experiment.

    A list in `hyperparameters` (`learning_rate: [1e-4, 3e-4]`) is a grid sweep over it; this section adds the
    random method and ranges.
    """

    method: Literal["grid", "random"] = Field(default="grid", description="grid: every combination; random: count")
    parameters: dict[str, list[Any] | SweepRange] = Field(
        default_factory=dict,
        description="hyperparameter name (lora.r for nested ones) → its values, or a range {low, high, log} (random)",
    )
    count: int | None = Field(default=None, gt=0, description="random: how many points to draw")
    seed: int = Field(default=0, description="random: the draw's seed (the same seed draws the same points)")


class JobSpec(_Strict):
    """A job file: what to train on, how, where, and how to judge the result."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="experiment name")
    method: Literal["sft", "dpo", "rft"] = Field(
        default="sft", description="sft: learn the answers; dpo: preference pairs; rft: rewarded by a grader (rft:)"
    )
    data: DataSpec
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 0
    suffix: str | None = Field(default=None, max_length=64, description="appended to fine-tuned model names")
    metadata: dict[str, str] = Field(default_factory=dict)
    backends: dict[str, BackendSection] = Field(
        default_factory=dict, description="one section per backend: its base model and options"
    )
    graders: list[Grader] = Field(
        default_factory=list,
        description="graders (the common grader objects): named in eval.scorers they are metrics (docs/graders.md)",
    )
    rft: RftSpec | None = Field(default=None, description="method: rft — the reward grader and sampling (docs/rft.md)")
    eval: EvalSpec | None = Field(default_factory=EvalSpec, description="null to skip evaluation")
    notify: NotifySpec | None = Field(default=None, description="a webhook or command to call when all jobs end")
    tracking: TrackingSpec | None = Field(default=None, description="log each job to an experiment tracker")
    check: CheckSpec = Field(default_factory=CheckSpec, description="the data check run before submitting")
    fractions: dict[str, float] = Field(
        default_factory=dict,
        description="learning curve: backend section → the fraction of the training data it trains on (nested "
        "subsets, same seed); `--learning-curve 0.25,0.5,1` fills it in",
    )
    sweep: SweepSpec | None = Field(default=None, description="hyperparameter points: one job per point")
    points: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="sweep: backend section → the hyperparameters its job trains with (filled in from `sweep`)",
    )

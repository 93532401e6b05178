"""fto's graders as OpenAI's grader objects, and RFT's method object. Pure functions, no I/O.

fto's graders are modelled on OpenAI's, so this mostly drops what is fto's own: `pass_threshold` (an eval's),
a model grader's `provider` (OpenAI runs its graders on its own models) and a python grader's limits (OpenAI's
sandbox sets its own). A multi grader's `graders` is a map of named graders: that is what the service takes,
though the published spec and SDK types say one grader (openai/openai-java#647; openai/openai-python#3918).
"""

from __future__ import annotations

from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec
from fto.schemas.graders import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)


def grader_object(grader: Grader, backend: str) -> dict[str, Any]:
    """One grader as OpenAI's JSON (`GraderStringCheck`, `GraderTextSimilarity`, `GraderPython`, …)."""
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return grader.model_dump(exclude={"pass_threshold"})
    if isinstance(grader, PythonGrader):
        return {"type": "python", "name": grader.name, "source": grader.source}
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        if grader.provider != "openai" or grader.base_url:
            raise UnsupportedError(
                f"grader {grader.name!r} asks {grader.provider} for its scores, but OpenAI runs RFT graders on its "
                "own models: use provider: openai (and no base_url) for a reward OpenAI can run",
                backend=backend,
            )
        messages = [{"type": "message", "role": m.role, "content": m.content} for m in grader.input]
        out: dict[str, Any] = {"type": grader.type, "name": grader.name, "model": grader.model, "input": messages}
        if isinstance(grader, ScoreModelGrader):
            out["range"] = list(grader.range)
            out["sampling_params"] = {"max_completions_tokens": grader.max_tokens}
        else:
            out["labels"], out["passing_labels"] = grader.labels, grader.passing_labels
        return out
    return multi_object(grader, backend)


def multi_object(grader: MultiGrader, backend: str) -> dict[str, Any]:
    """A multi grader: its parts keyed by name, combined by `calculate_output`."""
    return {
        "type": "multi",
        "name": grader.name,
        "graders": {name: grader_object(part, backend) for name, part in grader.graders.items()},
        "calculate_output": grader.calculate_output,
    }


def reinforcement(spec: JobSpec, hyperparameters: dict[str, Any], backend: str) -> dict[str, Any]:
    """The `reinforcement` method section: the reward grader and RFT's hyperparameters."""
    from fto.orchestrator.graders.offered import reward_grader

    rft = spec.rft
    assert rft is not None  # the job file's check requires it for method: rft
    hp = dict(hyperparameters)
    hp["reasoning_effort"] = "default" if rft.reasoning_effort == "auto" else rft.reasoning_effort
    hp["compute_multiplier"] = rft.compute_multiplier
    hp["eval_interval"] = rft.eval_interval
    hp["eval_samples"] = rft.eval_samples
    return {"grader": grader_object(reward_grader(spec), backend), "hyperparameters": hp}

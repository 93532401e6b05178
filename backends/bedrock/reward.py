"""Bedrock reinforcement fine-tuning: the job's grader packaged as an AWS Lambda function (Bedrock's only grader
form, `rftConfig.graderConfig.lambdaGrader`), and the `rftConfig` of the customization job. Packaging is pure;
creating the function is the backend's (through boto3).

The zip holds reward_handler.py as `lambda_function.py` and the portable grader (orchestrator/graders/portable.py:
fto's own grader code and the pure-Python libraries it imports): nothing to build for Lambda's platform.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec
from fto.schemas.graders import Grader, MultiGrader, PythonGrader

RUNTIME = "python3.12"
HANDLER = "lambda_function.lambda_handler"
# rft setting → Bedrock's RFTHyperParameters name, with the range botocore's service model gives it
RFT_KNOBS = {
    "samples_per_prompt": ("trainingSamplePerPrompt", 2, 16),
    "max_new_tokens": ("inferenceMaxTokens", 1, 1 << 20),
    "eval_interval": ("evalInterval", 1, 100),
}


def package(grader: Grader) -> bytes:
    """The Lambda deployment zip for one grader; the same grader gives the same bytes (fixed timestamps)."""
    from fto.orchestrator.graders.portable import files

    contents = files(grader, Path(__file__).with_name("reward_handler.py"), "lambda_function.py")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(contents):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, contents[name])
    return buffer.getvalue()


def function_name(grader: Grader, code: bytes) -> str:
    """Named by its content: a resubmitted job finds its function instead of making another."""
    return f"fto-grader-{grader.name[:30]}-{hashlib.sha256(code).hexdigest()[:16]}".replace("_", "-")


def limits(grader: Grader) -> tuple[int, int]:
    """The function's timeout (seconds) and memory (MB): a python grader's own limits, per batch of samples."""
    parts = grader.graders.values() if isinstance(grader, MultiGrader) else [grader]
    python = [p for p in parts if isinstance(p, PythonGrader)]
    seconds = max((p.timeout_seconds for p in python), default=5.0)
    memory = max((p.memory_mb for p in python), default=256)
    return min(900, max(30, int(seconds * 16))), min(10240, max(128, int(memory)))


def rft_config(spec: JobSpec, lambda_arn: str, backend: str) -> dict[str, Any]:
    """`customizationConfig.rftConfig`: the Lambda grader and RFTHyperParameters (ranges checked here)."""
    rft = spec.rft
    assert rft is not None  # the job file's check requires it for method: rft
    hp = spec.hyperparameters
    out: dict[str, Any] = {}
    if hp.epochs != "auto":
        out["epochCount"] = _in_range("hyperparameters.epochs", hp.epochs, 1, 50, backend)
    if hp.batch_size != "auto":
        out["batchSize"] = _in_range("hyperparameters.batch_size", hp.batch_size, 16, 512, backend)
    if hp.learning_rate is not None:
        out["learningRate"] = _in_range("hyperparameters.learning_rate", hp.learning_rate, 1e-7, 1e-3, backend)
    for setting, (name, low, high) in RFT_KNOBS.items():
        value = getattr(rft, setting)
        if value != "auto":
            out[name] = _in_range(f"rft.{setting}", value, low, high, backend)
    if rft.reasoning_effort != "auto":
        out["reasoningEffort"] = rft.reasoning_effort
    return {"graderConfig": {"lambdaGrader": {"lambdaArn": lambda_arn}}, "hyperParameters": out}


def _in_range(name: str, value: Any, low: float, high: float, backend: str) -> Any:
    if not low <= value <= high:
        raise UnsupportedError(f"{name} = {value:g} is outside Bedrock's RFT range {low:g}–{high:g}", backend=backend)
    return value

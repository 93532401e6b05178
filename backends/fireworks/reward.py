"""An RFT job's reward as a Fireworks evaluator: fto's grader code as the evaluator's code snippets, its entry
evaluator_main.py as `main.py`. Pure: the evaluator's id and body, named by content so a resubmission finds it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fto.orchestrator.graders.offered import reward_grader
from fto.orchestrator.graders.portable import files
from fto.schemas import JobSpec


def evaluator(spec: JobSpec) -> tuple[str, dict[str, Any]]:
    """(evaluator id, the `evaluator` object of EvaluatorCreateParams)."""
    grader = reward_grader(spec)
    contents = {name: data.decode("utf-8") for name, data in
                files(grader, Path(__file__).with_name("evaluator_main.py"), "main.py").items()}  # fmt: skip
    digest = hashlib.sha256("".join(f"{k}\0{v}" for k, v in sorted(contents.items())).encode()).hexdigest()[:12]
    evaluator_id = f"fto-{grader.name}-{digest}".lower().replace("_", "-")[:63]
    body = {
        "display_name": f"fto grader {grader.name}",
        "description": f"fto's {grader.type} grader {grader.name!r}, the reward of fto RFT jobs",
        "criteria": [{"type": "CODE_SNIPPETS", "name": grader.name, "description": grader.type,
                      "code_snippets": {"language": "python", "entry_file": "main.py", "entry_func": "evaluate",
                                        "file_contents": contents}}],
    }  # fmt: skip
    return evaluator_id, body

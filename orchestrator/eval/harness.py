"""Generate answers for the held-out examples on every target model, score them, record the scores."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean

from backends.base import Backend, GenerationParams
from orchestrator.data.load import load_conversations
from orchestrator.errors import FtoError
from orchestrator.eval.scorers import SCORERS
from orchestrator.paths import experiment_dir
from orchestrator.store import Store
from orchestrator.submit import backend_for
from schemas import Experiment, JobStatus

CHUNK = 16  # examples per generation call: the progress bar moves at this grain

OnProgress = Callable[[str, int, int], None]  # target, done, total


@dataclass(frozen=True)
class Target:
    """A model to evaluate, addressed the same way whatever the backend."""

    label: str  # e.g. "local/base", "local/fine-tuned"
    backend: str
    model: str
    job_id: str | None


def targets(store: Store, experiment: Experiment) -> list[Target]:
    spec_eval = experiment.spec.eval
    found: list[Target] = []
    for job in store.jobs(experiment.id):
        if job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
            continue
        if spec_eval and spec_eval.base and job.base_model:
            found.append(Target(f"{job.backend}/base", job.backend, job.base_model, job.id))
        found.append(Target(f"{job.backend}/fine-tuned", job.backend, job.fine_tuned_model, job.id))
    return found


def evaluate(
    store: Store, experiment: Experiment, on_progress: OnProgress | None = None
) -> dict[str, dict[str, float]]:
    """Scores per target label; per-example outputs go to the experiment's eval/ folder."""
    spec = experiment.spec
    if spec.eval is None:
        raise FtoError(f"experiment {experiment.id} has no eval section")
    folder = experiment_dir(experiment.id)
    examples = load_conversations(folder / "eval.jsonl")
    if not examples:
        raise FtoError(f"experiment {experiment.id} has no eval examples")
    pairs = [e.prompt_and_reference() for e in examples]
    prompts = [p for p, _ in pairs]
    references = [r.content or "" for _, r in pairs]
    params = GenerationParams(
        max_new_tokens=spec.eval.max_new_tokens, temperature=spec.eval.temperature, seed=spec.seed
    )
    backends: dict[str, Backend] = {}
    results: dict[str, dict[str, float]] = {}
    (folder / "eval").mkdir(exist_ok=True)
    for target in targets(store, experiment):
        backend = backends.setdefault(target.backend, backend_for(spec, target.backend))
        outputs: list[str] = []
        for k in range(0, len(prompts), CHUNK):
            outputs.extend(backend.complete_many(target.model, prompts[k : k + CHUNK], params))
            if on_progress:
                on_progress(target.label, len(outputs), len(prompts))
        per_example = [
            {name: SCORERS[name](out, ref) for name in spec.eval.scorers}
            for out, ref in zip(outputs, references, strict=True)
        ]
        scores = {name: fmean(s[name] for s in per_example) for name in spec.eval.scorers}
        store.save_scores(
            experiment.id, target.label, target.job_id, target.backend, target.model, scores, len(outputs)
        )
        with open(folder / "eval" / f"{target.label.replace('/', '.')}.jsonl", "w", encoding="utf-8") as f:
            for example, out, ref, s in zip(examples, outputs, references, per_example, strict=True):
                f.write(json.dumps({"line": example.source_line, "output": out, "reference": ref, "scores": s}) + "\n")
        results[target.label] = scores
    return results

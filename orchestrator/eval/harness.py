"""Generate answers for the held-out examples on every target model, score them, record the scores."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from fto.backends import registry
from fto.backends.base import Backend, GenerationParams
from fto.orchestrator import experiment_files as files
from fto.orchestrator import sweep
from fto.orchestrator.errors import FtoError, NotFoundError, UnsupportedError
from fto.orchestrator.eval import overfit
from fto.orchestrator.eval.judge import Judge, question_text
from fto.orchestrator.eval.scorers import Scorer, normalize
from fto.orchestrator.eval.scorers import get as get_scorer
from fto.orchestrator.eval.stats import bootstrap_interval
from fto.orchestrator.eval.usage import call_cost, usage_summary
from fto.orchestrator.store import Store, now
from fto.schemas import BackendSection, Completion, Conversation, Experiment, JobEvent, JobSpec, JobStatus, Message

CHUNK = 16  # examples per generation call: the progress bar moves at this grain

OnProgress = Callable[[str, int, int], None]  # target, done, total


@dataclass(frozen=True)
class Target:
    """A model to evaluate, addressed the same way whatever the backend."""

    label: str  # e.g. "local/base", "local/fine-tuned", "openai/gpt-4o-mini"
    backend: str  # a backend section's name (or a registered backend's)
    model: str
    job_id: str | None
    section: BackendSection | None = None  # the backend's options, from the job file it came from
    base_model: str | None = None  # what a fine-tuned model was tuned from (its price may follow the base's)

    @property
    def backend_type(self) -> str:
        """The registered backend behind the section (a section named `openai-eu` may be of type openai)."""
        return self.section.type if self.section and self.section.type else self.backend

    def make_backend(self) -> Backend:
        """The backend that generates this target's answers."""
        return registry.create(self.backend, self.section)


def targets(store: Store, experiment: Experiment) -> list[Target]:
    """Every succeeded job of an experiment: its fine-tuned model, and its base unless eval.base is off.

    With `eval.checkpoint: best`, a job that overfit is evaluated at the checkpoint saved closest before its best
    validation loss (and the choice is recorded on the job).
    """
    spec_eval = experiment.spec.eval
    found: list[Target] = []
    for job in store.jobs(experiment.id):
        if job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
            continue
        section = store.experiment(job.experiment_id).spec.backends.get(job.backend)
        if (spec_eval is None or spec_eval.base) and job.base_model and _evaluates_base(experiment.spec, job.backend):
            found.append(Target(f"{job.backend}/base", job.backend, job.base_model, job.id, section))
        model = job.fine_tuned_model
        if spec_eval is not None and spec_eval.checkpoint == "best":
            model = _best_model(store, job.id) or model
        found.append(Target(f"{job.backend}/fine-tuned", job.backend, model, job.id, section, job.base_model))
    return found


def _evaluates_base(spec: JobSpec, section: str) -> bool:
    """Points of a learning curve or a sweep share their base model: it is evaluated once, with the largest
    fraction's job, or the sweep's first point."""
    if spec.fractions:
        return spec.fractions.get(section, 1.0) >= max(spec.fractions.values())
    if section in spec.points:
        return section == next(s for s in spec.points if sweep.group(s) == sweep.group(section))
    return True


def _best_model(store: Store, job_id: str) -> str | None:
    """The checkpoint to evaluate instead of the last model, when the job overfit and saved one before its best."""
    found = overfit.detect(store.metrics(job_id))
    events = store.events(job_id)
    chosen = overfit.best_checkpoint(events, found.best_step) if found else None
    if found is None or chosen is None:
        return None
    note = f"eval uses the checkpoint at step {chosen[0]} (checkpoint: best): {found.text()}"
    if not any(e.message == note for e in events):
        data = {"best_step": found.best_step, "checkpoint": chosen[1]}
        store.add_updates(job_id, [JobEvent(created_at=now(), level="warning", message=note, data=data)], [], None)
    return chosen[1]


def parse_target(store: Store, text: str, spec: JobSpec | None) -> list[Target]:
    """`job:ID`, an experiment id or name, or `BACKEND:MODEL` (e.g. `local:/models/qwen`, `openai:gpt-4o-mini`)."""
    kind, _, rest = text.partition(":")
    if kind == "job" and rest:
        job = store.job(rest)
        if job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
            raise FtoError(f"job {rest} has no fine-tuned model (it is {job.status.value})")
        section = store.experiment(job.experiment_id).spec.backends.get(job.backend)
        return [Target(f"{job.backend}/{job.id}", job.backend, job.fine_tuned_model, job.id, section, job.base_model)]
    if rest and (kind in registry.available() or (spec and kind in spec.backends)):
        section = spec.backends.get(kind) if spec else None
        return [Target(f"{kind}/{rest}", kind, rest, None, section)]
    try:
        return targets(store, store.experiment(text))
    except NotFoundError:
        raise FtoError(
            f"unknown target {text!r}: use job:ID, an experiment, or BACKEND:MODEL with a backend among "
            f"{', '.join(sorted(registry.available()))}"
        ) from None


def generation_key(target: Target, messages: list[Message], params: GenerationParams) -> str:
    """What a generation depends on: the same key means the same answer can be reused."""
    payload = [target.backend, target.model, [m.model_dump(exclude_none=True) for m in messages], params.model_dump()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def generate(
    store: Store,
    backend: Backend,
    target: Target,
    prompts: list[list[Message]],
    params: GenerationParams,
    on_progress: OnProgress | None = None,
) -> list[Completion]:
    """Outputs for every prompt; cached ones are reused, new ones are stored chunk by chunk, so an interrupted
    eval resumes where it stopped and a re-run costs nothing."""
    keys = [generation_key(target, p, params) for p in prompts]
    cached = store.cached_generations(keys)
    missing = [i for i, k in enumerate(keys) if k not in cached]
    done = len(prompts) - len(missing)
    if on_progress:
        on_progress(target.label, done, len(prompts))
    size = max(CHUNK, 4 * backend.max_concurrency)  # enough to keep every concurrent slot busy
    for k in range(0, len(missing), size):
        chunk = missing[k : k + size]
        outputs = backend.complete_many(target.model, [prompts[i] for i in chunk], params)
        store.save_generations([(keys[i], out) for i, out in zip(chunk, outputs, strict=True)])
        cached.update((keys[i], out) for i, out in zip(chunk, outputs, strict=True))
        done += len(chunk)
        if on_progress:
            on_progress(target.label, done, len(prompts))
    return [cached[k] for k in keys]


def _aggregate(
    scorer: Scorer, values: list[float], labels: list[tuple[str, str]], seed: int
) -> tuple[float, float, float]:
    if scorer.aggregate is None:
        low, high = bootstrap_interval(values, seed)
        return fmean(values), low, high
    rng = random.Random(seed)
    n = len(labels)
    resampled = sorted(scorer.aggregate([labels[rng.randrange(n)] for _ in range(n)]) for _ in range(500))
    return scorer.aggregate(labels), resampled[12], resampled[487]


def evaluate(
    store: Store,
    experiment: Experiment,
    on_progress: OnProgress | None = None,
    extra: list[Target] | None = None,
    only_extra: bool = False,
) -> dict[str, dict[str, float]]:
    """Scores per target label; per-example outputs go to the experiment's eval/ folder.

    The targets are the experiment's models and any `extra` ones (or only those), all on the same examples.
    """
    spec = experiment.spec
    if spec.eval is None:
        raise FtoError(f"experiment {experiment.id} has no eval section")
    examples = [Conversation.model_validate(row) for row in files.load_rows(store, experiment.id, files.HELD_OUT) or []]
    if not examples:
        raise FtoError(f"experiment {experiment.id} has no eval examples")
    scorers = [get_scorer(name) for name in spec.eval.scorers]
    pairs = [e.prompt_and_reference() for e in examples]
    prompts = [list(p) for p, _ in pairs]
    references = [r for _, r in pairs]
    params = GenerationParams(
        max_new_tokens=spec.eval.max_new_tokens, temperature=spec.eval.temperature, seed=spec.seed
    )
    backends: dict[str, Backend] = {}
    results: dict[str, dict[str, float]] = {}
    chosen = ([] if only_extra else targets(store, experiment)) + list(extra or [])
    timing: dict[str, float] = {}
    usage: dict[str, dict[str, Any]] = {}
    outputs_by_label: dict[str, list[str]] = {}
    judge = Judge(spec.eval.judge, store) if spec.eval.judge else None
    if not chosen:
        raise FtoError(f"experiment {experiment.id} has no model to evaluate yet (no succeeded job, no --target)")
    for target in chosen:
        key = f"{target.backend} {target.section.model_dump_json() if target.section else ''}"
        if key not in backends:
            backends[key] = target.make_backend()
        backend = backends[key]
        started = time.perf_counter()
        completions = generate(store, backend, target, prompts, params, on_progress)
        seconds = time.perf_counter() - started
        outputs = [c.text for c in completions]
        outputs_by_label[target.label] = outputs
        usage[target.label] = usage_summary(completions, target.backend_type, target.model, target.base_model)
        per_example = [
            {s.name: float(s.score(out, ref, example)) for s in scorers if s.name != "judge"}
            for out, ref, example in zip(outputs, references, examples, strict=True)
        ]
        if judge and "judge" in spec.eval.scorers:
            rated = judge.rate(
                [
                    (question_text(p), r.content or "", out)
                    for p, r, out in zip(prompts, references, outputs, strict=True)
                ]
            )
            for example_scores, (score, _, _) in zip(per_example, rated, strict=True):
                example_scores["judge"] = score
            _keep_verdicts(store, experiment.id, target.label, "rate", rated)
        wanted = {"valid_loss", "perplexity"} & set(spec.eval.scorers)
        if wanted:
            losses = _reference_losses(backend, target, examples)
            for row, loss in zip(per_example, losses, strict=True):
                row["valid_loss"], row["perplexity"] = loss, math.exp(min(loss, 50.0))
        per_example = [{s.name: row[s.name] for s in scorers} for row in per_example]
        labels = [(normalize(out), normalize(ref.content or "")) for out, ref in zip(outputs, references, strict=True)]
        scores = {s.name: _aggregate(s, [p[s.name] for p in per_example], labels, spec.seed) for s in scorers}
        scores = {name: value for name, value in scores.items() if not math.isnan(value[0])}  # unsupported here
        store.save_scores(
            experiment.id, target.label, target.job_id, target.backend, target.model, scores, len(outputs)
        )
        output_rows = [
            {
                "line": example.source_line,
                "prompt": question_text(prompt),  # what the report and the dashboard show beside the answers
                "output": c.text,
                "reference": ref.content,
                "scores": sc,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "seconds": c.seconds,
                "cost_usd": call_cost(target.backend_type, target.model, c, target.base_model),
            }
            for example, prompt, c, ref, sc in zip(examples, prompts, completions, references, per_example, strict=True)
        ]
        files.save(store, experiment.id, files.outputs_name(target.label), files.rows_text(output_rows))
        results[target.label] = {name: value[0] for name, value in scores.items()}
        timing[target.label] = round(seconds, 3)
    files.save(store, experiment.id, files.TIMING, json.dumps(timing))  # seconds of generation per model (0: cached)
    files.save(store, experiment.id, files.USAGE, json.dumps(usage))  # tokens, latency and cost of the calls
    if judge and spec.eval.judge and spec.eval.judge.pairwise:
        _pairwise(store, experiment, judge, prompts, references, outputs_by_label, chosen)
    gaps = {t.label: _gap(store, backends, t, experiment.id, scorers, params, results[t.label]) for t in chosen
            if t.label.endswith("/fine-tuned") and t.label in results}  # fmt: skip
    files.save(store, experiment.id, files.GAP, json.dumps({k: v for k, v in gaps.items() if v}))
    return results


# Scorers that score an answer against its reference alone (no judge, no likelihoods): cheap on a training sample.
GAP_SKIPS = ("judge", "valid_loss", "perplexity")
MEMORISATION = 0.2  # a training score this much above the held-out one is called memorisation


def _gap(
    store: Store,
    backends: dict[str, Backend],
    target: Target,
    experiment_id: str,
    scorers: list[Any],
    params: GenerationParams,
    held_out: dict[str, float],
) -> dict[str, Any] | None:
    """The same scorers on a sample of the training data, next to the held-out scores (the generalisation gap)."""
    sample = files.load_rows(store, experiment_id, files.TRAIN_SAMPLE)
    usable = [s for s in scorers if s.name not in GAP_SKIPS and s.name in held_out]
    if not sample or not usable:
        return None
    examples = [Conversation.model_validate(row) for row in sample]
    pairs = [e.prompt_and_reference() for e in examples]
    key = f"{target.backend} {target.section.model_dump_json() if target.section else ''}"
    backend = backends.get(key) or target.make_backend()
    outputs = [c.text for c in generate(store, backend, target, [list(p) for p, _ in pairs], params)]
    gaps: dict[str, Any] = {}
    for scorer in usable:
        scores = [float(scorer.score(out, ref, ex)) for out, (_, ref), ex in zip(outputs, pairs, examples, strict=True)]
        train = sum(scores) / len(scores) if scores else float("nan")
        gap = train - held_out[scorer.name]
        gaps[scorer.name] = {"train": round(train, 4), "held_out": round(held_out[scorer.name], 4),
                             "gap": round(gap, 4), "memorisation": gap >= MEMORISATION}  # fmt: skip
    return {"examples": len(examples), "scorers": gaps}


def _reference_losses(backend: Backend, target: Target, examples: list[Any]) -> list[float]:
    try:
        return backend.reference_losses(target.model, [e.messages[: _last_assistant(e) + 1] for e in examples])
    except UnsupportedError:
        return [float("nan")] * len(examples)  # shown as empty: this backend cannot tell


def _last_assistant(example: Any) -> int:
    return max(i for i, m in enumerate(example.messages) if m.role == "assistant")


def _keep_verdicts(
    store: Store, experiment_id: str, label: str, kind: str, verdicts: list[tuple[float, str, str]]
) -> None:
    rows = [{"score": score, "prompt": prompt, "verdict": raw} for score, prompt, raw in verdicts]
    files.save(store, experiment_id, f"eval/judge-{kind}.{label.replace('/', '.')}.jsonl", files.rows_text(rows))


def _pairwise(
    store: Store,
    experiment: Experiment,
    judge: Judge,
    prompts: list[list[Message]],
    references: list[Message],
    outputs: dict[str, list[str]],
    chosen: list[Target],
) -> None:
    """For each fine-tuned model with its base among the targets: how often the judge prefers the fine-tuned."""
    for target in chosen:
        base = target.label.removesuffix("/fine-tuned") + "/base"
        if not target.label.endswith("/fine-tuned") or base not in outputs:
            continue
        items = [
            (question_text(p), r.content or "", a, b)
            for p, r, a, b in zip(prompts, references, outputs[base], outputs[target.label], strict=True)
        ]
        verdicts = judge.compare(items)
        _keep_verdicts(store, experiment.id, target.label, "pairwise", verdicts)
        wins = [v for v, _, _ in verdicts]
        low, high = bootstrap_interval(wins, experiment.spec.seed)
        store.save_scores(
            experiment.id,
            target.label,
            target.job_id,
            target.backend,
            target.model,
            {"judge_win_rate_vs_base": (fmean(wins), low, high)},
            len(wins),
        )

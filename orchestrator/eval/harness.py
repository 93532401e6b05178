"""Generate answers for the held-out examples on every target model, score them, record the scores."""

from __future__ import annotations

import hashlib
import json
import math
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
from fto.orchestrator.eval.stats import bootstrap_interval, bootstrap_statistic
from fto.orchestrator.eval.usage import call_cost, usage_summary
from fto.orchestrator.graders.run import grade_many, item_of, sample_of
from fto.orchestrator.store import Store, now
from fto.schemas import BackendSection, Completion, Conversation, Experiment, JobEvent, JobSpec, JobStatus, Message
from fto.schemas.graders import Grader
from fto.schemas.results import ExampleResult, ModelRole
from fto.schemas.results import Target as TargetRecord

CHUNK = 16  # examples per generation call: the progress bar moves at this grain

OnProgress = Callable[[str, int, int], None]  # target, done, total


@dataclass(frozen=True)
class Target:
    """A model to evaluate, addressed the same way whatever the backend, with the options to reach it."""

    label: str  # how reports name it: "local/base", "local/fine-tuned", "openai/gpt-4o-mini"; never parsed
    backend: str  # a backend section's name (or a registered backend's)
    model: str
    job_id: str | None
    role: ModelRole
    section: BackendSection | None = None  # the backend's options, from the job file it came from
    base_model: str | None = None  # what a fine-tuned model was tuned from (its price may follow the base's)

    @property
    def backend_type(self) -> str:
        """The registered backend behind the section (a section named `openai-eu` may be of type openai)."""
        return self.section.type if self.section and self.section.type else self.backend

    @property
    def record(self) -> TargetRecord:
        """The target as results name it."""
        return TargetRecord(label=self.label, section=self.backend, role=self.role, model=self.model,
                            job=self.job_id, base_model=self.base_model)  # fmt: skip

    def make_backend(self) -> Backend:
        """The backend that generates this target's answers."""
        return registry.create(self.backend, self.section)


def base_of(target: Target, chosen: list[Target]) -> Target | None:
    """The base model evaluated beside a fine-tuned one (the same job's), if any."""
    if target.role != ModelRole.FINE_TUNED:
        return None
    return next((t for t in chosen if t.role == ModelRole.BASE and t.job_id == target.job_id), None)


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
            found.append(Target(f"{job.backend}/base", job.backend, job.base_model, job.id, ModelRole.BASE, section))
        model = job.fine_tuned_model
        if spec_eval is not None and spec_eval.checkpoint == "best":
            model = _best_model(store, job.id) or model
        found.append(
            Target(
                f"{job.backend}/fine-tuned", job.backend, model, job.id, ModelRole.FINE_TUNED, section, job.base_model
            )
        )
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
        return [
            Target(
                f"{job.backend}/{job.id}",
                job.backend,
                job.fine_tuned_model,
                job.id,
                ModelRole.CHECKPOINT,
                section,
                job.base_model,
            )
        ]
    if rest and (kind in registry.available() or (spec and kind in spec.backends)):
        section = spec.backends.get(kind) if spec else None
        return [Target(f"{kind}/{rest}", kind, rest, None, ModelRole.EXTERNAL, section)]
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


@dataclass(frozen=True)
class Task:
    """What every model is evaluated on: the held-out examples, their prompts and references, the scorers and the
    graders named in eval.scorers (in `order`, the job file's)."""

    examples: list[Conversation]
    prompts: list[list[Message]]
    references: list[Message]
    scorers: list[Scorer]
    graders: list[Grader]
    params: GenerationParams
    seed: int
    order: list[str]

    @property
    def names(self) -> list[str]:
        """Every metric recorded, in the job file's order; a grader with a pass threshold adds NAME_pass."""
        passes = {g.name: f"{g.name}_pass" for g in self.graders if g.pass_threshold is not None}
        return [m for n in self.order for m in (n, passes.get(n)) if m]


def task(store: Store, experiment: Experiment) -> Task:
    """The held-out examples (from the store: any machine sharing it evaluates) and the job file's scorers."""
    spec = experiment.spec
    if spec.eval is None:
        raise FtoError(f"experiment {experiment.id} has no eval section")
    examples = [Conversation.model_validate(row) for row in files.load_rows(store, experiment.id, files.HELD_OUT) or []]
    if not examples:
        raise FtoError(f"experiment {experiment.id} has no eval examples")
    pairs = [e.prompt_and_reference() for e in examples]
    params = GenerationParams(max_new_tokens=spec.eval.max_new_tokens, temperature=spec.eval.temperature,
                              seed=spec.seed)  # fmt: skip
    graders = {g.name: g for g in spec.graders}
    return Task(examples, [list(p) for p, _ in pairs], [r for _, r in pairs],
                [get_scorer(name) for name in spec.eval.scorers if name not in graders],
                [graders[name] for name in spec.eval.scorers if name in graders], params, spec.seed,
                list(spec.eval.scorers))  # fmt: skip


def score(
    work: Task,
    target: Target,
    backend: Backend,
    outputs: list[str],
    judge: Judge | None,
    store: Store,
    experiment_id: str,
) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    """Step 2: each scorer's and grader's value on each example (the judge's ratings and reference losses where
    asked), and each example's grader errors (a sample a grader cannot grade scores 0, with the reason kept)."""
    per_example = [
        {s.name: float(s.score(out, ref, example)) for s in work.scorers if s.name != "judge"}
        for out, ref, example in zip(outputs, work.references, work.examples, strict=True)
    ]
    errors: list[dict[str, str]] = [{} for _ in outputs]
    names = {s.name for s in work.scorers}
    if judge and "judge" in names:
        rated = judge.rate([(question_text(p), r.content or "", out)
                            for p, r, out in zip(work.prompts, work.references, outputs, strict=True)])  # fmt: skip
        for example_scores, (value, _, _) in zip(per_example, rated, strict=True):
            example_scores["judge"] = value
        _keep_verdicts(store, experiment_id, target.label, "rate", rated)
    if {"valid_loss", "perplexity"} & names:
        for row, loss in zip(per_example, _reference_losses(backend, target, work.examples), strict=True):
            row["valid_loss"], row["perplexity"] = loss, math.exp(min(loss, 50.0))
    samples, items = [sample_of(out) for out in outputs], [item_of(e) for e in work.examples]
    for grader in work.graders:
        grades = grade_many(grader, samples, items, store)
        for row, failed, grade in zip(per_example, errors, grades, strict=True):
            row[grader.name] = grade.value if grade.value is not None else 0.0
            if grade.error:
                failed[grader.name] = grade.error
            if grader.pass_threshold is not None:
                row[f"{grader.name}_pass"] = grade.passed(grader.pass_threshold) or 0.0
    return [{name: row[name] for name in work.names} for row in per_example], errors


def aggregate(
    work: Task, per_example: list[dict[str, float]], outputs: list[str]
) -> dict[str, tuple[float, float, float]]:
    """Step 3: each metric's value over the examples with its 95% bootstrap interval (one bootstrap for means and
    corpus-level statistics alike); a scorer this backend cannot compute is left out."""
    corpus = {s.name: s.aggregate for s in work.scorers if s.aggregate is not None}
    found = {}
    for name in work.names:
        statistic = corpus.get(name)
        if statistic is None:
            values = [row[name] for row in per_example]
            if any(math.isnan(v) for v in values):
                continue
            found[name] = (fmean(values), *bootstrap_interval(values, work.seed))
        else:
            labels = [(normalize(out), normalize(ref.content or "")) for out, ref in zip(outputs, work.references,
                                                                                         strict=True)]  # fmt: skip
            found[name] = (statistic(labels), *bootstrap_statistic(labels, statistic, work.seed))
    return found


def record(
    store: Store,
    experiment: Experiment,
    work: Task,
    target: Target,
    completions: list[Completion],
    per_example: list[dict[str, float]],
    scores: dict[str, tuple[float, float, float]],
    errors: list[dict[str, str]],
) -> None:
    """Step 4: the scores, and every example's answer, scores, grader errors, tokens, latency and cost, into the
    store."""
    store.save_scores(experiment.id, target.record, scores, len(completions))
    answers = [
        ExampleResult(
            line=example.source_line,
            prompt=question_text(prompt),  # what the report and the dashboard show beside the answers
            output=c.text,
            reference=ref.content,
            scores=values,
            grader_errors=failed,
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            seconds=c.seconds,
            cost_usd=call_cost(target.backend_type, target.model, c, target.base_model),
        )
        for example, prompt, c, ref, values, failed in zip(
            work.examples, work.prompts, completions, work.references, per_example, errors, strict=True
        )
    ]
    files.save_answers(store, experiment.id, target.label, answers)


def evaluate(
    store: Store,
    experiment: Experiment,
    on_progress: OnProgress | None = None,
    extra: list[Target] | None = None,
    only_extra: bool = False,
) -> dict[str, dict[str, float]]:
    """Generate → score → aggregate → record, for each target on the same held-out examples; then the paired
    tests between them. Returns the scores per target label.

    The targets are the experiment's models and any `extra` ones (or only those).
    """
    work = task(store, experiment)
    spec_eval = experiment.spec.eval
    assert spec_eval is not None  # task() refuses an experiment without one
    chosen = ([] if only_extra else targets(store, experiment)) + list(extra or [])
    if not only_extra:  # earlier models the job file compares with (a migration's source jobs)
        chosen += [t for ref in spec_eval.compare_with for t in parse_target(store, ref, None)]
    if not chosen:
        raise FtoError(f"experiment {experiment.id} has no model to evaluate yet (no succeeded job, no --target)")
    judge = Judge(spec_eval.judge, store) if spec_eval.judge else None
    backends: dict[str, Backend] = {}
    results: dict[str, dict[str, float]] = {}
    timing: dict[str, float] = {}
    usage: dict[str, dict[str, Any]] = {}
    outputs_by_label: dict[str, list[str]] = {}
    try:
        for target in chosen:
            backend = _backend(backends, target)
            started = time.perf_counter()
            completions = generate(store, backend, target, work.prompts, work.params, on_progress)
            timing[target.label] = round(time.perf_counter() - started, 3)
            outputs = outputs_by_label[target.label] = [c.text for c in completions]
            usage[target.label] = usage_summary(completions, target.backend_type, target.model, target.base_model)
            per_example, errors = score(work, target, backend, outputs, judge, store, experiment.id)
            scores = aggregate(work, per_example, outputs)
            record(store, experiment, work, target, completions, per_example, scores, errors)
            results[target.label] = {name: value[0] for name, value in scores.items()}
        files.save(
            store, experiment.id, files.TIMING, json.dumps(timing)
        )  # seconds of generation per model (0: cached)
        files.save(store, experiment.id, files.USAGE, json.dumps(usage))  # tokens, latency and cost of the calls
        if judge and spec_eval.judge and spec_eval.judge.pairwise:
            _pairwise(store, experiment, judge, work, outputs_by_label, chosen)
        gaps = {t.label: _gap(store, backends, t, experiment.id, work, results[t.label]) for t in chosen
                if t.role == ModelRole.FINE_TUNED and t.label in results}  # fmt: skip
    finally:  # models served only for this eval (a deployment billed by the hour) are freed, even on failure
        _done_with(store, backends, chosen)
    files.save(store, experiment.id, files.GAP, json.dumps({k: v for k, v in gaps.items() if v}))
    from fto.orchestrator.eval.report import record_paired_tests

    record_paired_tests(store, experiment)
    return results


def _done_with(store: Store, backends: dict[str, Backend], chosen: list[Target]) -> None:
    """Tell each backend eval is done with its models; what they freed is recorded on the model's job."""
    for target in chosen:
        try:
            freed = _backend(backends, target).done_with(target.model)
        except FtoError as exc:  # say it, and go on freeing the others
            freed = [f"could not free what serves {target.model}: {exc}"]
        if freed and target.job_id:
            store.add_updates(target.job_id, [JobEvent(created_at=now(), message=line) for line in freed], [], None)


def _backend(backends: dict[str, Backend], target: Target) -> Backend:
    """One backend object per section and options, shared by the targets it serves."""
    key = f"{target.backend} {target.section.model_dump_json() if target.section else ''}"
    if key not in backends:
        backends[key] = target.make_backend()
    return backends[key]


# Scorers that score an answer against its reference alone (no judge, no likelihoods): cheap on a training sample.
GAP_SKIPS = ("judge", "valid_loss", "perplexity")
MEMORISATION = 0.2  # a training score this much above the held-out one is called memorisation


def _gap(
    store: Store,
    backends: dict[str, Backend],
    target: Target,
    experiment_id: str,
    work: Task,
    held_out: dict[str, float],
) -> dict[str, Any] | None:
    """The same scorers on a sample of the training data, next to the held-out scores (the generalisation gap)."""
    sample = files.load_rows(store, experiment_id, files.TRAIN_SAMPLE)
    usable = [s for s in work.scorers if s.name not in GAP_SKIPS and s.name in held_out]
    if not sample or not usable:
        return None
    examples = [Conversation.model_validate(row) for row in sample]
    pairs = [e.prompt_and_reference() for e in examples]
    backend = _backend(backends, target)
    outputs = [c.text for c in generate(store, backend, target, [list(p) for p, _ in pairs], work.params)]
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
    work: Task,
    outputs: dict[str, list[str]],
    chosen: list[Target],
) -> None:
    """For each fine-tuned model with its base among the targets: how often the judge prefers the fine-tuned."""
    for target in chosen:
        base = base_of(target, chosen)
        if base is None or base.label not in outputs:
            continue
        answers = zip(work.prompts, work.references, outputs[base.label], outputs[target.label], strict=True)
        items = [(question_text(p), r.content or "", a, b) for p, r, a, b in answers]
        verdicts = judge.compare(items)
        _keep_verdicts(store, experiment.id, target.label, "pairwise", verdicts)
        wins = [v for v, _, _ in verdicts]
        low, high = bootstrap_interval(wins, experiment.spec.seed)
        store.save_scores(experiment.id, target.record, {"judge_win_rate_vs_base": (fmean(wins), low, high)}, len(wins))

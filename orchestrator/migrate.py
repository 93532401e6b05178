"""`fto migrate`: an experiment (or job file) that trained on one backend, rewritten as a job file for others.

For each target: the base model mapped to the nearest one it offers (the same name where it has it, else one of the
same size class in its provider.json, else its default; shown, and overridable), hyperparameters brought within its
ranges, and the data checked by its rules. The new job file keeps the data, split, seed and eval of the old one and
names the old fine-tuned models in `eval.compare_with`, so one comparison sets old and new side by side (answers
the old models gave are reused from the store: the evaluation needs no call to a provider that has closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fto.backends import registry
from fto.orchestrator.errors import ConfigError, FtoError, NotFoundError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus


@dataclass
class ModelChoice:
    """The base model a target gets in place of the source's, and why."""

    target: str
    source_model: str
    model: str
    why: str


@dataclass
class Migration:
    """The rewritten job file, what was mapped and what the user should know."""

    spec: JobSpec
    source: str
    choices: list[ModelChoice]
    notes: list[str] = field(default_factory=list)

    def yaml(self, origin: str) -> str:
        """The job file's text, with where it came from in a comment."""
        body = self.spec.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
        body["name"] = self.spec.name
        head = f"# Migrated by `fto migrate` from {origin} ({self.source}): models and settings mapped as it printed.\n"
        return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def load_source(store: Store, key: str) -> tuple[JobSpec, str, dict[str, list[str]]]:
    """The spec of an experiment (id or name; only the sections it ran) or a job file, its origin, and the old
    fine-tuned models as eval targets (`job:ID`) by section."""
    if Path(key).is_file():
        from fto.orchestrator.config import load_job

        return load_job(key, choose=False).spec, key, {}
    try:
        experiment = store.experiment(key)
    except NotFoundError:
        raise FtoError(f"no experiment or job file {key!r} (fto ls lists experiments)") from None
    jobs = store.jobs(experiment.id)
    done: dict[str, list[str]] = {}
    for job in jobs:
        if job.status == JobStatus.SUCCEEDED and job.fine_tuned_model:
            done.setdefault(job.backend, []).append(f"job:{job.id}")
    ran = {job.backend for job in jobs} & set(experiment.spec.backends)
    spec = experiment.spec
    if ran:
        spec = spec.model_copy(update={"backends": {n: s for n, s in spec.backends.items() if n in ran}})
    return spec, f"experiment {experiment.id}", done


def migrate(
    spec: JobSpec,
    targets: list[str],
    source: str | None = None,
    models: dict[str, str] | None = None,
    earlier: dict[str, list[str]] | None = None,
    sections: dict[str, BackendSection | None] | None = None,
) -> Migration:
    """The job file for `targets` in place of the `source` section (default: the only one, or the closing one).

    A target's options (endpoint, account, …) come from `sections` (another job file's), else from the job's own
    section of that name; a model named there is kept.
    """
    source = source or _source_section(spec)
    if source not in spec.backends:
        raise ConfigError(f"the job has no backend section {source!r} (it has: {', '.join(spec.backends)})")
    old = spec.backends[source] or BackendSection()
    source_type = old.type or source
    source_model = old.model or registry.backend_class(source_type).describe().default_model or ""
    available = registry.available()
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ConfigError(f"unknown backend {unknown[0]!r} for --to (installed: {', '.join(sorted(available))})")
    if not targets:
        raise ConfigError("name at least one backend to migrate to: --to NAME[,NAME…]")
    overrides = models or {}
    stray = sorted(set(overrides) - set(targets))
    if stray:
        raise ConfigError(f"--model {stray[0]}=… names a backend not in --to ({', '.join(targets)})")
    tier = _tier(source_type, source_model)
    choices, notes, chosen = [], [], {}
    hyperparameters = spec.hyperparameters
    for target in targets:
        cls = registry.backend_class(target)
        info = cls.describe()
        if spec.method not in cls.methods:
            raise ConfigError(
                f"{target} cannot run method {spec.method!r} (it offers {', '.join(sorted(cls.methods))})"
            )
        given = (sections or {}).get(target) or spec.backends.get(target) or BackendSection()
        choice = _choose(target, source_model, tier, info, overrides.get(target), given.model)
        choices.append(choice)
        chosen[target] = given.model_copy(update={"model": choice.model})
        rule = info.epochs
        if isinstance(hyperparameters.epochs, int) and not rule.min <= hyperparameters.epochs <= rule.max:
            fitted = min(max(hyperparameters.epochs, rule.min), rule.max)
            notes.append(f"{target}: epochs {hyperparameters.epochs} is outside {info.label}'s {rule.min}–{rule.max}: "
                         f"set to {fitted}")  # fmt: skip
            hyperparameters = hyperparameters.model_copy(update={"epochs": fitted})
        backend = registry.create(target, chosen[target])
        notes += [
            f"{target}: {line}"
            for line in backend.ignored(spec.model_copy(update={"hyperparameters": hyperparameters}))
        ]
        notes += _data_findings(spec, target, choice.model)
    eval_spec = spec.eval
    compare_with = (earlier or {}).get(source, [])
    if eval_spec is not None and compare_with:
        eval_spec = eval_spec.model_copy(update={"compare_with": [*eval_spec.compare_with, *compare_with]})
    new = spec.model_copy(update={"backends": chosen, "hyperparameters": hyperparameters, "eval": eval_spec,
                                  "name": f"{spec.name}-migrated"})  # fmt: skip
    return Migration(JobSpec.model_validate(new.model_dump()), source, choices, notes)


def sections_of(path: str) -> dict[str, BackendSection | None]:
    """The `backends:` sections of a job file (or any YAML with that key): the targets' endpoints and accounts."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not YAML: {getattr(exc, 'problem', None) or exc}", file=path,
                          line=mark.line + 1 if mark else None) from None  # fmt: skip
    backends = raw.get("backends") if isinstance(raw, dict) else None
    if not isinstance(backends, dict):
        raise ConfigError("no `backends:` mapping", file=path, field="backends")
    try:
        return {name: BackendSection.model_validate(section or {}) for name, section in backends.items()}
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0], file=path, field="backends") from None


def _source_section(spec: JobSpec) -> str:
    """The only section, else the one whose provider is closing (its backend has a notice for it)."""
    if len(spec.backends) == 1:
        return next(iter(spec.backends))
    backends = {name: registry.create(name, section) for name, section in spec.backends.items()}
    closing = [name for name, backend in backends.items() if backend.notice(backend.options) is not None]
    if len(closing) == 1:
        return closing[0]
    raise ConfigError(f"the job has several backend sections ({', '.join(spec.backends)}): name one with --from")


def _tier(backend: str, model: str) -> str | None:
    try:
        _, card = registry.backend_class(backend).describe().model(model)
    except FtoError:
        return None
    return card.tier if card else None


def _choose(
    target: str, model: str, tier: str | None, info: Any, override: str | None, named: str | None
) -> ModelChoice:
    if named and not override:
        return ModelChoice(target, model, named, "as its section names it")
    if override:
        if info.models and override not in info.models:
            raise ConfigError(
                f"--model {target}={override}: {info.label} does not offer it (offers: {', '.join(info.models)})"
            )
        return ModelChoice(target, model, override, "as --model asked")
    if model in info.models:
        return ModelChoice(target, model, model, "the same model")
    same = [name for name, card in info.models.items() if tier and card.tier == tier]
    if same:
        return ModelChoice(target, model, same[0], f"nearest: a {tier} model, as {model} is")
    if info.default_model:
        return ModelChoice(target, model, info.default_model, f"{info.label}'s default (no {tier or 'sized'} match)")
    raise ConfigError(f"no model on {target} to map {model} to: name one with --model {target}=MODEL")


def _data_findings(spec: JobSpec, target: str, model: str) -> list[str]:
    """The training data checked by the target's rules: one line when it would be refused."""
    from fto.orchestrator.api import data

    if not Path(spec.data.train).is_file():
        return [f"{target}: the training file {spec.data.train} is not here any more: point data.train at it"]
    report = data.validate(spec.data.train, target, model, show=1)
    if report.ok:
        return []
    first = report.shown[0].message if report.shown else "see fto data validate"
    return [f"{target}: {report.errors} examples break {target}'s data rules (first: {first}); "
            f"fto data validate {spec.data.train} --for {target}"]  # fmt: skip

"""Whether a backend can run a job's reinforcement fine-tuning, from its provider.json alone: said in one line
before anything is uploaded, and the rft settings it does not take listed as ignored."""

from __future__ import annotations

from fto.orchestrator.errors import ConfigError, UnsupportedError
from fto.schemas import JobSpec
from fto.schemas.graders import Grader, MultiGrader
from fto.schemas.provider import ProviderInfo


def reward_grader(spec: JobSpec) -> Grader:
    """The grader `rft.grader` names (the job file's check makes sure there is one)."""
    if spec.rft is None:
        raise ConfigError("method: rft needs an rft section naming its reward grader", field="rft")
    return next(g for g in spec.graders if g.name == spec.rft.grader)


def check_rft(info: ProviderInfo, spec: JobSpec, backend: str, model: str | None) -> None:
    """Refuse, naming the first obstacle, RFT this provider cannot run: none at all, that grader, that model."""
    rules = info.rft
    if rules is None:
        from fto.backends.registry import backends_offering_rft

        others = ", ".join(backends_offering_rft()) or "none installed"
        raise UnsupportedError(f"{info.label} offers no reinforcement fine-tuning (backends that do: {others})",
                               backend=backend)  # fmt: skip
    grader = reward_grader(spec)
    if grader.type not in rules.graders:
        raise UnsupportedError(
            f"{info.label} cannot run grader {grader.name!r} ({grader.type}) as an RFT reward; it runs "
            f"{', '.join(sorted(rules.graders))}" + (f" ({rules.note})" if rules.note else ""),
            backend=backend,
        )
    if isinstance(grader, MultiGrader):
        for name, part in grader.graders.items():
            if part.type not in rules.nested:
                raise UnsupportedError(
                    f"{info.label} cannot run part {name!r} ({part.type}) of multi grader {grader.name!r}; a multi "
                    f"grader's parts there are {', '.join(sorted(rules.nested)) or 'not supported'}",
                    backend=backend,
                )
    if rules.models and model is not None and model not in rules.models:
        raise UnsupportedError(f"{info.label} runs RFT on {', '.join(rules.models)}, not {model}", backend=backend)


def ignored_rft_settings(info: ProviderInfo, spec: JobSpec) -> list[str]:
    """rft settings the job file sets that this provider does not take (recorded as warnings on the job)."""
    if spec.method != "rft" or spec.rft is None or info.rft is None:
        return []
    chosen = spec.rft.model_fields_set - {"grader", "on_grader_error"}
    return [f"rft.{name} is not a setting {info.label} takes; it chooses it" for name in
            sorted(chosen - info.rft.settings)]  # fmt: skip

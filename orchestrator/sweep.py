"""A sweep: one job per hyperparameter point, in one experiment, fanned out like `--backend a,b,c`.

A list in `hyperparameters` (`learning_rate: [1e-4, 3e-4, 1e-3]`) sweeps over it; a `sweep:` section adds the
random method (a count and a seed) and ranges. Each chosen backend section NAME becomes one section per point,
`NAME@learning_rate=0.0003`, of the same backend, and `points` records the hyperparameters each one trains with.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from pydantic import ValidationError

from fto.orchestrator.errors import ConfigError
from fto.schemas import BackendSection, Hyperparameters, JobSpec
from fto.schemas.job_spec import SweepRange, SweepSpec

# Keys whose value is itself a list: a list of them is a sweep, a plain list is the setting.
LIST_VALUED = frozenset({"lora.target_modules"})


def lift_lists(raw: dict[str, Any]) -> dict[str, tuple[str | int, ...]]:
    """Move list values out of `hyperparameters` into `sweep.parameters`; returns where each came from (for the
    line numbers of errors). A parameter named in both places is an error."""
    hp = raw.get("hyperparameters")
    if not isinstance(hp, dict):
        return {}
    found: dict[str, Any] = {}
    origin: dict[str, tuple[str | int, ...]] = {}
    for key, value in list(hp.items()):
        nested = [(f"{key}.{k}", v, hp[key], k) for k, v in value.items()] if isinstance(value, dict) else []
        for name, item, parent, k in [(key, value, hp, key), *nested]:
            if isinstance(item, list) and (name not in LIST_VALUED or any(isinstance(x, list) for x in item)):
                found[name] = item
                origin[name] = ("hyperparameters", *name.split("."))
                del parent[k]
    if not found:
        return {}
    sweep = raw.get("sweep")
    if sweep is None:
        sweep = raw["sweep"] = {}
    if not isinstance(sweep, dict):
        return origin  # the schema reports the bad section
    parameters = sweep.setdefault("parameters", {})
    if isinstance(parameters, dict):
        for name, values in found.items():
            if name in parameters:
                raise ConfigError(
                    f"{name} is swept both here and in sweep.parameters: keep one", field=f"hyperparameters.{name}"
                )
            parameters[name] = values
    return origin


def points(sweep: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's points, in a stable order: every combination (grid), or `count` draws (random, seeded)."""
    names = list(sweep.parameters)
    if not names:
        raise ConfigError("a sweep needs at least one parameter", field="sweep.parameters")
    for name, values in sweep.parameters.items():
        if isinstance(values, list) and not values:
            raise ConfigError("needs at least one value", field=f"sweep.parameters.{name}")
        if isinstance(values, list) and (twice := [v for i, v in enumerate(values) if v in values[:i]]):
            raise ConfigError(f"lists {twice[0]!r} twice: each point once", field=f"sweep.parameters.{name}")
    if sweep.method == "grid":
        ranged = [n for n, v in sweep.parameters.items() if isinstance(v, SweepRange)]
        if ranged:
            raise ConfigError("a range needs method: random (a grid needs a list of values)",
                              field=f"sweep.parameters.{ranged[0]}")  # fmt: skip
        if sweep.count is not None:
            raise ConfigError("count is for method: random (a grid trains every combination)", field="sweep.count")
        every = itertools.product(*(sweep.parameters[n] for n in names))
        return [dict(zip(names, combo, strict=True)) for combo in every]
    if sweep.count is None:
        raise ConfigError("method: random needs a count (how many points to draw)", field="sweep.count")
    rng = random.Random(sweep.seed)
    lists = [v for v in sweep.parameters.values() if isinstance(v, list)]
    if len(lists) == len(names):  # only lists: draw distinct combinations
        grid: list[tuple[Any, ...]] = list(itertools.product(*lists))
        if sweep.count > len(grid):
            raise ConfigError(f"count {sweep.count} is more than the {len(grid)} combinations", field="sweep.count")
        return [dict(zip(names, combo, strict=True)) for combo in rng.sample(grid, sweep.count)]
    return [{n: _draw(sweep.parameters[n], rng) for n in names} for _ in range(sweep.count)]


def _draw(values: list[Any] | SweepRange, rng: random.Random) -> Any:
    if isinstance(values, list):
        return rng.choice(values)
    if values.log:
        if values.low <= 0:
            raise ConfigError("a log range needs low > 0", field="sweep.parameters")
        value = math.exp(rng.uniform(math.log(values.low), math.log(values.high)))
    else:
        value = rng.uniform(values.low, values.high)
    return round(value) if values.integer else float(f"{value:.3g}")  # 3 digits: readable labels, no false precision


def with_point(hp: Hyperparameters, point: dict[str, Any]) -> Hyperparameters:
    """`hp` with the point's values set (dotted names reach into nested settings), validated like the file."""
    data = hp.model_dump()
    for name, value in point.items():
        *parents, leaf = name.split(".")
        target = data
        for part in parents:
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"unknown hyperparameter {name!r}", field=f"sweep.parameters.{name}")
            target = target[part]
        if leaf not in target:
            known = ", ".join(sorted(k for k in Hyperparameters.model_fields if k != "lora"))
            raise ConfigError(f"unknown hyperparameter {name!r} (known: {known}, lora.r, lora.alpha, …)",
                              field=f"sweep.parameters.{name}")  # fmt: skip
        target[leaf] = value
    return Hyperparameters.model_validate(data)


def label(section: str, point: dict[str, Any]) -> str:
    """`local@learning_rate=0.0003,lora.r=8`: the point's section name, readable in tables and folder names."""
    return f"{section}@" + ",".join(f"{name}={_show(value)}" for name, value in point.items())


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "+".join(map(str, value))
    return str(value)


def expand(spec: JobSpec, chosen: list[str]) -> tuple[JobSpec, list[str]]:
    """One section per (chosen section, point); each point's hyperparameters are checked here, before anything
    is read or sent. Without a sweep, the spec is returned as it is."""
    if spec.sweep is None:
        return spec, chosen
    drawn = points(spec.sweep)
    for point in drawn:
        try:
            with_point(spec.hyperparameters, point)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{err['msg']} (the point {_describe(point)})", field=f"hyperparameters.{where}"
            ) from None
    sections: dict[str, BackendSection] = {}
    labels: list[str] = []
    given: dict[str, dict[str, Any]] = {}
    for name in chosen:
        section = spec.backends.get(name) or BackendSection()
        data: dict[str, Any] = {**section.model_dump(exclude_none=True), "type": section.type or name}
        for point in drawn:
            point_label = label(name, point)
            sections[point_label] = BackendSection.model_validate(data)
            labels.append(point_label)
            given[point_label] = point
    if len(set(labels)) != len(labels):  # two ranges' draws can coincide (a random sweep over few values)
        raise ConfigError("two points of the sweep are the same: draw fewer, or widen a range", field="sweep.count")
    return spec.model_copy(update={"backends": {**spec.backends, **sections}, "points": given}), labels


def _describe(point: dict[str, Any]) -> str:
    return ", ".join(f"{name}={_show(value)}" for name, value in point.items())


def point_spec(spec: JobSpec, section: str) -> JobSpec:
    """The job file as the job of `section` trains it: a sweep point's hyperparameters set."""
    point = spec.points.get(section)
    if point is None:
        return spec
    return spec.model_copy(update={"hyperparameters": with_point(spec.hyperparameters, point)})


def group(section: str) -> str:
    """The job file's section a sweep point (or learning-curve point) was made from."""
    return section.partition("@")[0]

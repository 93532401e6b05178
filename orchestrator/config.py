"""Job file → JobSpec, with every mistake reported as file:line: field: message."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fto.backends import registry
from fto.orchestrator.errors import ConfigError
from fto.orchestrator.secrets import looks_like_secret_name
from fto.schemas import JobSpec

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedJob:
    spec: JobSpec  # data paths resolved to absolute paths
    path: Path
    backends: list[str]  # the backends this run targets, in order


def load_job(path: str | Path, backends: str | None = None) -> LoadedJob:
    """Read, validate and resolve a job file; `backends` is the --backend choice (comma-separated)."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("job file not found", file=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read job file: {exc}", file=shown) from None
    raw, lines = _parse_yaml(text, shown)
    spec = _validate(raw, lines, shown)
    _check_backend_sections(spec, lines, shown)
    _check_scorers(spec, lines, shown)
    spec = _resolve_paths(spec, path.parent, lines, shown)
    chosen = _choose_backends(spec, backends, shown)
    return LoadedJob(spec=spec, path=path.resolve(), backends=chosen)


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None or not isinstance(raw, dict):
        raise ConfigError("a job file must be a mapping of keys (name, data, backends, …)", file=file, line=1)
    lines: dict[Loc, int] = {}
    _index_lines(node, (), lines)
    return raw, lines


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    """Remember the line of every key and list item, so a validation error can point at it."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, key.value)
            lines[child] = key.start_mark.line + 1
            _index_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), lines)


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _validate(raw: dict[str, Any], lines: dict[Loc, int], file: str) -> JobSpec:
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(exc, JobSpec, (), lines, file) from None


def _first_error(
    exc: ValidationError, model: type[BaseModel], prefix: Loc, lines: dict[Loc, int], file: str
) -> ConfigError:
    err = exc.errors()[0]
    # Union members add their type name to the location (e.g. 'float'); drop those for display.
    loc: Loc = tuple(p for p in err["loc"] if not ((isinstance(p, str) and "[" in p) or p in _TYPE_TAGS))
    full = (*prefix, *loc)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(loc, model)
    elif err["type"] == "missing":
        message = "required key is missing"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message, file=file, line=_line_of(full, lines), field=_field(full))


_TYPE_TAGS = {"float", "str", "int", "bool", "list", "dict", "literal", "none", "function-after"}


def _suggestion(loc: Loc, model: type[BaseModel]) -> str:
    """'(did you mean ...?)' for a misspelt key, looked up among the fields of the model at that place."""
    fields = _fields_at(loc[:-1], model)
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(fields))})"


def _fields_at(loc: Loc, model: type[BaseModel]) -> list[str]:
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        if part not in current.model_fields:
            return []
        annotation = current.model_fields[part].annotation
        current = next((a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)), annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _check_backend_sections(spec: JobSpec, lines: dict[Loc, int], file: str) -> None:
    """Each backend validates its own section; secrets are never accepted from the file."""
    for name, section in spec.backends.items():
        loc: Loc = ("backends", name)
        for key in section.options():
            if looks_like_secret_name(key):
                raise ConfigError(
                    "secrets are never read from the job file; set them in the environment "
                    "(the backend's page names the variable) instead",
                    file=file,
                    line=_line_of((*loc, key), lines),
                    field=_field((*loc, key)),
                )
        where = (*loc, "type") if section.type else loc
        try:
            cls = registry.backend_class(section.type or name)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=file, line=_line_of(where, lines), field=_field(where)) from None
        try:
            cls.Options.model_validate(section.backend_options())
        except ValidationError as exc:
            raise _first_error(exc, cls.Options, loc, lines, file) from None


def _check_scorers(spec: JobSpec, lines: dict[Loc, int], file: str) -> None:
    from fto.orchestrator.eval import scorers

    for i, name in enumerate(spec.eval.scorers if spec.eval else []):
        if name == "judge" and spec.eval and spec.eval.judge is None:
            raise ConfigError(
                "the judge scorer needs an eval.judge section (provider, model)",
                file=file,
                line=_line_of(("eval", "scorers", i), lines),
                field=f"eval.scorers[{i}]",
            )
        try:
            scorers.get(name)
        except ConfigError as exc:
            raise ConfigError(
                exc.message,
                file=file,
                line=_line_of(("eval", "scorers", i), lines),
                field=f"eval.scorers[{i}]",
            ) from None


def _resolve_paths(spec: JobSpec, base: Path, lines: dict[Loc, int], file: str) -> JobSpec:
    """Make data paths absolute (relative to the job file) and check that the files exist."""

    def resolve(value: str, loc: Loc) -> str:
        candidate = (base / value).expanduser().resolve()
        if not candidate.is_file():
            raise ConfigError(f"data file not found: {value}", file=file, line=_line_of(loc, lines), field=_field(loc))
        return str(candidate)

    data = spec.data.model_copy(update={"train": resolve(spec.data.train, ("data", "train"))})
    if isinstance(spec.data.validation, str):
        data.validation = resolve(spec.data.validation, ("data", "validation"))
    update: dict[str, Any] = {"data": data}
    if spec.eval and spec.eval.data != "validation":
        update["eval"] = spec.eval.model_copy(update={"data": resolve(spec.eval.data, ("eval", "data"))})
    if spec.eval and spec.eval.data == "validation" and spec.data.validation is None:
        raise ConfigError(
            "eval uses the validation split, but data.validation is null; set a fraction, a file, or eval.data",
            file=file,
            line=_line_of(("eval",), lines),
            field="eval.data",
        )
    return spec.model_copy(update=update)


def _choose_backends(spec: JobSpec, choice: str | None, file: str) -> list[str]:
    """--backend picks among the file's sections; a registered backend whose options all have defaults
    (the local one) can be picked without a section."""
    if choice is None:
        if not spec.backends:
            raise ConfigError("no backends: add a `backends:` section or pass --backend", file=file)
        return list(spec.backends)
    names = [n.strip() for n in choice.split(",") if n.strip()]
    if not names:
        raise ConfigError("--backend needs at least one name", field="--backend")
    for name in names:
        cls = registry.backend_class(name)  # unknown names fail here, listing the known ones
        if name not in spec.backends:
            try:
                cls.Options.model_validate({})
            except ValidationError:
                raise ConfigError(
                    f"backend {name!r} has no section in the job file; add `backends: {name}: model: …`",
                    file=file,
                    field=f"backends.{name}",
                ) from None
    return list(dict.fromkeys(names))

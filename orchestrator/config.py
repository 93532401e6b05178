"""Job file → JobSpec, with every mistake reported as file:line: field: message."""

from __future__ import annotations

import copy
import difflib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fto.backends import registry
from fto.orchestrator import sweep
from fto.orchestrator.data.source import kind_of
from fto.orchestrator.errors import ConfigError, DataError
from fto.orchestrator.secrets import looks_like_secret_name
from fto.schemas import JobSpec

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedJob:
    spec: JobSpec  # data paths resolved to absolute paths
    path: Path | None  # None: given as a dict or built in Python
    backends: list[str]  # the backends this run targets, in order
    lines: dict[Loc, int] = field(default_factory=dict)  # the job file's line of each key
    notes: list[str] = field(default_factory=list)  # what the user should know before it runs (said by the CLI)

    def error(self, message: str, *loc: str | int) -> ConfigError:
        """An error about a field found after loading (against the data, say), placed at its file and line."""
        return ConfigError(message, file=str(self.path) if self.path else None, line=_line_of(loc, self.lines),
                           field=_field(loc))  # fmt: skip


# A job file is a few dozen lines: these bounds refuse hostile ones (a YAML bomb, a device, endless nesting) at once.
MAX_BYTES = 1024 * 1024
MAX_ALIASES = 20  # YAML aliases expand: 20 bound what they can multiply to about a thousand nodes
MAX_DEPTH = 32


def load_job(path: str | Path, backends: str | None = None, choose: bool = True) -> LoadedJob:
    """Read, validate and resolve a job file; `backends` is the --backend choice (comma-separated).

    With `choose=False` the sections are not chosen nor a sweep expanded yet (the Python API chooses at submit).
    """
    path = Path(path)
    shown = str(path)
    raw, lines = _parse_yaml(_read(path, shown), shown)
    return _load(raw, lines, shown, path.parent, backends if choose else None, path.resolve(), choose)


def load_dict(
    raw: dict[str, Any], backends: str | None = None, base: Path | None = None, choose: bool = True
) -> LoadedJob:
    """A job given as a dict (from Python): the same checks as a file's, errors named by field (no lines);
    relative data paths are taken from `base` (default: the working folder)."""
    return _load(copy.deepcopy(raw), {}, "job", base or Path.cwd(), backends, None, choose)


def _load(
    raw: dict[str, Any],
    lines: dict[Loc, int],
    shown: str,
    base: Path,
    backends: str | None,
    path: Path | None,
    choose: bool,
) -> LoadedJob:
    try:
        swept = sweep.lift_lists(raw)
    except ConfigError as exc:
        raise _placed(exc, {}, lines, shown) from None
    spec = _validate(raw, lines, shown)
    _check_backend_sections(spec, lines, shown)
    _check_scorers(spec, lines, shown)
    _check_method(spec, lines, shown)
    spec = _resolve_paths(spec, base, lines, shown)
    if not choose:
        return LoadedJob(spec=spec, path=path, backends=list(spec.backends), lines=lines)
    chosen = _choose_backends(spec, backends, shown)
    notes = [_defaults_note(name, shown) for name in chosen if name not in spec.backends]
    try:
        spec, chosen = sweep.expand(spec, chosen)
    except ConfigError as exc:
        raise _placed(exc, swept, lines, shown) from None
    return LoadedJob(spec=spec, path=path, backends=chosen, lines=lines, notes=notes)


def _defaults_note(name: str, file: str) -> str:
    """What runs when --backend names a backend the job file has no section for."""
    defaults = registry.backend_class(name).Options.model_validate({}).model_dump(exclude_none=True)
    model = f" on {defaults['model']}" if "model" in defaults else ""
    return (f"{file} has no `{name}:` section: {name} runs with its defaults{model}; add `backends: {name}: …` to "
            "choose the model and settings")  # fmt: skip


def _placed(exc: ConfigError, swept: dict[str, Loc], lines: dict[Loc, int], file: str) -> ConfigError:
    """A sweep's error, with the file and the line of the setting it names (a swept list or the sweep section)."""
    field = exc.field or "sweep"
    name = field.removeprefix("hyperparameters.").removeprefix("sweep.parameters.")
    loc: Loc = swept.get(name) or tuple(field.split("."))
    return ConfigError(exc.message, file=file, line=_line_of(loc, lines), field=field)


def _read(path: Path, shown: str) -> str:
    """The job file's text: a regular file of bounded size, in UTF-8."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("not a regular file (a job file is a YAML text file)", file=shown)
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{info.st_size:,} bytes: a job file may have at most {MAX_BYTES:,}", file=shown)
        with path.open("rb") as f:
            return f.read(MAX_BYTES + 1).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("job file not found", file=shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read job file: {exc}", file=shown) from None


def _check_shape(text: str, file: str) -> None:
    """Refuse, from the event stream (nothing built yet), too many aliases and too deep nesting."""
    aliases = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigError(f"more than {MAX_ALIASES} YAML aliases (*name)", file=file, line=line)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        _check_shape(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: dict[Loc, int] = {}
        if node is not None:
            _index_lines(node, (), lines, file)
        raw = yaml.SafeLoader(text).get_single_data() if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None or not isinstance(raw, dict):
        raise ConfigError("a job file must be a mapping of keys (name, data, backends, …)", file=file, line=1)
    return raw, lines


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
    """Remember the line of every key and list item, so a validation error can point at it; refuse a key given
    twice (YAML would keep the last silently) and numbers too long to be a setting."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            child = (*loc, key.value)
            line = key.start_mark.line + 1
            if key.value in seen:
                raise ConfigError(
                    f"key given twice (first on line {seen[key.value]})", file=file, line=line, field=_field(child)
                )
            seen[key.value] = lines[child] = line
            _index_lines(value, child, lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*loc, index), lines, file)
    elif isinstance(node, yaml.ScalarNode) and node.tag.endswith((":int", ":float")) and len(node.value) > 64:
        line = node.start_mark.line + 1
        raise ConfigError(f"a number of {len(node.value):,} characters", file=file, line=line, field=_field(loc))


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
    loc: Loc = tuple(p for p in err["loc"] if not _is_type_tag(p))
    full = (*prefix, *loc)
    message = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
    if err["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(loc, model)
    elif err["type"] == "missing":
        message = "required key is missing"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message, file=file, line=_line_of(full, lines), field=_field(full))


_TYPE_TAGS = {"float", "str", "int", "bool", "list", "dict", "literal", "none"}


def _is_type_tag(part: str | int) -> bool:
    """A union member's type name pydantic adds to a location ('float', 'constrained-int', 'function-before[…]')."""
    return isinstance(part, str) and (
        "[" in part or part in _TYPE_TAGS or part.startswith(("constrained-", "function-"))
    )


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
            if looks_like_secret_name(key) and not key.endswith("_env"):  # *_env names a variable: no secret
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

    def fail(message: str, loc: Loc, field: str) -> ConfigError:
        return ConfigError(message, file=file, line=_line_of(loc, lines), field=field)

    _check_graders(spec, lines, file)
    graders = {g.name for g in spec.graders}
    for i, name in enumerate(spec.eval.scorers if spec.eval else []):
        loc = ("eval", "scorers", i)
        if name == "judge" and spec.eval and spec.eval.judge is None:
            raise fail("the judge scorer needs an eval.judge section (provider, model)", loc, f"eval.scorers[{i}]")
        if name in graders:
            continue
        try:
            scorers.get(name)
        except ConfigError as exc:
            message = exc.message + (f"; graders in this file: {', '.join(sorted(graders))}" if graders else "")
            raise fail(message, loc, f"eval.scorers[{i}]") from None


def _check_method(spec: JobSpec, lines: dict[Loc, int], file: str) -> None:
    """RFT has its `rft:` section naming a grader of the file; the section means nothing to other methods."""

    def fail(message: str, loc: Loc) -> ConfigError:
        return ConfigError(message, file=file, line=_line_of(loc, lines) or _line_of(loc[:1], lines), field=_field(loc))

    if spec.method == "dpo" and spec.hyperparameters.beta == 0:
        raise fail("DPO needs a positive beta (0 would learn nothing)", ("hyperparameters", "beta"))
    if spec.method != "rft":
        if spec.rft is not None:
            raise fail(f"an rft section is for method: rft (this file's method is {spec.method!r})", ("rft",))
        return
    if spec.rft is None:
        raise fail("rft needs an rft section naming its reward grader (rft: {grader: NAME})", ("method",))
    graders = {g.name for g in spec.graders}
    if spec.rft.grader not in graders:
        listed = f"graders in this file: {', '.join(sorted(graders))}" if graders else "the file has no graders"
        raise fail(f"rft.grader {spec.rft.grader!r} names no grader ({listed})", ("rft", "grader"))


def _check_graders(spec: JobSpec, lines: dict[Loc, int], file: str) -> None:
    """Grader names are unique and no built-in scorer's; their templates parse; a multi grader's formula names
    only its own graders."""
    from fto.orchestrator.eval.scorers import BUILT_IN
    from fto.orchestrator.graders.checks import problem

    seen: set[str] = set()
    for index, grader in enumerate(spec.graders):

        def fail(message: str, key: str, at: int = index, name: str = grader.name) -> ConfigError:
            return ConfigError(f"grader {name!r}: {message}", file=file,
                               line=_line_of(("graders", at, key), lines) or _line_of(("graders", at), lines),
                               field=f"graders[{at}].{key}")  # fmt: skip

        if grader.name in seen or grader.name in BUILT_IN:
            raise fail("the name is taken (" + ("another grader" if grader.name in seen else "a built-in scorer")
                       + ")", "name")  # fmt: skip
        seen.add(grader.name)
        found = problem(grader)
        if found:
            raise fail(found[1], found[0])


def _resolve_paths(spec: JobSpec, base: Path, lines: dict[Loc, int], file: str) -> JobSpec:
    """Make data paths absolute (relative to the job file) and check that the files exist."""

    def resolve(value: str, loc: Loc) -> str:
        given = (base / value).expanduser()
        try:
            kind = kind_of(given)  # missing, a symlink loop, a pipe, a device: each said as it is
        except DataError as exc:
            said = (
                f"data file not found: {value}"
                if exc.message == "file not found"
                else f"data file {value}: {exc.message}"
            )
            raise ConfigError(said, file=file, line=_line_of(loc, lines), field=_field(loc)) from None
        if kind is not None:
            raise ConfigError(f"data file {value} is {kind}, not a regular file (a job keeps its data by path)",
                              file=file, line=_line_of(loc, lines), field=_field(loc))  # fmt: skip
        return str(given.resolve())

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
        if name in spec.backends:  # a section (of any type): checked with the file
            continue
        cls = registry.backend_class(name, field="--backend")  # unknown names fail here, listing the known ones
        try:
            cls.Options.model_validate({})
        except ValidationError:
            raise ConfigError(
                f"backend {name!r} has no section in the job file; add `backends: {name}: model: …`",
                file=file,
                field=f"backends.{name}",
            ) from None
    return list(dict.fromkeys(names))

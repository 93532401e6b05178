"""Check JSON against an SDK's own typed models: what a provider documents through its official SDK.

Stainless SDKs (fireworks-ai) describe request bodies as TypedDicts whose wire names are `PropertyInfo` aliases,
and responses as pydantic models with field aliases; google-genai's types are pydantic models with camelCase
aliases. Both tolerate unknown keys at run time; a provider does not, so every key must be one the SDK knows and
every value must have the type the SDK declares.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typing_extensions
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import get_type_hints, is_typeddict


def errors(declared: Any, value: Any, where: str = "", ignore: frozenset[str] = frozenset()) -> list[str]:
    """Problems with `value` as an instance of `declared` (a TypedDict, a pydantic model, or any annotation).

    `ignore` names top-level keys that are not part of the body (path and query parameters of a params type).
    """
    declared, _ = _strip(declared)
    origin = get_origin(declared)
    if declared in (Any, object) or declared is typing.Any:
        return []
    if value is None and _optional(declared):
        return []
    if is_typeddict(declared):
        return _typeddict(declared, value, where, ignore)
    if isinstance(declared, type) and issubclass(declared, BaseModel):
        return _model(declared, value, where)
    if origin in (Union, types.UnionType):
        found = [errors(arg, value, where) for arg in get_args(declared) if arg is not type(None)]
        return [] if any(not f for f in found) else (found[0] if found else [f"{where}: not null"])
    if origin is Literal:
        return [] if value in get_args(declared) else [f"{where}: {value!r} is not one of {get_args(declared)}"]
    if origin in (list, list, typing.Sequence, typing.Iterable) or origin is getattr(typing, "Iterable", None):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        (item,) = get_args(declared) or (Any,)
        return [e for i, v in enumerate(value) for e in errors(item, v, f"{where}[{i}]")]
    if origin in (dict, dict, typing.Mapping):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        args = get_args(declared)
        return [e for k, v in value.items() for e in errors(args[1] if args else Any, v, f"{where}.{k}")]
    if declared is datetime and isinstance(value, str):
        return _adapt(datetime, value, where)
    if declared in (str, int, float, bool):
        ok = isinstance(value, declared) and not (declared is int and isinstance(value, bool))
        ok = ok or (declared is float and isinstance(value, int) and not isinstance(value, bool))
        return [] if ok else [f"{where}: expected {declared.__name__}, got {value!r}"]
    return _adapt(declared, value, where)


def _adapt(declared: Any, value: Any, where: str) -> list[str]:
    try:
        TypeAdapter(declared).validate_python(value)
    except ValidationError as exc:
        return [f"{where}: {exc.errors()[0]['msg']}"]
    except Exception:  # a type pydantic cannot build a validator for: the SDK's own, nothing to hold against value
        return []
    return []


def _strip(declared: Any) -> tuple[Any, str | None]:
    """The type under `Annotated[...]`/`Required[...]`/`NotRequired[...]`, and its wire alias if one is given."""
    alias = None
    while True:
        origin = get_origin(declared)
        if origin is Annotated:
            declared, *meta = get_args(declared)
            alias = next((getattr(m, "alias", None) for m in meta if getattr(m, "alias", None)), alias)
        elif origin in (typing.Required, typing.NotRequired, typing_extensions.Required, typing_extensions.NotRequired):
            declared = get_args(declared)[0]
        else:
            return declared, alias


def _marked_required(hint: Any) -> bool:
    while get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    return get_origin(hint) in (typing.Required, typing_extensions.Required)


def _optional(declared: Any) -> bool:
    return get_origin(declared) in (Union, types.UnionType) and type(None) in get_args(declared)


def _typeddict(declared: Any, value: Any, where: str, ignore: frozenset[str]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__}"]
    fields: dict[str, tuple[str, Any]] = {}
    required = set(getattr(declared, "__required_keys__", frozenset()))
    for name, hint in get_type_hints(declared, include_extras=True).items():
        if name in ignore:
            continue
        _, alias = _strip(hint)
        fields[alias or name] = (name, hint)
        if _marked_required(hint):  # `Required[...]` from another typing module than the TypedDict's own
            required.add(name)
    found = [f"{where}.{key}: not a field the SDK knows" for key in value if key not in fields]
    found += [f"{where}.{wire}: required" for wire, (name, _) in fields.items() if name in required and
              wire not in value]  # fmt: skip
    for key, item in value.items():
        if key in fields:
            found += errors(fields[key][1], item, f"{where}.{key}")
    return found


def _model(declared: type[BaseModel], value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__}"]
    fields = {(info.alias or name): (name, info) for name, info in declared.model_fields.items()}
    # Google's APIs speak proto3 JSON, whose parsers take a field's proto name (snake_case) as well as its JSON
    # name; google-genai sends nested reward scorers that way.
    known = fields | ({name: (name, info) for name, info in declared.model_fields.items()}
                      if declared.__module__.startswith("google.") else {})  # fmt: skip
    found = [f"{where}.{key}: not a field the SDK knows" for key in value if key not in known]
    found += [f"{where}.{wire}: required" for wire, (_, info) in fields.items() if info.is_required() and
              wire not in value]  # fmt: skip
    for key, item in value.items():
        if key in known:
            found += errors(known[key][1].annotation, item, f"{where}.{key}")
    return found

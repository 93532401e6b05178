"""`{{ item.FIELD }}` and `{{ sample.output_text }}` in a grader's strings, rendered in jinja2's sandbox."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment


class TemplateProblem(Exception):
    """A template that names a field the row does not have, or does not parse."""


@cache
def _environment() -> SandboxedEnvironment:
    # Sandboxed: a job file's template reads fields, never Python attributes; a missing field is an error, not "".
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@cache
def _compiled(template: str) -> Any:
    return _environment().from_string(template)


def render(template: str, item: dict[str, Any], sample: dict[str, Any]) -> str:
    """The template filled from one dataset row and one model answer."""
    try:
        return str(_compiled(template).render(item=item, sample=sample))
    except UndefinedError as exc:
        raise TemplateProblem(f"{template!r}: {exc.message}") from None
    except TemplateError as exc:
        raise TemplateProblem(f"{template!r}: {exc}") from None


def check(template: str) -> str | None:
    """Why a template cannot be used (a syntax error), or None."""
    try:
        _compiled(template)
    except TemplateError as exc:
        return str(exc)
    return None

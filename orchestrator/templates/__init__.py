"""The HTML pages fto writes and serves — the static report.html and the dashboard — from one set of jinja2
templates, so the report and the dashboard's comparison page never disagree."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "render"]


def _number(value: Any, digits: int = 4) -> str:
    """A number as people read it: n/a when missing or not finite, `digits` significant digits otherwise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _interval(pair: Any) -> str:
    """`[low, high]`, from a pair or a score record; empty when either bound is unknown."""
    if hasattr(pair, "low"):
        pair = (pair.low, pair.high)
    if not pair or any(v is None or not math.isfinite(v) for v in pair):
        return ""
    return f"[{pair[0]:.3g}, {pair[1]:.3g}]"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug to see, not an empty cell
    )
    env.filters["num"] = _number
    env.filters["interval"] = _interval
    return env


def render(name: str, **context: Any) -> str:
    """Template `name` (a file in this folder) filled with `context`."""
    return _environment().get_template(name).render(**context)

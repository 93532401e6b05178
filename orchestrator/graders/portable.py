"""A grader that runs where fto is not installed: on a provider's machines, as the reward of its RFT.

`files` gives a self-contained set of files: the provider's entry module, the grader as `grader.json`, this module
and the fto modules it imports (the same templates, string_check and formula code `fto eval` runs), and the
pure-Python libraries those import (jinja2, markupsafe without its C speedups, simpleeval). `grade` is what the
entry module calls. Nothing here imports pydantic or anything else a bare interpreter lacks, except `files`, which
runs in fto. Text similarity (compiled libraries) and model graders (a model) do not travel.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fto.orchestrator.graders import formula, templates, text

if TYPE_CHECKING:
    from fto.schemas.graders import Grader

TRAVELS = ("string_check", "python", "multi")
MODULES = ("fto.orchestrator.errors", "fto.orchestrator.graders.formula", "fto.orchestrator.graders.templates",
           "fto.orchestrator.graders.text", "fto.orchestrator.graders.portable")  # fmt: skip
LIBRARIES = ("jinja2", "markupsafe", "simpleeval")


def grade(grader: dict[str, Any], sample: dict[str, Any], item: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """The grader's value for one sample, and a multi grader's parts by name; raises when it has none."""
    kind = grader["type"]
    if kind == "string_check":
        given = templates.render(grader["input"], item, sample)
        reference = templates.render(grader["reference"], item, sample)
        return text.string_check(grader["operation"], given, reference), {}
    if kind == "python":
        scope: dict[str, Any] = {}
        exec(compile(grader["source"], f"<grader {grader['name']}>", "exec"), scope)  # the provider's sandbox
        return _finite(float(scope["grade"](sample, item))), {}
    if kind == "multi":
        parts = {name: grade(part, sample, item)[0] for name, part in grader["graders"].items()}
        return _finite(formula.evaluate(grader["calculate_output"], parts)), parts
    raise ValueError(f"grader type {kind!r} does not run outside fto")


def sample_of(output: str) -> dict[str, Any]:
    """`{{ sample.* }}`: the answer as text, and as JSON when it parses (as fto's graders see it)."""
    try:
        parsed = json.loads(output)
    except ValueError:
        parsed = None
    return {"output_text": output, "output_json": parsed}


def text_of(content: Any) -> str:
    """A message's text: a string, or content blocks ([{"text": ...}, ...])."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"the grader gave {value}, not a number")
    return value


def files(grader: Grader, entry: Path, entry_name: str) -> dict[str, bytes]:
    """Everything the grader needs to run, by path, with `entry` under `entry_name`."""
    out = {entry_name: entry.read_bytes(),
           "grader.json": json.dumps(grader.model_dump(mode="json"), sort_keys=True).encode()}  # fmt: skip
    for module in MODULES:
        parts = module.split(".")
        out["/".join(parts) + ".py"] = _origin(module).read_bytes()
        for depth in range(1, len(parts)):
            out.setdefault("/".join(parts[:depth]) + "/__init__.py", b"")
    for library in LIBRARIES:
        origin = _origin(library)
        if origin.name != "__init__.py":  # a single module
            out[origin.name] = origin.read_bytes()
            continue
        for path in sorted(origin.parent.rglob("*.py")):
            out[f"{library}/{path.relative_to(origin.parent).as_posix()}"] = path.read_bytes()
    return out


def _origin(module: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        raise RuntimeError(f"cannot package {module}: not installed")
    return Path(found.origin)

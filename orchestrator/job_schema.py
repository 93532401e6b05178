"""The job file's JSON Schema, with each installed backend's own options filled in."""

from __future__ import annotations

from typing import Any

from fto.backends.registry import available, backend_class
from fto.schemas import JobSpec


def job_file_schema() -> dict[str, Any]:
    """JSON Schema of the job file, with each installed backend's section (`fto schema`)."""
    schema = JobSpec.model_json_schema()
    defs = schema.setdefault("$defs", {})
    sections: dict[str, Any] = {}
    for name in sorted(available()):
        options = backend_class(name).Options.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(options.pop("$defs", {}))
        options["properties"]["type"] = {"const": name, "description": "the backend (optional under its own name)"}
        sections[name] = options
    schema["properties"]["backends"] = {
        "type": "object",
        "description": schema["properties"]["backends"].get("description", ""),
        "properties": sections,
        # Any other name is a section of a named backend type (e.g. a second openai model).
        "additionalProperties": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": sorted(sections)}},
        },
    }
    return schema

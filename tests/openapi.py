"""Validate JSON against a provider's published OpenAPI spec (a subset cut into tests/fixtures).

Published specs mix OpenAPI 3.0 idioms into 3.1; `normalise` rewrites them as JSON Schema 2020-12 says them, so
that a validator checks what the provider means, not how the spec happens to spell it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator


def normalise(node: Any) -> Any:
    """OpenAPI 3.0 idioms (boolean exclusive bounds, `nullable`) and a `type` beside `oneOf` (which would veto the
    alternatives it lists), rewritten for a 2020-12 validator."""
    if isinstance(node, list):
        return [normalise(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: normalise(v) for k, v in node.items()}
    for bound, strict in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(strict) is True:
            node[strict] = node.pop(bound)
        elif node.get(strict) is False:
            node.pop(strict)
    if ("oneOf" in node or "anyOf" in node or "$ref" in node) and isinstance(node.get("type"), str):
        node.pop("type")  # `type: boolean` beside `oneOf: [boolean, "auto"]` rejects "auto"; the oneOf says it
    if "allOf" in node and any(part == {"nullable": True} for part in node["allOf"]):
        rest = [part for part in node.pop("allOf") if part != {"nullable": True}]
        return {"anyOf": [{"allOf": rest}, {"type": "null"}], **node}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


class Spec:
    """One provider's spec: schemas for request bodies and responses, looked up by route."""

    def __init__(self, path: Path, base: str = ""):
        self.raw = json.loads(path.read_text(encoding="utf-8"))  # missing: every test using it fails, never skips
        self.document = normalise(self.raw)
        self.base = base  # the prefix the SDK puts before the spec's paths (e.g. /v1)

    def operation(self, method: str, path: str) -> dict[str, Any]:
        """The spec's operation for a concrete request path (`/v1/fine-tunes/ft-1` → `/fine-tunes/{id}`)."""
        concrete = path.removeprefix(self.base).strip("/").split("/")
        for template, item in self.document["paths"].items():
            parts = template.strip("/").split("/")
            if len(parts) == len(concrete) and all(
                p == c or (p.startswith("{") and p.endswith("}")) for p, c in zip(parts, concrete, strict=True)
            ):
                literal = sum(not p.startswith("{") for p in parts)
                if method.lower() in item and literal == sum(p == c for p, c in zip(parts, concrete, strict=True)):
                    return item[method.lower()]
        raise KeyError(f"{method.upper()} {path} is not in the spec")

    def errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        """What is wrong with `value` under `schema` (which may refer to the spec's components)."""
        document = {**copy.deepcopy(schema), "components": self.document["components"]}
        found = sorted(Draft202012Validator(document).iter_errors(value), key=lambda e: list(e.path))
        return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}" for e in found[:5]]

    def request_errors(self, method: str, path: str, body: Any, media: str = "application/json") -> list[str]:
        """Problems with a request body, as the provider would see them."""
        content = self.operation(method, path).get("requestBody", {}).get("content", {})
        if media not in content:
            return [] if body in (None, b"", {}) else [f"{method.upper()} {path} takes no {media} body"]
        return self.errors(content[media]["schema"], body)

    def event_errors(self, method: str, path: str, event: Any) -> list[str]:
        """Problems with one streamed event (the route's text/event-stream schema; a completions chunk has the
        shape of the whole answer, which is all its spec lists)."""
        content = self.operation(method, path)["responses"]["200"]["content"]
        found = content.get("text/event-stream") or content["application/json"]
        return self.errors(found["schema"], event)

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with a response the server is about to send."""
        responses = self.operation(method, path).get("responses", {})
        answer = responses.get(str(status)) or responses.get("default")
        if answer is None:
            return [f"{method.upper()} {path}: the spec lists no {status} response"]
        content = answer.get("content", {})
        if "application/json" not in content:
            return []
        return self.errors(content["application/json"]["schema"], body)

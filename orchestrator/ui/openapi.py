"""`GET /openapi.json` of the dashboard: its JSON API (what the pages fetch, and the buttons' actions)."""

from __future__ import annotations

from typing import Any

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_SERIES = {"type": "object", "required": ["job", "x", "y"], "properties": {
    "job": {"type": "string"}, "label": {"type": "string"}, "x": {"type": "array", "items": _NUMBER_OR_NULL},
    "y": {"type": "array", "items": _NUMBER_OR_NULL}}}  # fmt: skip
_LOSS = {"type": "object", "required": ["x", "series"],
         "properties": {"x": {"enum": ["step", "tokens"]}, "series": {"type": "array", "items": _SERIES}}}  # fmt: skip
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_X = {"name": "x", "in": "query", "schema": {"type": "string"}}


def _get(schema: dict[str, Any], *parameters: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"parameters": list(parameters), "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "404": {"description": "no such id", "content": {"application/json": {"schema": _ERROR}}}}}}  # fmt: skip


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "fto ui", "version": "1", "description": "The dashboard's JSON API (docs/ui.md)."},
    "paths": {
        "/api/experiments": _get({"type": "array", "items": {"type": "object", "required": ["id", "name"]}},
                                 {"name": "q", "in": "query", "schema": {"type": "string"}}),
        "/api/experiments/{id}/loss": _get(_LOSS, _ID, _X),
        "/api/experiments/{id}/sweep": _get({"type": "object", "required": ["sweep"]}, _ID),
        "/api/jobs/{id}/loss": _get(_LOSS, _ID, _X),
        "/api/jobs/{id}/histogram": _get({"type": "object", "required": ["histogram", "stats"]}, _ID),
        "/api/{kind}/{id}/{verb}": {"post": {
            "parameters": [{"name": "kind", "in": "path", "required": True,
                            "schema": {"enum": ["experiments", "jobs"]}}, _ID,
                           {"name": "verb", "in": "path", "required": True,
                            "schema": {"enum": ["cancel", "pause", "resume", "evaluate"]}},
                           {"name": "X-Fto-Action", "in": "header", "required": True, "schema": {"const": "1"}}],
            "responses": {
                "200": {"description": "done", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ok", "message"]}}}},
                "403": {"description": "read-only (fto ui --allow-actions), or not from the dashboard",
                        "content": {"application/json": {"schema": _ERROR}}},
                "404": {"description": "no such id or action", "content": {"application/json": {"schema": _ERROR}}},
                "409": {"description": "the action cannot be done now",
                        "content": {"application/json": {"schema": _ERROR}}}}}},
    },
}  # fmt: skip

"""A stateful Azure OpenAI resource on 127.0.0.1, with its Resource Manager deployments, for the `azure` backend's
tests.

- Data plane `{endpoint}/openai/v1/…` (files, fine-tuning): every request, query and answer checked against Azure's
  v1 preview spec (tests/fixtures/azure-openapi/openapi-subset.json): `api-version` v1|preview, the `api-key` header
  or an Entra ID bearer token, uploads with `expires_after`, Azure's reinforcement method and grader subset.
- Deployments `management.azure.com/subscriptions/…/accounts/{account}/deployments/{name}?api-version=2026-09-01`:
  checked against the Resource Manager spec (deployments-subset.json): an Entra ID token (no key on this plane), the
  Deployment body with its required `sku.name` and no read-only fields; creation is long-running (201 Creating,
  then Succeeded on a later read, as `provisioningState` tells).
- Inference `{endpoint}/openai/deployments/{name}/chat/completions?api-version=…` answers only for a deployment that
  exists and has Succeeded (404 DeploymentNotFound otherwise, as Azure). The GA inference spec is not among the
  copies; the body is checked against the v1 spec's chat request, which is the same OpenAI body.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from jsonschema import Draft202012Validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.backends.openai_wire import OpenAIWire, WireJob
from tests.conftest import FIXTURES
from tests.openapi import Spec

SPEC = Spec(FIXTURES / "azure-openapi" / "openapi-subset.json", base="/openai/v1")
ARM = json.loads((FIXTURES / "azure-openapi" / "deployments-subset.json").read_text(encoding="utf-8"))
ARM_VERSION = ARM["info"]["version"]  # 2026-09-01
INFERENCE_VERSIONS = {"2024-10-21", "2025-04-01-preview"}
SUBSCRIPTION, GROUP, ACCOUNT = "00000000-0000-0000-0000-000000000001", "rg-fto", "fto-loopback"


def arm_errors(value: Any) -> list[str]:
    """Problems with a Deployment under the Resource Manager spec, read-only fields sent by a client included."""
    document = {"$ref": "#/definitions/Deployment", "definitions": ARM["definitions"]}
    found = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}"
             for e in Draft202012Validator(document).iter_errors(value)]  # fmt: skip
    return found + [f"{path}: read-only, set by Azure" for path in _read_only(ARM["definitions"]["Deployment"], value)]


def _read_only(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    if not isinstance(value, dict):
        return []
    if "$ref" in schema:
        schema = ARM["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    found = []
    for key, item in value.items():
        sub = (schema.get("properties") or {}).get(key)
        if sub is None:
            continue
        if sub.get("readOnly"):
            found.append(f"{path}{key}")
        found += _read_only(sub, item, f"{path}{key}/")
    return found


class AzureOpenAI(OpenAIWire):
    """One Azure OpenAI resource: its data plane, its deployments, and inference by deployment."""

    def __init__(self, key: str | None, token: str, management_token: str):
        super().__init__(
            SPEC, "/openai/v1", ("gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18", "o4-mini-2025-04-16")
        )
        self.key, self.token, self.management_token = key, token, management_token
        # the user's own deployments of the base models, as most resources have: eval of a base calls one
        self.deployments: dict[str, dict[str, Any]] = {
            base: {"name": base, "sku": {"name": "GlobalStandard", "capacity": 10},
                   "properties": {"model": {"format": "OpenAI", "name": base, "version": base.rsplit("-", 3)[-3]},
                                  "provisioningState": "Succeeded"}}
            for base in ("gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18")
        }  # fmt: skip
        self.deleted: list[str] = []
        self.credentials: list[str] = []  # which credential each data-plane request carried: key or entra

    def authorized(self, request: Request) -> bool:
        path = request.url.path
        if path.startswith("/subscriptions/"):
            return request.headers.get("authorization") == f"Bearer {self.management_token}"
        if self.key and request.headers.get("api-key") == self.key:
            self.credentials.append("key")
            return True
        if request.headers.get("authorization") == f"Bearer {self.token}":
            self.credentials.append("entra")
            return True
        return False

    def fine_tuned_name(self, job: WireJob) -> str:
        return f"{job.request['model']}.ft-{job.id.removeprefix('ftjob-')[:32]}"  # Azure's BASE.ft-HEX

    def file_fields(self, form: dict[str, str]) -> dict[str, Any]:
        """The SDK sends nested form fields as `expires_after[anchor]`: rebuilt as the spec's object."""
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if "[" in name:
                outer, inner = name.rstrip("]").split("[", 1)
                fields.setdefault(outer, {})[inner] = int(value) if value.isdigit() else value
            else:
                fields[name] = value
        return fields

    def error(self, status: int, message: str) -> Response:
        code = {401: "401", 404: "NotFound", 429: "429", 503: "ServiceUnavailable"}.get(status, "BadRequest")
        return JSONResponse({"error": {"code": code, "message": message, "param": None, "type": "error"}}, status)

    async def other(self, request: Request, parts: list[str]) -> Response | None:
        if parts[:2] == ["openai", "deployments"] and parts[3:] == ["chat", "completions"]:
            return await self.deployment_chat(request, parts[2])
        if parts[0] == "subscriptions":
            return await self.arm(request, parts)
        return None

    # inference by deployment -----------------------------------------------------------------------

    async def deployment_chat(self, request: Request, name: str) -> Response:
        version = request.query_params.get("api-version")
        if version not in INFERENCE_VERSIONS:
            raise ValueError(f"chat with deployment {name}: api-version {version!r} is not one Azure serves")
        body = json.loads(await request.body())
        problems = SPEC.request_errors("POST", "/openai/v1/chat/completions", body)
        if problems:
            raise ValueError(f"chat with deployment {name}: {problems}")
        deployment = self.deployments.get(name)
        if deployment is None or deployment["properties"]["provisioningState"] != "Succeeded":
            return JSONResponse({"error": {"code": "DeploymentNotFound", "message": f"deployment {name} not ready"}},
                                404)  # fmt: skip
        model = deployment["properties"]["model"]["name"]
        answer = self.chat(model, body)
        problems = SPEC.response_errors("POST", "/openai/v1/chat/completions", 200, answer)
        if problems:
            self.violations.append(f"answer to chat with {name}: {problems}")
        return JSONResponse(answer)

    # Resource Manager deployments ------------------------------------------------------------------

    async def arm(self, request: Request, parts: list[str]) -> Response:
        expected = ["subscriptions", SUBSCRIPTION, "resourceGroups", GROUP, "providers",
                    "Microsoft.CognitiveServices", "accounts", ACCOUNT, "deployments"]  # fmt: skip
        if parts[:-1] != expected or len(parts) != len(expected) + 1:
            raise ValueError(f"{request.method} {request.url.path}: not a deployment of this resource")
        if dict(request.query_params) != {"api-version": ARM_VERSION}:
            raise ValueError(f"{request.method} deployment: query must be api-version={ARM_VERSION}")
        name, method = parts[-1], request.method
        found = self.deployments.get(name)
        if method == "PUT":
            body = json.loads(await request.body())
            problems = arm_errors(body)
            if problems:
                raise ValueError(f"PUT deployment {name}: {problems}")
            model = body["properties"]["model"]["name"]
            fine_tuned = {j.fine_tuned_model for j in self.jobs.values() if j.fine_tuned_model}
            if model not in fine_tuned | self.models:
                return self.error(400, f"model {model} is not in this resource")
            created = found is None
            self.deployments[name] = {
                **copy.deepcopy(body),
                "id": "/" + "/".join(parts), "name": name, "type": "Microsoft.CognitiveServices/accounts/deployments",
                "properties": {**body["properties"], "provisioningState": "Creating" if created else "Succeeded"},
            }  # fmt: skip
            headers = {"Azure-AsyncOperation": f"{self.url}/operations/{name}", "Retry-After": "1"} if created else {}
            return self.arm_answer(self.deployments[name], 201 if created else 200, headers)
        if method == "GET":
            if found is None:
                return self.error(404, f"deployment {name} not found")
            if found["properties"]["provisioningState"] == "Creating":
                found["properties"]["provisioningState"] = "Succeeded"  # ready on the next read
            return self.arm_answer(found, 200)
        if method == "DELETE":
            if found is None:
                return Response(status_code=204)
            del self.deployments[name]
            self.deleted.append(name)
            return Response(status_code=200)
        raise ValueError(f"{method} deployment: not used by fto")

    def arm_answer(self, body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
        problems = [p for p in arm_errors(body) if "read-only" not in p]  # Azure itself fills read-only fields
        if problems:
            self.violations.append(f"deployment answer: {problems}")
        return JSONResponse(body, status_code=status, headers=headers)

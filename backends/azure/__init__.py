"""The `azure` backend: Azure OpenAI (Microsoft Foundry) fine-tuning, where OpenAI's fine-tuning users go after
OpenAI closes it (no new jobs after 2027-01-06).

The wire API is OpenAI's, so the openai backend's code does the work; this module holds what Azure does its own way:
- the data plane is `{endpoint}/openai/v1` (api-version `preview` for DPO, reinforcement and graders), through the
  openai SDK's `AzureOpenAI` client, with a key (`api-key`) or an Entra ID token;
- uploads carry `expires_after` (Azure requires it);
- a fine-tuned model answers only once it is *deployed*, and a deployment bills by the hour: eval deploys it through
  Azure Resource Manager (its hourly price recorded on the job when it is submitted), calls it by deployment name,
  and deletes it when eval is done with it, unless `keep_deployment`; `fto cancel JOB` deletes it too.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from pydantic import Field, model_validator

from fto.backends.azure.auth import COGNITIVE_SERVICES, MANAGEMENT, token_provider
from fto.backends.azure.deployments import Deployments
from fto.backends.base import BackendOptions, UploadedData
from fto.backends.openai import MAX_PAGES, OpenAIBackend, OpenAIOptions
from fto.orchestrator.errors import ConfigError
from fto.orchestrator.network import is_loopback
from fto.schemas import JobSpec

if TYPE_CHECKING:
    import openai

DAY = 24 * 3600
FTO_TAG = "fto-deployed"  # deployments fto created (and so may delete) carry this tag


class AzureOptions(OpenAIOptions):
    """The `azure` section of a job file: resource endpoint, base model, credentials, and how eval deploys."""

    model: str = Field(default="gpt-4.1-mini-2025-04-14", description="base model to fine-tune")
    endpoint: str | None = Field(
        default=None,
        description="the resource's endpoint, https://NAME.openai.azure.com (default: AZURE_OPENAI_ENDPOINT)",
    )
    api_key_env: str = Field(
        default="AZURE_OPENAI_API_KEY", description="variable holding the resource's key (unset: Entra ID)"
    )
    token_env: str = Field(
        default="AZURE_OPENAI_AD_TOKEN", description="variable holding an Entra ID token (else DefaultAzureCredential)"
    )
    api_version: str = Field(default="preview", description="the v1 API's version: v1, or preview (DPO, RFT)")
    inference_api_version: str = Field(
        default="2024-10-21", description="API version of deployment calls (/openai/deployments/NAME/…)"
    )
    base_deployment: str | None = Field(
        default=None, description="deployment serving the base model, for its eval (default: one named as the model)"
    )
    subscription_id: str | None = Field(default=None, description="Azure subscription of the resource (to deploy)")
    resource_group: str | None = Field(default=None, description="resource group of the resource (to deploy)")
    account: str | None = Field(default=None, description="the resource's name (default: the endpoint's host name)")
    deployment_sku: str = Field(default="Standard", description="deployment type: Standard, GlobalStandard, …")
    deployment_capacity: int = Field(default=1, gt=0, description="deployment capacity (thousands of tokens/min)")
    keep_deployment: bool = Field(
        default=False, description="keep the fine-tuned model's deployment after eval (it bills by the hour)"
    )
    deploy_timeout: float = Field(default=3600.0, gt=0, description="seconds to wait for a deployment to be ready")
    deploy_poll_interval: float = Field(default=10.0, gt=0, description="seconds between reads of a deployment")
    management_url: str = Field(default="https://management.azure.com", description="Azure Resource Manager")
    management_api_version: str = Field(default="2026-09-01", description="Resource Manager API version")
    management_token_env: str = Field(
        default="AZURE_MANAGEMENT_TOKEN",
        description="variable holding an Entra ID token for Resource Manager (else DefaultAzureCredential)",
    )
    file_expiry_seconds: int = Field(
        default=30 * DAY, ge=14 * DAY, le=30 * DAY, description="Azure deletes uploaded files this long after upload"
    )

    @model_validator(mode="after")
    def _one_way_to_name_the_endpoint(self) -> AzureOptions:
        if self.base_url or self.azure_endpoint:
            raise ValueError("name the resource as `endpoint: https://NAME.openai.azure.com` (not base_url)")
        return self


class AzureBackend(OpenAIBackend):
    """Fine-tunes on Azure OpenAI through the openai SDK's AzureOpenAI client; deploys fine-tuned models for eval."""

    Options: ClassVar[type[BackendOptions]] = AzureOptions
    options: AzureOptions
    min_poll_interval: float = 15.0  # Azure jobs queue for minutes to hours
    max_poll_interval: float = 120.0

    def __init__(self, name: str, options: AzureOptions):
        super().__init__(name, options)
        if is_loopback(self.endpoint or ""):
            self.min_poll_interval, self.max_poll_interval = 0.5, 2.0
        self._inference: openai.AzureOpenAI | None = None
        self._deploying: dict[str, threading.Lock] = {}
        self._locks = threading.Lock()

    @classmethod
    def notice(cls, options: BackendOptions | None = None) -> str | None:
        return None  # Azure keeps fine-tuning OpenAI's models

    def goes_to_openai(self) -> bool:
        return False

    def rft_model(self) -> str | None:
        return self.options.model

    @property
    def endpoint(self) -> str | None:
        found = self.options.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        return found.rstrip("/") if found else None

    @property
    def provider_key(self) -> str:
        return f"azure {self.endpoint}"

    # clients -----------------------------------------------------------------------------------------

    def _credentials(self) -> dict[str, Any]:
        """The key when its variable is set, else an Entra ID token (the variable's, or DefaultAzureCredential)."""
        key = os.environ.get(self.options.api_key_env)
        if key:
            return {"api_key": key}
        return {"azure_ad_token_provider": token_provider(COGNITIVE_SERVICES, self.options.token_env, self.name)}

    def _azure_client(self, **where: Any) -> openai.AzureOpenAI:
        import openai

        if not self.endpoint:
            raise ConfigError(
                "name the Azure OpenAI resource: endpoint: https://NAME.openai.azure.com (or AZURE_OPENAI_ENDPOINT)",
                field=f"backends.{self.name}.endpoint",
            )
        return openai.AzureOpenAI(
            **where,
            **self._credentials(),
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
        )

    @property
    def client(self) -> openai.OpenAI:
        """Files and fine-tuning: the v1 data plane."""
        if self._client is None:
            self._client = self._azure_client(
                base_url=f"{self.endpoint}/openai/v1", api_version=self.options.api_version
            )
        return self._client

    @property
    def inference(self) -> openai.AzureOpenAI:
        """Chat with a deployment: /openai/deployments/NAME/chat/completions."""
        if self._inference is None:
            self._inference = self._azure_client(
                azure_endpoint=self.endpoint or "", api_version=self.options.inference_api_version
            )
        return self._inference

    def _file_params(self) -> dict[str, Any]:
        return {"expires_after": {"anchor": "created_at", "seconds": self.options.file_expiry_seconds}}

    # jobs --------------------------------------------------------------------------------------------

    def check(self, spec: JobSpec) -> None:
        super().check(spec)
        self.client  # noqa: B018 — a missing endpoint or credential is said now, before anything is uploaded

    def find(self, job_id: str) -> str | None:
        """Azure's job list takes no metadata filter: read its pages for the job carrying our id."""
        page = self._call("list jobs", lambda: self.client.fine_tuning.jobs.list(limit=100))
        for _ in range(MAX_PAGES):
            for job in page.data:
                if (job.metadata or {}).get("fto_job_id") == job_id:
                    return job.id
            if not page.has_next_page():
                return None
            page = self._call("list jobs", page.get_next_page)
        return None

    def price_quote(self, spec: JobSpec, uploaded: UploadedData) -> str | None:
        """What serving the fine-tuned model will cost, said before any deployment exists."""
        _, card = self.describe().model(self.options.model)
        hourly = f"${card.hosting_usd_per_hour:.2f}/hour" if card and card.hosting_usd_per_hour else "hourly"
        if not self._can_deploy():
            return (
                f"Azure serves fine-tuned models only from a deployment ({self.options.deployment_sku}, {hourly} while "
                "it exists): set subscription_id and resource_group so that eval can deploy it"
            )
        after = "kept after eval (keep_deployment)" if self.options.keep_deployment else "deleted when eval is done"
        return (
            f"eval deploys the fine-tuned model ({self.options.deployment_sku}, {hourly} while the deployment "
            f"exists); it is {after}; `fto cancel JOB` deletes it"
        )

    def cancel(self, provider_job_id: str) -> None:
        """Cancel a running job; a finished one's deployment is deleted instead."""
        job = self._call("get job", lambda: self.client.fine_tuning.jobs.retrieve(provider_job_id))
        if job.status == "succeeded":
            self.release(provider_job_id)
        else:
            super().cancel(provider_job_id)

    def release(self, provider_job_id: str) -> list[str]:
        job = self._call("get job", lambda: self.client.fine_tuning.jobs.retrieve(provider_job_id))
        return self._undeploy(job.fine_tuned_model) if job.fine_tuned_model and self._can_deploy() else []

    # serving -----------------------------------------------------------------------------------------

    def _can_deploy(self) -> bool:
        return bool(self.options.subscription_id and self.options.resource_group)

    @property
    def deployments(self) -> Deployments:
        if not self._can_deploy():
            raise ConfigError(
                "to serve a fine-tuned model Azure needs a deployment: set subscription_id and resource_group "
                "(and account, when the endpoint's host name is not the resource's name)",
                field=f"backends.{self.name}",
            )
        return Deployments(
            url=self.options.management_url,
            subscription_id=self.options.subscription_id or "",
            resource_group=self.options.resource_group or "",
            account=self.options.account or (urlparse(self.endpoint or "").hostname or "").split(".")[0],
            api_version=self.options.management_api_version,
            token=token_provider(MANAGEMENT, self.options.management_token_env, self.name),
            backend=self.name,
            timeout=self.options.timeout,
        )

    @staticmethod
    def deployment_name(model: str) -> str:
        """The deployment fto makes for a fine-tuned model: from its id, so every process finds the same one."""
        return "fto-" + hashlib.sha256(model.encode()).hexdigest()[:16]

    @staticmethod
    def is_fine_tuned(model: str) -> bool:
        """Whether `model` is a fine-tuned model's id (served by deploying it), not a deployment's name."""
        return ".ft-" in model or model.startswith("ft:")  # Azure's `BASE.ft-HEX`; OpenAI-style ids on loopback

    def _serving(self, model: str) -> tuple[openai.OpenAI, str]:
        if model == self.options.model:
            return self.inference, self.options.base_deployment or model
        if not self.is_fine_tuned(model):
            return self.inference, model  # a deployment's own name
        return self.inference, self._deployed(model)

    def _deployed(self, model: str) -> str:
        """The fine-tuned model's deployment, created and waited for on first use (one creator per process)."""
        name = self.deployment_name(model)
        with self._locks:
            lock = self._deploying.setdefault(name, threading.Lock())
        with lock:
            deployments = self.deployments
            found = self._call_azure(lambda: deployments.get(name))
            if found is None:
                tags = {FTO_TAG: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                self._call_azure(
                    lambda: deployments.create(
                        name, model, self.options.deployment_sku, self.options.deployment_capacity, tags
                    )
                )
            if ((found or {}).get("properties") or {}).get("provisioningState") != "Succeeded":
                deployments.wait(name, self.options.deploy_timeout, self.options.deploy_poll_interval)
        return name

    def done_with(self, model: str) -> list[str]:
        """Delete the deployment fto made for `model` for eval, unless the job file keeps it."""
        if not self.is_fine_tuned(model) or self.options.keep_deployment or not self._can_deploy():
            return []
        return self._undeploy(model)

    def _undeploy(self, model: str) -> list[str]:
        """Delete the deployment fto made for `model` (deployments fto did not make are left alone)."""
        deployments, name = self.deployments, self.deployment_name(model)
        found = self._call_azure(lambda: deployments.get(name))
        if found is None or FTO_TAG not in (found.get("tags") or {}):
            return []
        self._call_azure(lambda: deployments.delete(name))
        return [f"deleted Azure deployment {name} of {model} (it billed by the hour)"]

    @staticmethod
    def _call_azure(fn: Any) -> Any:
        from fto.orchestrator import retry

        return retry.call(fn)

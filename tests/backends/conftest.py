"""Loopback providers for the backends' tests, one fixture each (a test fails on any request its provider would
have refused): Together, Fireworks, Vertex AI with a Cloud Storage emulator, and AWS (moto's S3 and Bedrock, a
Messages API and a Converse API for Bedrock's runtimes)."""

from __future__ import annotations

import pytest

from tests.loopback import free_port, running

TOGETHER_KEY = "tg-test-key"
FIREWORKS_KEY = "fw-test-key"
VERTEX_TOKEN = "ya29.test-token"


@pytest.fixture
def together_api(monkeypatch):
    from tests.backends.together.server import Together

    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER_KEY)
    provider = Together(key=TOGETHER_KEY)
    with running(provider) as url:
        provider.base_url = url  # the SDK adds /v1 itself
        yield provider


@pytest.fixture
def fireworks_api(monkeypatch):
    from tests.backends.fireworks.server import Fireworks

    monkeypatch.setenv("FIREWORKS_API_KEY", FIREWORKS_KEY)
    provider = Fireworks(key=FIREWORKS_KEY)
    with running(provider) as url:
        provider.base_url = url
        yield provider


@pytest.fixture
def gcs():
    """Cloud Storage from gcp-storage-emulator, with the bucket `tuning-data`."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="tuning-data")
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = storage.Client(project="proj", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
    client.url = url
    yield client
    server.stop()


@pytest.fixture
def vertex_api(gcs, monkeypatch):
    """Vertex AI for project `proj` in us-central1; the access token comes from VERTEX_TEST_TOKEN, as a CI job
    would pass `gcloud auth print-access-token`. `section` is a job file's vertex section pointing at it."""
    from tests.backends.vertex.server import Vertex

    monkeypatch.setenv("VERTEX_TEST_TOKEN", VERTEX_TOKEN)
    provider = Vertex(gcs, token=VERTEX_TOKEN)
    with running(provider) as url:
        provider.section = {
            "project": "proj",
            "location": "us-central1",
            "bucket": "tuning-data",
            "base_url": url,
            "storage_url": gcs.url,
            "access_token_env": "VERTEX_TEST_TOKEN",
        }
        yield provider


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "ANTHROPIC_API_KEY": "sk-ant-test-never-shown",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def aws(aws_env):
    """S3 and Bedrock from moto's server (its state reset for each test)."""
    from tests.backends.bedrock.servers import AWS

    started = AWS()
    yield started
    started.server.stop()


@pytest.fixture
def messages():
    """The Messages API (Anthropic's, and Bedrock's invoke for Claude)."""
    from tests.backends.bedrock.servers import Messages

    started = Messages()
    yield started
    started.httpd.shutdown()


@pytest.fixture
def converse():
    """Bedrock's Converse API (Nova, Llama)."""
    from tests.backends.bedrock.converse import Converse

    provider = Converse()
    with running(provider) as url:
        provider.base_url = url
        yield provider


AZURE_KEY = "azure-test-key-never-shown"
AZURE_TOKEN = "eyJ0eXAiOiJKV1Qi.entra-data-plane"
AZURE_MANAGEMENT_TOKEN = "eyJ0eXAiOiJKV1Qi.entra-management"


@pytest.fixture
def azure_api(monkeypatch):
    """An Azure OpenAI resource with its deployments. `section` is a job file's azure section pointing at it: the key
    from AZURE_OPENAI_API_KEY, Resource Manager's token from AZURE_MANAGEMENT_TOKEN (as `az account
    get-access-token` would give)."""
    from tests.backends.azure.server import ACCOUNT, GROUP, SUBSCRIPTION, AzureOpenAI

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_MANAGEMENT_TOKEN", AZURE_MANAGEMENT_TOKEN)
    provider = AzureOpenAI(key=AZURE_KEY, token=AZURE_TOKEN, management_token=AZURE_MANAGEMENT_TOKEN)
    with running(provider) as url:
        provider.section = {
            "endpoint": url,
            "management_url": url,
            "subscription_id": SUBSCRIPTION,
            "resource_group": GROUP,
            "account": ACCOUNT,
            "deploy_poll_interval": 0.1,
        }
        yield provider


NEBIUS_KEY = "nb-test-key-never-shown"


@pytest.fixture
def nebius_api(monkeypatch):
    """Nebius Token Factory; `section` is a job file's nebius section pointing at it (the key from NEBIUS_API_KEY)."""
    from tests.backends.nebius.server import Nebius

    monkeypatch.setenv("NEBIUS_API_KEY", NEBIUS_KEY)
    provider = Nebius(key=NEBIUS_KEY)
    with running(provider) as url:
        provider.section = {"base_url": f"{url}/v1"}
        yield provider


@pytest.fixture
def openai_api(monkeypatch):
    """OpenAI's fine-tuning API; `section` is a job file's openai section pointing at it (key from OPENAI_API_KEY)."""
    from tests.backends.openai.server import OpenAIService

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-shown")
    provider = OpenAIService(key="sk-test-never-shown")
    with running(provider) as url:
        provider.section = {"base_url": f"{url}/v1", "model": "gpt-4o-mini-2024-07-18"}
        yield provider


@pytest.fixture
def sagemaker_api(aws):
    """SageMaker AI (serverless training jobs and the runtime) with moto's S3; `section` is a job file's sagemaker
    section pointing at them, with endpoints `base-endpoint` and `tuned-endpoint` named for eval."""
    from tests.backends.bedrock.servers import BUCKET
    from tests.backends.sagemaker.server import SageMaker

    provider = SageMaker(aws.url)
    with running(provider) as url:
        provider.section = {
            "role_arn": "arn:aws:iam::123456789012:role/fto-sagemaker",
            "s3_bucket": BUCKET,
            "model_package_group": "arn:aws:sagemaker:us-west-2:123456789012:model-package-group/fto-tuned",
            "endpoint_url": url,
            "runtime_url": url,
            "s3_url": aws.url,
            "endpoint_name": "tuned-endpoint",
            "base_endpoint_name": "base-endpoint",
        }
        package = "arn:aws:sagemaker:us-west-2:123456789012:model-package/fto-tuned/1"  # the first tuned model
        provider.endpoints = {"base-endpoint": "", "tuned-endpoint": package}
        yield provider

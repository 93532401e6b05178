"""Cloud Storage from gcp-storage-emulator and a loopback Vertex AI, for each test; the access token comes from
VERTEX_TEST_TOKEN, as a CI job would pass `gcloud auth print-access-token`."""

from __future__ import annotations

import pytest
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.backends.vertex.server import Vertex
from tests.loopback import free_port, running

TOKEN = "ya29.test-token"


@pytest.fixture
def gcs():
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="tuning-data")
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = storage.Client(project="proj", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
    client.url = url  # type: ignore[attr-defined]
    yield client
    server.stop()


@pytest.fixture
def vertex_api(gcs, monkeypatch):
    monkeypatch.setenv("VERTEX_TEST_TOKEN", TOKEN)
    provider = Vertex(gcs)
    with running(provider) as url:
        provider.section = {  # type: ignore[attr-defined]
            "project": "proj", "location": "us-central1", "bucket": "tuning-data", "base_url": url,
            "storage_url": gcs.url, "access_token_env": "VERTEX_TEST_TOKEN",
        }  # fmt: skip
        yield provider

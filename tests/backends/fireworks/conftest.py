"""A loopback Fireworks for each test (account `acct`, key from FIREWORKS_API_KEY); fails on any request
Fireworks would have refused."""

from __future__ import annotations

import pytest

from tests.backends.fireworks.server import Fireworks
from tests.loopback import running

KEY = "fw-test-key"


@pytest.fixture
def fireworks_api(monkeypatch):
    monkeypatch.setenv("FIREWORKS_API_KEY", KEY)
    provider = Fireworks()
    with running(provider) as url:
        provider.base_url = url
        yield provider

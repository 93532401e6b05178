"""A loopback Together for each test; the test fails on any request Together would have refused."""

from __future__ import annotations

import pytest

from tests.backends.together.server import Together
from tests.loopback import running


@pytest.fixture
def together_api():
    provider = Together()
    with running(provider) as url:
        provider.base_url = url  # the SDK adds /v1 itself
        yield provider

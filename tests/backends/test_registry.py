"""Backends are plugins: a package that declares an `fto.backends` entry point is used like a built-in one."""

import pytest

from fto.backends import registry
from fto.backends.local import LocalBackend
from fto.orchestrator.errors import ConfigError


def test_local_backend_is_registered_by_entry_point():
    assert "local" in registry.available()
    assert registry.backend_class("local") is LocalBackend


def test_unknown_backend_lists_what_is_installed():
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(available: .*local"):
        registry.backend_class("nope")

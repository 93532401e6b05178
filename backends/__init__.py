"""Backends: one module or package per provider, all behind `backends.base.Backend`."""

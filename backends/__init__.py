"""Backends: one module or package per provider, all behind `fto.backends.base.Backend`."""

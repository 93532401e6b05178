"""The `sim` backend: a client for the simulated provider in `server.py`, over real HTTP.

Start the provider with `fto sim serve` (or `python -m fto.backends.sim.server`), then run any job file with
`--backend sim`. Useful for demos, and for load and fault tests of submission and polling.
"""

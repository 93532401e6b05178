"""`fto sim …`: the simulated provider's own commands, added to the CLI through the `fto.commands` entry point."""

from __future__ import annotations

import click


@click.group()
def sim() -> None:
    """The simulated provider (backend `sim`), for demos and load tests."""


@sim.command(name="serve")
@click.option("--port", default=8765, show_default=True)
@click.option("--duration", default=3.0, show_default=True, help="seconds a job takes")
@click.option("--fail-rate", default=0.0, show_default=True, help="fraction of requests answered 429/500/late")
@click.option("--job-failure-rate", default=0.0, show_default=True, help="fraction of jobs that fail")
def sim_serve(port: int, duration: float, fail_rate: float, job_failure_rate: float) -> None:
    """Serve the simulated provider on 127.0.0.1 (jobs with `--backend sim` go there)."""
    from fto.backends.sim.server import SimProvider, serve

    click.echo(f"sim provider on http://127.0.0.1:{port} (Ctrl-C to stop)")
    serve("127.0.0.1", port, SimProvider(duration=duration, fail_rate=fail_rate, job_failure_rate=job_failure_rate))

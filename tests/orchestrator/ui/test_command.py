"""`fto ui` beside `fto sim serve` (issue 31, item 4): distinct default ports, a taken port named before any banner,
and a dashboard URL printed only where the dashboard answers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fto.orchestrator.ui.command import DEFAULT_PORT, dashboard_answers
from tests.conftest import FTO, run_fto
from tests.serving import free_port, wait_until_up


def test_the_dashboard_and_the_sim_provider_default_to_different_ports():
    sim_help = run_fto("sim", "serve", "--help").stdout
    assert "8765" in sim_help and str(DEFAULT_PORT) in run_fto("ui", "--help").stdout and DEFAULT_PORT != 8765


@pytest.mark.slow  # two servers
def test_a_taken_port_is_named_before_any_banner_and_only_the_dashboard_counts_as_one():
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "fto.backends.sim.server", "--port", str(port)])
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/stats", sim)
        clash = run_fto("ui", "--port", str(port), timeout=60)
        assert clash.returncode != 0 and f"port {port} on 127.0.0.1 is taken" in clash.stderr
        assert "fto ui: http" not in clash.stdout  # no banner for a server that never started
        assert not dashboard_answers(port)  # the sim answers there, not the dashboard
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    ui_port = free_port()
    ui = subprocess.Popen([*FTO, "ui", "--port", str(ui_port)], stdout=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{ui_port}/", ui)
        assert dashboard_answers(ui_port)
    finally:
        ui.terminate()
        ui.wait(timeout=10)

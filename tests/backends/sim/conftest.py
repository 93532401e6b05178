"""The simulated provider, started as a real HTTP server on 127.0.0.1 for each test that needs one."""

import subprocess
import sys

import httpx
import pytest

from tests.serving import free_port, wait_until_up


class SimServer:
    def __init__(self, port: int | None = None, **options: float):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fto.backends.sim.server", "--port", str(self.port), *args]
        )
        wait_until_up(f"{self.url}/v1/stats", self.process)

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/v1/stats", timeout=10).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def sim_server():
    servers: list[SimServer] = []

    def start(port: int | None = None, **options: float) -> SimServer:
        servers.append(SimServer(port, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()

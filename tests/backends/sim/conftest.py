"""The simulated provider, started as a real HTTP server on 127.0.0.1 for each test that needs one."""

import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimServer:
    def __init__(self, **options: float):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        self.process = subprocess.Popen([sys.executable, "-m", "backends.sim.server", "--port", str(self.port), *args])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v1/stats", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the sim server did not start")

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/v1/stats", timeout=10).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def sim_server():
    servers: list[SimServer] = []

    def start(**options: float) -> SimServer:
        servers.append(SimServer(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()

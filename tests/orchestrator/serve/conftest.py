import pytest

from tests.serving import ServeProcess


@pytest.fixture
def serve(tmp_path):
    """Start `fto serve` with the given CLI arguments and environment; stopped after the test."""
    started: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        started.append(ServeProcess(tmp_path / f"serve-home-{len(started)}", *args, env=env))
        return started[-1]

    yield start
    for server in started:
        server.stop()

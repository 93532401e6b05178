"""`fto ui`: the command that starts the dashboard."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_PORT = 8777  # not `fto sim serve`'s 8765 nor `fto serve`'s 8000: all three run side by side


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="off loopback, an API key is required")
@click.option("--port", default=DEFAULT_PORT, show_default=True)
@click.option("--api-key-env", default="FTO_SERVE_API_KEY", show_default=True, help="variable holding the API key")
@click.option("--allow-actions", is_flag=True, help="let the page's buttons cancel, pause, resume and evaluate")
@click.option(
    "--allowed-hosts",
    help="Host names answered, comma-separated (`*` for any; default: loopback names, and private addresses "
    "when listening on all; or $FTO_ALLOWED_HOSTS)",
)
@click.option(
    "--data",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="a data file to inspect in the dashboard (repeatable): the pages show only files registered this way "
    "and the files of experiments",
)
def ui(
    host: str, port: int, api_key_env: str, allow_actions: bool, allowed_hosts: str | None, files: tuple[Path, ...]
) -> None:
    """A live dashboard of every experiment and job in the store: loss curves, comparisons, data.

    Read-only unless --allow-actions. Off loopback, open the printed address with ?key=YOUR_KEY once (or send
    the key as a bearer token).
    """
    import os

    import uvicorn

    from fto.orchestrator.browser_guard import allowed_hosts as hosts_for
    from fto.orchestrator.serve import check_exposure
    from fto.orchestrator.ui.app import UiConfig, create_ui_app

    api_key = os.environ.get(api_key_env) or None
    check_exposure(host, api_key, api_key_env, command="fto ui")
    shown = f"[{host}]" if ":" in host else host
    for address in register_files(files):
        click.echo(f"data: http://{shown}:{port}{address}")
    port_free(host, port)
    config = UiConfig(api_key=api_key, allow_actions=allow_actions, allowed_hosts=hosts_for(host, allowed_hosts))
    app = create_ui_app(config)
    auth = f"open once with ?key=<${api_key_env}>" if api_key else "no key (loopback only)"
    mode = "buttons act" if allow_actions else "read-only"
    click.echo(f"fto ui: http://{shown}:{port}/ — {auth} — {mode} — Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5)


def register_files(files: tuple[Path, ...]) -> list[str]:
    """Record each file in the store so the dashboard may show it; returns the address of each page."""
    if not files:
        return []
    from fto.orchestrator.data.source import check_readable
    from fto.orchestrator.store import Store

    resolved = [check_readable(path) for path in files]  # every file checked before any is recorded
    store = Store()
    try:
        return [f"/data/files/{store.register_file(str(path))}" for path in resolved]
    finally:
        store.close()


def dashboard_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether fto's dashboard (not another server) answers on the port, within a fraction of a second."""
    import httpx

    try:
        found = httpx.get(f"http://{host}:{port}/openapi.json", timeout=0.3).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(found, dict) and found.get("info", {}).get("title") == "fto ui"


def port_free(host: str, port: int) -> None:
    """A clear error, before any banner, when something else listens on the port."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"port {port} on {host} is taken ({exc.strerror}): choose another with --port"
            ) from None

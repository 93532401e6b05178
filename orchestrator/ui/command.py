"""`fto ui`: the command that starts the dashboard."""

from __future__ import annotations

import click

DEFAULT_PORT = 8765


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="off loopback, an API key is required")
@click.option("--port", default=DEFAULT_PORT, show_default=True)
@click.option("--api-key-env", default="FTO_SERVE_API_KEY", show_default=True, help="variable holding the API key")
@click.option("--allow-actions", is_flag=True, help="let the page's buttons cancel, pause, resume and evaluate")
def ui(host: str, port: int, api_key_env: str, allow_actions: bool) -> None:
    """A live dashboard of every experiment and job in the store: loss curves, comparisons, data.

    Read-only unless --allow-actions. Off loopback, open the printed address with ?key=YOUR_KEY once (or send
    the key as a bearer token).
    """
    import os

    import uvicorn

    from fto.orchestrator.serve import check_exposure
    from fto.orchestrator.ui.app import UiConfig, create_ui_app

    api_key = os.environ.get(api_key_env) or None
    check_exposure(host, api_key, api_key_env, command="fto ui")
    app = create_ui_app(UiConfig(api_key=api_key, allow_actions=allow_actions))
    shown = f"[{host}]" if ":" in host else host
    auth = f"open once with ?key=<${api_key_env}>" if api_key else "no key (loopback only)"
    mode = "buttons act" if allow_actions else "read-only"
    click.echo(f"fto ui: http://{shown}:{port}/ — {auth} — {mode} — Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5)

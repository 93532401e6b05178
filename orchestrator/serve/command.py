"""`fto serve`: the command that starts the fine-tuning API over the local backend."""

from __future__ import annotations

import click

SHUTDOWN_SECONDS = 3


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="off loopback, an API key is required")
@click.option("--port", default=8000, show_default=True)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="a base model to serve and offer for fine-tuning: a folder or a Hugging Face cache id (repeatable; "
    "default: the embedded tiny Llama)",
)
@click.option("--api-key-env", default="FTO_SERVE_API_KEY", show_default=True, help="variable holding the API key")
@click.option("--max-file-mb", default=512, show_default=True, help="largest file or upload part accepted")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option(
    "--max-workers", type=click.IntRange(min=1), help="training jobs at once (default: 1 on CPU, one per GPU)"
)
@click.option(
    "--max-connections",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="connections at once (503 beyond)",
)
@click.option(
    "--body-seconds",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="time allowed for a request body to arrive",
)
@click.option(
    "--header-seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="time allowed for a request's headers",
)
@click.option(
    "--allowed-hosts",
    help="Host names answered, comma-separated (`*` for any; default: loopback names, and private addresses "
    "when listening on all; or $FTO_ALLOWED_HOSTS)",
)
@click.option(
    "--max-seqs-per-request",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="sequences one generation request may ask for (prompts × n)",
)
def serve(
    host: str,
    port: int,
    models: tuple[str, ...],
    api_key_env: str,
    max_file_mb: int,
    device: str,
    max_workers: int | None,
    max_connections: int,
    body_seconds: float,
    header_seconds: float,
    allowed_hosts: str | None,
    max_seqs_per_request: int,
) -> None:
    """An OpenAI-compatible API over the local backend: fine-tuning (files, uploads, fine_tuning/jobs) and the
    base and fine-tuned models (chat/completions, completions, responses; streamed, batched continuously)."""
    import os

    import uvicorn

    from fto.backends.local.hub import servable
    from fto.orchestrator.browser_guard import allowed_hosts as hosts_for
    from fto.orchestrator.paths import fto_home
    from fto.orchestrator.serve import ServeConfig, check_exposure, create_app

    for model in models:
        problem = None if model.startswith("embedded:") else servable(model)
        if problem:
            raise click.UsageError(f"--model {model}: {problem}")
    api_key = os.environ.get(api_key_env)
    api_key = None if api_key == "" else api_key
    check_exposure(host, api_key, api_key_env)
    config = ServeConfig(
        root=fto_home() / "serve",
        base_models=models or ("embedded:tiny-llama",),
        api_key=api_key,
        max_file_bytes=max_file_mb * 1024 * 1024,
        body_seconds=body_seconds,
        max_connections=max_connections,
        local_options={"device": device, **({"max_workers": max_workers} if max_workers else {})},
        allowed_hosts=hosts_for(host, allowed_hosts),
        max_seqs_per_request=max_seqs_per_request,
    )
    auth = f"bearer key from ${api_key_env}" if api_key else "no key (loopback only)"
    click.echo(f"fto serve: http://{host}:{port}/v1 — {auth} — Ctrl-C to stop")
    from fto.orchestrator.serve.protocol import with_header_deadline

    uvicorn.run(
        create_app(config),
        http=with_header_deadline(header_seconds),
        host=host,
        port=port,
        log_level="warning",
        limit_concurrency=max_connections,  # beyond: 503, so slow clients cannot take every file descriptor
        timeout_keep_alive=5,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,  # SIGTERM: stop admitting, then cancel what still runs
    )

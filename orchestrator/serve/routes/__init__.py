"""`fto serve`'s routes, one module per API resource, as the openai SDK splits its resources."""

from __future__ import annotations

from starlette.routing import Route

from fto.orchestrator.serve.routes import chat, completions, files, fine_tuning, models, responses, uploads

ROUTES: list[Route] = [*files.ROUTES, *uploads.ROUTES, *fine_tuning.ROUTES, *models.ROUTES, *chat.ROUTES,
                      *completions.ROUTES, *responses.ROUTES]  # fmt: skip

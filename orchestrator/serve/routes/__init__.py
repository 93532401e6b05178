"""`fto serve`'s routes, one module per API resource, as the openai SDK splits its resources."""

from __future__ import annotations

from starlette.routing import Route

from fto.orchestrator.serve.routes import chat, files, fine_tuning, models, uploads

ROUTES: list[Route] = [*files.ROUTES, *uploads.ROUTES, *fine_tuning.ROUTES, *models.ROUTES, *chat.ROUTES]

"""/uploads: large files in parts (create, add parts, complete, cancel)."""

from __future__ import annotations

from openai.types import Upload
from openai.types.uploads import UploadPart
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.errors import Invalid
from fto.orchestrator.serve.files import public_upload
from fto.orchestrator.serve.requests import CompleteUpload, CreateUpload, parse_body
from fto.orchestrator.serve.responses import respond
from fto.orchestrator.serve.state import state


async def create(request: Request) -> Response:
    """POST /uploads."""
    body = parse_body(CreateUpload, await request.body())
    meta = state(request).files.create_upload(body.filename, body.purpose, body.bytes, body.mime_type)
    return respond(Upload, public_upload(meta))


async def add_part(request: Request) -> Response:
    """POST /uploads/{upload_id}/parts (multipart: data)."""
    form = await request.form(max_files=1, max_fields=1)
    data = form.get("data")
    if not isinstance(data, UploadFile):
        raise Invalid("a part is required (multipart field 'data')", "data")
    part = await run_in_threadpool(state(request).files.add_part, request.path_params["upload_id"], data.file)
    return respond(UploadPart, part)


async def complete(request: Request) -> Response:
    """POST /uploads/{upload_id}/complete: the parts, in order, become one file."""
    body = parse_body(CompleteUpload, await request.body())
    files = state(request).files
    meta = await run_in_threadpool(files.complete_upload, request.path_params["upload_id"], body.part_ids)
    return respond(Upload, public_upload(meta))


async def cancel(request: Request) -> Response:
    """POST /uploads/{upload_id}/cancel."""
    return respond(Upload, public_upload(state(request).files.cancel_upload(request.path_params["upload_id"])))


ROUTES = [
    Route("/uploads", create, methods=["POST"]),
    Route("/uploads/{upload_id}/parts", add_part, methods=["POST"]),
    Route("/uploads/{upload_id}/complete", complete, methods=["POST"]),
    Route("/uploads/{upload_id}/cancel", cancel, methods=["POST"]),
]

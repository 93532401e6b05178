"""/files: upload, list, retrieve, download and delete training files."""

from __future__ import annotations

from openai.types import FileDeleted, FileObject
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.errors import Invalid
from fto.orchestrator.serve.responses import page, respond, respond_list
from fto.orchestrator.serve.state import state


async def create(request: Request) -> Response:
    """POST /files (multipart: file, purpose)."""
    form = await request.form(max_files=1, max_fields=4)
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise Invalid("a file is required (multipart field 'file')", "file")
    if purpose != "fine-tune":
        raise Invalid(f"purpose {purpose!r} is not supported here; use 'fine-tune'", "purpose")
    created = await run_in_threadpool(state(request).files.create, upload.file, upload.filename or "", purpose)
    return respond(FileObject, created)


async def list_files(request: Request) -> Response:
    """GET /files."""
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise Invalid(f"order must be 'asc' or 'desc', not {order[:40]!r}", "order")
    found = state(request).files.list(request.query_params.get("purpose"))
    if order == "asc":
        found.reverse()
    data, more = page(found, request, 10000)
    return respond_list(FileObject, data, more, with_ids=True, no_id="")


async def retrieve(request: Request) -> Response:
    """GET /files/{file_id}."""
    return respond(FileObject, state(request).files.get(request.path_params["file_id"]))


async def content(request: Request) -> Response:
    """GET /files/{file_id}/content: the file's bytes."""
    file_id = request.path_params["file_id"]
    path = state(request).files.path(file_id)
    # the bytes as they were uploaded (JSONL is not one JSON document): a download, never rendered by a browser
    headers = {"Content-Disposition": f'attachment; filename="{file_id}.jsonl"'}
    return Response(await run_in_threadpool(path.read_bytes), media_type="application/octet-stream", headers=headers)


async def delete(request: Request) -> Response:
    """DELETE /files/{file_id}."""
    file_id = request.path_params["file_id"]
    state(request).files.delete(file_id)
    return respond(FileDeleted, {"id": file_id, "object": "file", "deleted": True})


ROUTES = [
    Route("/files", create, methods=["POST"]),
    Route("/files", list_files, methods=["GET"]),
    Route("/files/{file_id}", retrieve, methods=["GET"]),
    Route("/files/{file_id}", delete, methods=["DELETE"]),
    Route("/files/{file_id}/content", content, methods=["GET"]),
]

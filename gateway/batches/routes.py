"""OpenAI's Files and Batch API routes (``Authorization: Bearer <key>``)::

    POST   /v1/files                 upload (multipart: file, purpose=batch, expires_after)
    GET    /v1/files                 list (purpose, limit, after, order)
    GET    /v1/files/{id}            retrieve
    GET    /v1/files/{id}/content    download
    DELETE /v1/files/{id}            delete
    POST   /v1/batches               create (input_file_id, endpoint, completion_window,
                                     metadata, output_expires_after)
    GET    /v1/batches               list (limit, after), newest first
    GET    /v1/batches/{id}          retrieve
    POST   /v1/batches/{id}/cancel   cancel

When the gateway runs without the Redis key store (quotas off) or with
``GATEWAY_BATCHES__ENABLED=false``, every route answers 404 ``batch_api_disabled``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from gateway.api.responses import errors
from gateway.auth import authenticate
from gateway.batches.expiry import MAX_SECONDS, MIN_SECONDS
from gateway.batches.objects import INPUT_PURPOSE, BatchRecord, FileRecord
from gateway.batches.service import BatchService, CreateBatch
from gateway.errors import NotFound
from gateway.quotas.protocol import ApiKey

UPLOADS = "/v1/files"
#: The upload's multipart form, as the OpenAPI document states it (the route reads it itself).
UPLOAD_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"enum": [INPUT_PURPOSE]},
        "expires_after[anchor]": {"enum": ["created_at"]},
        "expires_after[seconds]": {
            "type": "integer",
            "minimum": MIN_SECONDS,
            "maximum": MAX_SECONDS,
        },
    },
    "dependentRequired": {
        "expires_after[anchor]": ["expires_after[seconds]"],
        "expires_after[seconds]": ["expires_after[anchor]"],
    },
}
UPLOAD_BODY = {"requestBody": {"content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}}
router = APIRouter(tags=["batches"], responses=errors(401, 404, 503))


def _service(request: Request) -> BatchService:
    service: BatchService | None = getattr(request.app.state, "batches", None)
    if service is None:
        raise NotFound("The Batch API is not enabled on this gateway.", code="batch_api_disabled")
    return service


async def _key(request: Request, service: Annotated[BatchService, Depends(_service)]) -> ApiKey:
    return await authenticate(request, service.keys)


Service = Annotated[BatchService, Depends(_service)]
Key = Annotated[ApiKey, Depends(_key)]


def _page(records: Sequence[FileRecord | BatchRecord], more: bool) -> dict[str, Any]:
    """OpenAI's list object over files or batches."""
    items = [r.to_openai() for r in records]
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": more,
    }


@router.post(UPLOADS, openapi_extra=UPLOAD_BODY, responses=errors(400, 413))
async def upload_file(request: Request, service: Service, key: Key) -> dict[str, Any]:
    return (await service.upload(request, key)).to_openai()


@router.get("/v1/files", responses=errors(400))
async def list_files(
    service: Service,
    key: Key,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    found = await service.files(key, purpose=purpose, after=after, limit=limit, order=order)
    return _page(*found)


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, service: Service, key: Key) -> dict[str, Any]:
    return (await service.file(key, file_id)).to_openai()


@router.get(
    "/v1/files/{file_id}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
async def file_content(file_id: str, service: Service, key: Key) -> FileResponse:
    record = await service.file(key, file_id)
    path = service.storage.path(record.id)
    if not path.exists():
        raise NotFound(f"The content of {file_id} is gone.", param="file_id")
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=record.filename,
    )


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, service: Service, key: Key) -> dict[str, Any]:
    record = await service.delete_file(key, file_id)
    return {"id": record.id, "object": "file", "deleted": True}


@router.post("/v1/batches", responses=errors(400, 413, 429))
async def create_batch(body: CreateBatch, service: Service, key: Key) -> dict[str, Any]:
    return (await service.create(key, body)).to_openai()


@router.get("/v1/batches", responses=errors(400))
async def list_batches(
    service: Service,
    key: Key,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    return _page(*await service.batches(key, after=after, limit=limit))


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, service: Service, key: Key) -> dict[str, Any]:
    return (await service.batch(key, batch_id)).to_openai()


@router.post("/v1/batches/{batch_id}/cancel", responses=errors(400))
async def cancel_batch(batch_id: str, service: Service, key: Key) -> dict[str, Any]:
    return (await service.cancel(key, batch_id)).to_openai()

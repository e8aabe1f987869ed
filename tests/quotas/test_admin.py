"""The admin API over a real Redis, in a minimal app with the gateway's error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.errors import GatewayError, body_for
from gateway.priority import PriorityClass
from gateway.quotas.admin import create_admin_router
from gateway.quotas.backend import RedisQuotaBackend

pytestmark = pytest.mark.anyio
ADMIN_KEY = "admin-" + "s" * 40
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def app_for(backend: RedisQuotaBackend, admin_key: str | None) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(GatewayError)
    async def on_error(request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(body_for(exc), status_code=exc.status_code, headers=exc.headers)

    app.include_router(create_admin_router(backend, admin_key))
    return app


@pytest.fixture
async def client(backend: RedisQuotaBackend) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(backend, ADMIN_KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


async def test_create_returns_the_secret_once(
    client: httpx.AsyncClient, backend: RedisQuotaBackend
) -> None:
    body = {
        "tenant": "acme",
        "allowed_models": ["gemma-3-270m"],
        "limits": {"requests_per_minute": 5, "tokens_per_minute": 1000},
        "model_limits": {"gemma-3-270m": {"max_concurrent": 2}},
    }
    created = await client.post("/admin/keys", json=body, headers=AUTH)
    assert created.status_code == 201
    data = created.json()
    secret = data["key"]
    assert (await backend.keys.authenticate(secret)).key_id == data["id"]
    assert data["limits"]["requests_per_minute"] == 5
    assert data["model_limits"]["gemma-3-270m"]["max_concurrent"] == 2

    shown = await client.get(f"/admin/keys/{data['id']}", headers=AUTH)
    listed = await client.get("/admin/keys", headers=AUTH)
    assert shown.status_code == listed.status_code == 200
    assert secret not in shown.text
    assert secret not in listed.text
    assert [k["id"] for k in listed.json()["data"]] == [data["id"]]


async def test_revoke_and_set_limits(client: httpx.AsyncClient, backend: RedisQuotaBackend) -> None:
    created = (await client.post("/admin/keys", json={"tenant": "acme"}, headers=AUTH)).json()
    key_id = created["id"]
    limits = {"limits": {"tokens_per_day": 1000}}
    changed = await client.put(f"/admin/keys/{key_id}/limits", json=limits, headers=AUTH)
    assert changed.status_code == 200
    assert changed.json()["limits"]["tokens_per_day"] == 1000
    assert (await backend.keys.get(key_id)).limits.tokens_per_day == 1000

    revoked = await client.post(f"/admin/keys/{key_id}/revoke", headers=AUTH)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert (await backend.keys.get(key_id)).revoked


async def test_priority_class_through_the_admin_api(
    client: httpx.AsyncClient, backend: RedisQuotaBackend
) -> None:
    body = {"tenant": "acme", "priority_class": "interactive"}
    created = (await client.post("/admin/keys", json=body, headers=AUTH)).json()
    assert created["priority_class"] == "interactive"
    key_id = created["id"]
    limits = {"limits": {"tokens_per_day": 10}}
    kept = await client.put(f"/admin/keys/{key_id}/limits", json=limits, headers=AUTH)
    assert kept.json()["priority_class"] == "interactive"
    changed = {**limits, "priority_class": "batch"}
    assert (await client.put(f"/admin/keys/{key_id}/limits", json=changed, headers=AUTH)).is_success
    assert (await backend.keys.get(key_id)).priority_class is PriorityClass.BATCH
    bad = {"tenant": "acme", "priority_class": "urgent"}
    refused = await client.post("/admin/keys", json=bad, headers=AUTH)
    assert refused.status_code == 422


async def test_weight_through_the_admin_api(
    client: httpx.AsyncClient, backend: RedisQuotaBackend
) -> None:
    created = (await client.post("/admin/keys", json={"tenant": "a"}, headers=AUTH)).json()
    assert created["weight"] == 1.0
    weighted = {"limits": {}, "weight": 3}
    put = await client.put(f"/admin/keys/{created['id']}/limits", json=weighted, headers=AUTH)
    assert put.json()["weight"] == 3.0
    assert (await backend.keys.get(created["id"])).weight == 3.0
    for weight in (0, -1, "2", True, 5000):
        body = {"tenant": "a", "weight": weight}
        assert (await client.post("/admin/keys", json=body, headers=AUTH)).status_code == 422


async def test_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/admin/keys/key_missing", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"


async def test_invalid_bodies_are_rejected(client: httpx.AsyncClient) -> None:
    bad = {"tenant": "acme", "limits": {"requests_per_minute": -1}}
    assert (await client.post("/admin/keys", json=bad, headers=AUTH)).status_code == 422
    extra = {"tenant": "acme", "unknown": 1}
    assert (await client.post("/admin/keys", json=extra, headers=AUTH)).status_code == 422


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_KEY}, {"X-Api-Key": ADMIN_KEY}],
)
async def test_admin_key_is_required(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/keys/x")]:
        answer = await client.request(method, path, headers=headers, json={"tenant": "x"})
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"
        assert ADMIN_KEY not in answer.text


async def test_no_admin_key_means_no_admin_api(backend: RedisQuotaBackend) -> None:
    transport = httpx.ASGITransport(app=app_for(backend, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        for headers in ({}, {"Authorization": "Bearer "}, AUTH):
            answer = await http.get("/admin/keys", headers=headers)
            assert answer.status_code == 404

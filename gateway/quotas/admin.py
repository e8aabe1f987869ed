"""The admin API for keys: create, list, show, revoke and set limits, behind an admin key.

Routes (``Authorization: Bearer <admin key>``)::

    POST /admin/keys                    create; the answer carries the secret, once
    GET  /admin/keys[?tenant=...]       list (revoked keys included)
    GET  /admin/keys/{key_id}           show
    POST /admin/keys/{key_id}/revoke    revoke (idempotent)
    PUT  /admin/keys/{key_id}/limits    replace limits (per-model overrides and the priority
                                        class too, when given)
    PUT  /admin/keys/{key_id}/guard     replace the content guard (``gateway.moderation``)
    GET  /admin/keys/{key_id}/usage     the key's usage (``gateway.quotas.usage``)

The admin key is compared with ``hmac.compare_digest``. A deployment without an
admin key has no admin API: every route answers 404, as for any unknown path, so
the API's presence reveals nothing. Refusals are ``gateway.errors`` classes.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.json_types import Count
from gateway.api.responses import errors
from gateway.errors import AuthenticationFailed, InvalidRequest, NotFound
from gateway.moderation.key_policy import GuardMode, GuardPolicy
from gateway.moderation.policies import Category
from gateway.priority import DEFAULT_CLASS, PriorityClass
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import Limits
from gateway.quotas.records import key_to_dict


class LimitsBody(BaseModel):
    """Limits of a key or of one model of a key; ``null`` is unlimited.

    JSON integers only: ``false`` or ``"5"`` are refused, never read as 0 or 5.
    """

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    tokens_per_day: Count | None = None
    max_concurrent: Count | None = None

    def to_limits(self) -> Limits:
        return Limits(**self.model_dump())


Threshold = Annotated[float, Field(ge=0, le=1, strict=True)]


class GuardBody(BaseModel):
    """A key's content guard: mode and per-category thresholds for prompts and answers."""

    model_config = ConfigDict(extra="forbid")

    mode: GuardMode = GuardMode.OFF
    prompt_thresholds: dict[Category, Threshold] = {}
    answer_thresholds: dict[Category, Threshold] = {}

    def to_policy(self) -> GuardPolicy:
        prompt = {str(c): v for c, v in self.prompt_thresholds.items()}
        answer = {str(c): v for c, v in self.answer_thresholds.items()}
        return GuardPolicy(self.mode, prompt, answer)


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1)
    name: str = ""
    allowed_models: list[str] | None = None
    allowed_capabilities: list[str] | None = None
    limits: LimitsBody = LimitsBody()
    model_limits: dict[str, LimitsBody] = {}
    priority_class: PriorityClass = DEFAULT_CLASS
    weight: float = Field(default=1.0, gt=0, le=1000, strict=True)
    guard: GuardBody = GuardBody()


class SetLimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limits: LimitsBody
    model_limits: dict[str, LimitsBody] | None = None
    priority_class: PriorityClass | None = None
    weight: float | None = Field(default=None, gt=0, le=1000, strict=True)


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _admin_guard(admin_key: str | None) -> Any:
    expected = admin_key.encode() if admin_key else None

    async def require_admin(request: Request) -> None:
        if expected is None:
            raise NotFound("Not found.")
        token = _bearer(request.headers.get("authorization"))
        if token is None or not hmac.compare_digest(token.encode(), expected):
            raise AuthenticationFailed("Invalid admin key.")

    return require_admin


def create_admin_router(backend: RedisQuotaBackend, admin_key: str | None) -> APIRouter:
    """The ``/admin/keys`` routes over ``backend.keys``, guarded by ``admin_key``."""
    router = APIRouter(
        prefix="/admin/keys",
        tags=["admin"],
        dependencies=[Depends(_admin_guard(admin_key))],
        responses=errors(401, 404, 503),
    )
    keys = backend.keys

    @router.post("", status_code=201, responses=errors(400, 413))
    async def create_key(body: CreateKeyBody) -> dict[str, Any]:
        try:
            secret, key = await keys.create(
                tenant=body.tenant,
                name=body.name,
                limits=body.limits.to_limits(),
                model_limits={m: lim.to_limits() for m, lim in body.model_limits.items()},
                allowed_models=body.allowed_models,
                allowed_capabilities=body.allowed_capabilities,
                priority_class=body.priority_class,
                weight=body.weight,
                guard=body.guard.to_policy(),
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return {**key_to_dict(key), "key": secret}

    @router.get("")
    async def list_keys(tenant: str | None = None) -> dict[str, Any]:
        found = await keys.list(tenant=tenant)
        return {"object": "list", "data": [key_to_dict(k) for k in found]}

    @router.get("/{key_id}")
    async def show_key(key_id: str) -> dict[str, Any]:
        return key_to_dict(await keys.get(key_id))

    @router.post("/{key_id}/revoke")
    async def revoke_key(key_id: str) -> dict[str, Any]:
        return key_to_dict(await keys.revoke(key_id))

    @router.get("/{key_id}/usage")
    async def key_usage(key_id: str) -> dict[str, Any]:
        return (await backend.gate.usage(await keys.get(key_id))).to_dict()

    @router.put("/{key_id}/limits", responses=errors(400, 413))
    async def set_limits(key_id: str, body: SetLimitsBody) -> dict[str, Any]:
        models = body.model_limits
        key = await keys.set_limits(
            key_id,
            body.limits.to_limits(),
            None if models is None else {m: lim.to_limits() for m, lim in models.items()},
            body.priority_class,
            body.weight,
        )
        return key_to_dict(key)

    @router.put("/{key_id}/guard", responses=errors(400, 413))
    async def set_guard(key_id: str, body: GuardBody) -> dict[str, Any]:
        return key_to_dict(await keys.set_guard(key_id, body.to_policy()))

    return router

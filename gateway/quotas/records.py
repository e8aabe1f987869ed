"""How an API key is written down: the JSON record in Redis and the admin API's view of it.

The record never holds the secret, only what ``ApiKey`` holds; the store files it
under the secret's SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.moderation.key_policy import GuardPolicy
from gateway.priority import DEFAULT_CLASS, PriorityClass
from gateway.quotas.protocol import ApiKey, Limits

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "max_concurrent")


def limits_to_dict(limits: Limits) -> dict[str, int | None]:
    return {name: getattr(limits, name) for name in LIMIT_FIELDS}


def limits_from_dict(data: Mapping[str, Any] | None) -> Limits:
    data = data or {}
    values = {name: data.get(name) for name in LIMIT_FIELDS}
    for name, value in values.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer or null")
    return Limits(**values)


def _names(values: Iterable[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    """The JSON-ready view of a key (the stored record and the admin API's answer)."""
    return {
        "id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "hint": key.hint,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "allowed_models": _names(key.allowed_models),
        "allowed_capabilities": _names(key.allowed_capabilities),
        "priority_class": key.priority_class.value,
        "weight": key.weight,
        "guard": key.guard.to_dict(),
        "limits": limits_to_dict(key.limits),
        "model_limits": {m: limits_to_dict(lim) for m, lim in sorted(key.model_limits.items())},
    }


def _frozen(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def key_from_dict(data: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=data["id"],
        tenant=data["tenant"],
        name=data.get("name", ""),
        hint=data.get("hint", ""),
        created_at=float(data.get("created_at", 0.0)),
        revoked_at=data.get("revoked_at"),
        allowed_models=_frozen(data.get("allowed_models")),
        allowed_capabilities=_frozen(data.get("allowed_capabilities")),
        limits=limits_from_dict(data.get("limits")),
        model_limits={m: limits_from_dict(v) for m, v in (data.get("model_limits") or {}).items()},
        priority_class=PriorityClass(data.get("priority_class") or DEFAULT_CLASS),
        weight=float(data.get("weight") or 1.0),
        guard=GuardPolicy.from_dict(data.get("guard")),
    )


def dumps(key: ApiKey) -> str:
    return json.dumps(key_to_dict(key), separators=(",", ":"), sort_keys=True)


def loads(raw: bytes | str) -> ApiKey:
    return key_from_dict(json.loads(raw))

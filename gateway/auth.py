"""Who is calling: the Bearer key, and what it may use.

With quotas disabled every request is the anonymous key, unlimited, through
``OpenGate`` (a ``QuotaGate`` that admits everything and records nothing). The key of
an API request is authenticated from its headers before its body is read
(``gateway.header_auth``) and kept in the request's scope; ``authenticate`` reuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import Request
from starlette.types import Scope

from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.quotas.protocol import Admission, ApiKey, KeyStore
from gateway.telemetry.http_metrics import request_facts

ANONYMOUS = ApiKey(key_id="anonymous", tenant="anonymous")
STATE_KEY = "api_key"


class AnonymousKeys:
    """A ``KeyStore`` for deployments without keys: everyone is ``ANONYMOUS``."""

    async def authenticate(self, secret: str) -> ApiKey:
        return ANONYMOUS


class OpenGate:
    """A ``QuotaGate`` without limits."""

    async def admit(self, key: ApiKey, model: str, reserve_tokens: int) -> Admission:
        return Admission(key.key_id, model, lease_id="", reserved_tokens=reserve_tokens)

    async def renew(self, admission: Admission) -> None:
        return None

    async def settle(self, admission: Admission, used_tokens: int) -> None:
        return None

    async def release(self, admission: Admission) -> None:
        return None

    async def healthy(self) -> bool:
        return True


def bearer_secret(headers: Mapping[str, str]) -> str:
    """The secret of ``Authorization: Bearer <secret>`` (401 when absent)."""
    scheme, _, secret = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed(
            "Missing API key: send 'Authorization: Bearer <key>'.",
            headers={"www-authenticate": "Bearer"},
        )
    return secret.strip()


def remember(scope: Scope, key: ApiKey) -> None:
    """Keep the key authenticated for this request in its scope."""
    scope.setdefault("state", {})[STATE_KEY] = key


def remembered(scope: Scope) -> ApiKey | None:
    """The key already authenticated for this request, if any."""
    key = scope.get("state", {}).get(STATE_KEY)
    return key if isinstance(key, ApiKey) else None


async def authenticate(request: Request, keys: KeyStore) -> ApiKey:
    """The request's key (its tenant and class noted for the request's metrics)."""
    if isinstance(keys, AnonymousKeys):
        key = ANONYMOUS
    else:
        key = remembered(request.scope) or await keys.authenticate(bearer_secret(request.headers))
    facts = request_facts(request)
    facts.tenant, facts.priority_class = key.tenant, key.priority_class.value
    return key


def check_capabilities(key: ApiKey, capabilities: Iterable[str]) -> None:
    needed = set(capabilities)
    if not key.allows_capabilities(needed):
        refused = sorted(c for c in needed if not key.allows_capabilities((c,)))
        raise PermissionDenied(f"This API key may not use: {', '.join(refused)}.")


def check_model(key: ApiKey, requested: str, candidates: Iterable[str]) -> list[str]:
    """The candidates the key may use, in order (403 when none)."""
    allowed = [m for m in candidates if key.allows_model(m)]
    if not allowed:
        raise PermissionDenied(f"This API key may not use the model '{requested}'.", param="model")
    return allowed

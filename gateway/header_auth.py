"""A pure-ASGI middleware authenticating API requests from their headers, before their body.

The key is in ``Authorization``, so a request without a valid one is refused (401, or
503 when the key store cannot answer) before a byte of its body is read; the key it
authenticated is kept in the scope (``gateway.auth.remember``) for the handlers. Every
``/v1/`` path needs a key except the public ``/v1/models``; other paths (health,
metrics, ``/admin`` with its own key) pass untouched, as every path does when keys are
off. Requests that pass without a key are the "unauthenticated" ones whose bodies
``gateway.body_limit`` caps per client address.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import auth
from gateway.errors import GatewayError
from gateway.http_errors import gateway_error_response
from gateway.quotas.protocol import KeyStore

API_PREFIX = "/v1/"
#: API paths (and the paths below them) any caller may use.
PUBLIC_PATHS: tuple[str, ...] = ("/v1/models",)


def needs_key(path: str, public: Collection[str] = PUBLIC_PATHS) -> bool:
    if not path.startswith(API_PREFIX):
        return False
    return not any(path == p or path.startswith(p + "/") for p in public)


class HeaderAuthMiddleware:
    """Authenticates the Bearer key of ``/v1/`` requests before the app reads their body.

    ``keys`` returns the app's key store (built by its lifespan, after this middleware).
    """

    def __init__(self, app: ASGIApp, *, keys: Callable[[], KeyStore]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_key(scope["path"]):
            keys = self.keys()
            if not isinstance(keys, auth.AnonymousKeys):
                try:
                    key = await keys.authenticate(auth.bearer_secret(Headers(scope=scope)))
                except GatewayError as exc:
                    await gateway_error_response(exc)(scope, receive, send)
                    return
                auth.remember(scope, key)
        await self.app(scope, receive, send)

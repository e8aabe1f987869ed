"""The gateway's one error tree, and its mapping to OpenAI-shaped HTTP errors.

Every refusal the gateway makes is one of these classes; `install_error_handlers`
is the only place that turns them into responses, and `error_body` the only place
that writes the OpenAI error shape (streams use it for their error event too).

    GatewayError                      500 server_error
    ├── InvalidRequest                400 invalid_request_error
    │   ├── MissingCapability         400 (code: model_capability_missing)
    │   ├── ContextLengthExceeded     400 (code: context_length_exceeded)
    │   ├── ContentPolicyViolation    400 (code: content_policy_violation)
    │   ├── InvalidMedia              400 (code: invalid_image / invalid_audio)
    │   └── StorageLimitExceeded      400 (code: too_many_files / file_storage_limit_exceeded)
    ├── RequestTimeout                408 invalid_request_error (code: request_timeout)
    ├── PayloadTooLarge               413 invalid_request_error
    ├── HeadersTooLarge               431 invalid_request_error (written by gateway.server)
    ├── AuthenticationFailed          401 authentication_error (code: invalid_api_key)
    ├── PermissionDenied              403 permission_error
    ├── NotFound                      404 invalid_request_error
    │   └── ModelNotFound             404 (code: model_not_found)
    ├── ClientDisconnected            499 client_closed_request (nobody reads it)
    ├── RateLimited                   429 rate_limit_exceeded  (Retry-After)
    │   ├── QuotaExhausted            429 insufficient_quota   (Retry-After)
    │   └── PeerBodyBudgetExceeded    429 (code: peer_body_bytes_in_flight)
    ├── UpstreamError                 502 upstream_error
    │   └── UpstreamTimeout           504 upstream_error (code: timeout)
    ├── ServiceUnavailable            503 service_unavailable
    │   ├── UpstreamUnavailable       503 (code: no_healthy_upstream)
    │   ├── QuotaBackendUnavailable   503 (code: quota_backend_unavailable)
    │   ├── MediaDecodeBusy           503 (code: media_decode_busy, Retry-After)
    │   ├── GuardUnavailable          503 (code: guard_unavailable, Retry-After)
    │   └── BodyBudgetExceeded        503 (code: body_bytes_in_flight, Retry-After)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway turns into an HTTP response."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(GatewayError):
    """The request is malformed or asks for something the gateway refuses."""

    status_code = 400
    error_type = "invalid_request_error"


class MissingCapability(InvalidRequest):
    """The named model lacks a capability the request needs."""

    default_code = "model_capability_missing"


class ContextLengthExceeded(InvalidRequest):
    """Prompt tokens plus max_tokens exceed every eligible model's context."""

    default_code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    """The content guard refused a prompt or an answer (``gateway.moderation.guard``)."""

    default_code = "content_policy_violation"


class InvalidMedia(InvalidRequest):
    """An image or audio part failed validation (format, size, pixels, duration)."""

    default_code = "invalid_media"


class StorageLimitExceeded(InvalidRequest):
    """An upload would take its key past the files or bytes it may keep stored."""

    default_code = "file_storage_limit_exceeded"


class RequestTimeout(GatewayError):
    """The request's headers or body did not arrive in time; the connection is closed."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("connection", "close")


class PayloadTooLarge(GatewayError):
    """The request body is larger than the configured limit."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class HeadersTooLarge(GatewayError):
    """The request line and headers are longer than the server accepts."""

    status_code = 431
    error_type = "invalid_request_error"
    default_code = "headers_too_large"


class AuthenticationFailed(GatewayError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The key is valid but may not use this model, capability or endpoint."""

    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(GatewayError):
    """A resource (batch, file, key) does not exist or belongs to another key."""

    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    """The request names a model, alias or adapter the gateway does not know."""

    default_code = "model_not_found"


class ClientDisconnected(GatewayError):
    """The client left before its answer was ready; the upstream call was abandoned."""

    status_code = 499
    error_type = "client_closed_request"
    default_code = "client_closed_request"


class RateLimited(GatewayError):
    """A per-minute limit (requests, tokens, concurrency) refuses the request for now."""

    status_code = 429
    error_type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.headers.setdefault("retry-after", str(max(1, math.ceil(retry_after))))
        self.headers.setdefault("retry-after-ms", str(max(0, math.ceil(retry_after * 1000))))


class QuotaExhausted(RateLimited):
    """A long-window budget (tokens per day) is spent."""

    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class PeerBodyBudgetExceeded(RateLimited):
    """One unauthenticated client address holds too many request-body bytes at once."""

    default_code = "peer_body_bytes_in_flight"


class UpstreamError(GatewayError):
    """The serving application answered with a server error or broke the protocol."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """The serving application did not answer in time."""

    status_code = 504
    default_code = "timeout"


class ServiceUnavailable(GatewayError):
    """The gateway cannot serve right now; retrying later may succeed."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class UpstreamUnavailable(ServiceUnavailable):
    """No healthy variant can take the request (after fallback)."""

    default_code = "no_healthy_upstream"


class QuotaBackendUnavailable(ServiceUnavailable):
    """Redis is down or slow and the deployment's policy is fail-closed."""

    default_code = "quota_backend_unavailable"


class GuardUnavailable(ServiceUnavailable):
    """A guarded key's content could not be screened (no classifier answered): refused."""

    default_code = "guard_unavailable"


class MediaDecodeBusy(ServiceUnavailable):
    """The process's decode memory stayed full for as long as a media part may wait."""

    default_code = "media_decode_busy"


class BodyBudgetExceeded(ServiceUnavailable):
    """All requests together hold as many request-body bytes as the process allows."""

    default_code = "body_bytes_in_flight"


def error_body(
    message: str,
    *,
    error_type: str = "server_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def body_for(exc: GatewayError) -> dict[str, Any]:
    """The OpenAI error body for one of our errors."""
    return error_body(exc.message, error_type=exc.error_type, param=exc.param, code=exc.code)

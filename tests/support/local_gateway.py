"""A gateway in this process in front of a running Serve application, and keys for it.

Keys, quotas and usage live in the shared Redis under a prefix of the caller's own, which
is deleted when the gateway stops.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from openai import OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix


@contextmanager
def gateway_in_front(
    serve_base_url: str, *, name: str, admin_key: str, **settings: Any
) -> Iterator[str]:
    """The gateway's base URL; ``settings`` add to the upstream, admin key and quota ones."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:10]}:"
    validated = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_base_url),
            "admin_key": admin_key,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
            **settings,
        }
    )
    try:
        with serve_in_thread(create_app(validated)) as url:
            yield url
    finally:
        delete_prefix(prefix)


def key_client(gateway: str, admin_key: str, tenant: str, **fields: Any) -> OpenAI:
    """An openai client with a new key of ``tenant`` (``fields``: the admin API's)."""
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": tenant, **fields},
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert created.status_code == 201, created.text
    return OpenAI(
        base_url=gateway + "/v1", api_key=created.json()["key"], max_retries=0, timeout=300
    )


def usage_by_model(api: OpenAI) -> dict[str, Any]:
    """The calling key's usage today, per model (``GET /v1/usage``)."""
    answer = httpx.get(f"{api.base_url}usage", headers={"authorization": f"Bearer {api.api_key}"})
    assert answer.status_code == 200, answer.text
    return {row["model"]: row["day"] for row in answer.json()["data"]}

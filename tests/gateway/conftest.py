from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings, RequestLimits
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import StubUpstream

MAX_BODY = 4 * 1024 * 1024
MAX_MESSAGES = 8


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as upstream:
        yield upstream


def gateway_settings(upstream_url: str, **overrides: object) -> GatewaySettings:
    limits = RequestLimits.model_validate(
        {"max_body_bytes": MAX_BODY, "max_messages": MAX_MESSAGES, "max_tokens": 1024}
    )
    data = {
        "upstream_url": upstream_url,
        "quota": {"enabled": False},
        "limits": limits,
        "unhealthy_cooldown": 30.0,
        **overrides,
    }
    return GatewaySettings.model_validate(data)


@pytest.fixture
def gateway_url(stub: StubUpstream) -> Iterator[str]:
    with serve_in_thread(create_app(gateway_settings(stub.base_url))) as url:
        yield url


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


@pytest.fixture
def openai_client(gateway_url: str) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=gateway_url + "/v1", api_key="unused", max_retries=0, timeout=30
    ) as client:
        yield client

"""``/v1/embeddings`` through the gateway with the openai client, in front of the stub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import EMBEDDING_MODEL, EMBEDDING_SIZE, TEXT_MODEL, StubUpstream

ADMIN = "admin-secret-for-embeddings"
MAX_INPUTS = 4


@pytest.fixture
def gateway(stub: StubUpstream) -> Iterator[str]:
    with unique_prefix("gw-embed") as prefix:
        quota = {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 1.0}
        settings = gateway_settings(stub.base_url, quota=quota, admin_key=ADMIN)
        settings.limits.max_embedding_inputs = MAX_INPUTS
        with serve_in_thread(create_app(settings)) as url:
            yield url


@pytest.fixture
def secret(gateway: str) -> str:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": "embed", "limits": {"tokens_per_day": 10_000}},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
def api(gateway: str, secret: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0, timeout=30) as client:
        yield client


def test_single_batch_dimensions_and_both_encodings(api: OpenAI, stub: StubUpstream) -> None:
    one = api.embeddings.create(model=EMBEDDING_MODEL, input="a lighthouse")
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == EMBEDDING_SIZE
    assert one.model == EMBEDDING_MODEL
    batch = api.embeddings.create(
        model="auto", input=["one", "two", "three"], dimensions=4, encoding_format="float"
    )
    assert [d.index for d in batch.data] == [0, 1, 2]
    assert all(len(d.embedding) == 4 for d in batch.data)
    assert batch.model == EMBEDDING_MODEL  # auto routes an embeddings request to its model
    tokens = api.embeddings.create(model=EMBEDDING_MODEL, input=[[5, 6, 7], [8]])
    assert len(tokens.data) == 2
    sent = [body for path, body in stub.requests if path == "/v1/embeddings"]
    assert sent[0]["encoding_format"] == "base64"  # the client's default, decoded by it
    assert sent[1]["dimensions"] == 4
    assert sent[2]["input"] == [[5, 6, 7], [8]]
    assert all(body["model"] == EMBEDDING_MODEL for body in sent)


def test_the_key_is_charged_the_input_tokens(api: OpenAI, gateway: str, secret: str) -> None:
    answers = [
        api.embeddings.create(model=EMBEDDING_MODEL, input="a lighthouse keeper's log"),
        api.embeddings.create(model=EMBEDDING_MODEL, input=[[1, 2, 3, 4, 5]]),
    ]
    charged = sum(a.usage.total_tokens for a in answers)
    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"}).json()
    day = {"requests": 2, "tokens": charged, "batch_tokens": 0}
    assert usage["data"] == [{"model": EMBEDDING_MODEL, "minute": day, "day": day}]
    assert usage["limits"][0]["tokens_per_day"]["used"] == charged


def test_capabilities_keep_generation_and_embeddings_apart(gateway: str, secret: str) -> None:
    headers = {"authorization": f"Bearer {secret}"}
    chat = {"model": EMBEDDING_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(f"{gateway}/v1/chat/completions", json=chat, headers=headers)
    assert refused.status_code == 400
    assert "text" in refused.json()["error"]["message"]
    embed = {"model": TEXT_MODEL, "input": "hi"}
    refused = httpx.post(f"{gateway}/v1/embeddings", json=embed, headers=headers)
    assert refused.status_code == 400
    assert EMBEDDING_MODEL in refused.json()["error"]["message"]
    auto = {**chat, "model": "auto", "max_tokens": 4}
    answered = httpx.post(f"{gateway}/v1/chat/completions", json=auto, headers=headers)
    assert answered.status_code == 200
    assert answered.json()["model"] != EMBEDDING_MODEL


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["fine", ""]}, "input"),
        ({"input": [[1, 2], []]}, "input"),
        ({"input": ["x"] * (MAX_INPUTS + 1)}, "input"),
        ({"input": 5}, "input"),
        ({"input": [1.5, 2]}, "input"),
        ({"input": [True]}, "input"),
        ({"input": [-1]}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "dimensions": "8"}, "dimensions"),
        ({"input": "x", "encoding_format": "bytes"}, "encoding_format"),
        ({"input": "x", "stream": True}, "stream"),
        ({}, "input"),
    ],
)
def test_bad_input_is_a_400_with_an_openai_error_and_nothing_is_sent(
    gateway: str, secret: str, stub: StubUpstream, body: dict[str, Any], param: str
) -> None:
    headers = {"authorization": f"Bearer {secret}"}
    answer = httpx.post(
        f"{gateway}/v1/embeddings", json={"model": EMBEDDING_MODEL, **body}, headers=headers
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param in (error["param"] or "")
    assert not [p for p, _ in stub.requests if p == "/v1/embeddings"]
    ok = httpx.post(
        f"{gateway}/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "x"}, headers=headers
    )
    assert ok.status_code == 200  # the gateway keeps serving

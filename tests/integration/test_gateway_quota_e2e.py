"""Token quotas through the gateway settle to the usage the real engine reports.

The gateway asks Ray Serve LLM for usage on every stream chunk; a finished stream is charged
exactly the engine's usage, and a stream the client abandons is charged the engine's usage
up to that point: the exact prompt tokens (not the gateway's byte-based estimate) plus the
tokens generated before the cancel reached the engine.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from gateway import accounting
from gateway.app import create_app
from gateway.routing import chat_needs
from gateway.settings import GatewaySettings
from gateway.speech.chat import CHAT_PATH
from gemma_serving.cli import app
from serving.runner import LocalServing, unfinished_requests
from tests.integration.conftest import EMBEDDING_MODEL, MEDIA_MODEL, TEXT_MODEL
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-quota-e2e"
TPM = 1_000_000
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    """The module's Redis key prefix, deleted afterwards."""
    name = f"test-quota-e2e-{uuid.uuid4().hex[:10]}:"
    yield name
    delete_prefix(name)


@pytest.fixture(scope="module")
def gateway(serve_stack: LocalServing, prefix: str) -> Iterator[httpx.Client]:
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
        }
    )
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        yield client


@pytest.fixture
def key(gateway: httpx.Client) -> dict[str, str]:
    created = gateway.post(
        "/admin/keys",
        json={"tenant": "quota-e2e", "limits": {"tokens_per_minute": TPM}},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['key']}"}


def _probe(gateway: httpx.Client, key: dict[str, str]) -> tuple[int, int]:
    """Remaining tokens this minute (after the probe's own reservation) and the probe's
    usage. Two identical probes reserve the same amount, so the difference of their
    headers is what was charged in between plus the first probe's usage."""
    probe = gateway.post(
        "/v1/chat/completions",
        json={"model": TEXT_MODEL, "messages": [{"role": "user", "content": "."}], "max_tokens": 1},
        headers=key,
    )
    assert probe.status_code == 200, probe.text
    return int(probe.headers["x-ratelimit-remaining-tokens"]), probe.json()["usage"]["total_tokens"]


def _charged_between(first: tuple[int, int], second: tuple[int, int]) -> int:
    return first[0] - second[0] - first[1]


def _prompt_tokens(gateway: httpx.Client, key: dict[str, str]) -> int:
    answer = gateway.post(
        "/v1/chat/completions",
        json={"model": TEXT_MODEL, "messages": PROMPT, "max_tokens": 1},
        headers=key,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["usage"]["prompt_tokens"])


def test_a_finished_stream_is_charged_the_engine_usage(
    gateway: httpx.Client, key: dict[str, str]
) -> None:
    before = _probe(gateway, key)
    body = {
        "model": TEXT_MODEL,
        "messages": PROMPT,
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage = None
    with gateway.stream("POST", "/v1/chat/completions", json=body, headers=key) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {") and '"usage":{' in line.replace(" ", ""):
                usage = httpx.Response(200, content=line[6:]).json()["usage"]
    assert usage is not None
    assert _charged_between(before, _probe(gateway, key)) == usage["total_tokens"]


def test_an_abandoned_stream_is_charged_what_the_engine_generated(
    gateway: httpx.Client, key: dict[str, str]
) -> None:
    prompt_tokens = _prompt_tokens(gateway, key)
    before = _probe(gateway, key)
    body = {
        "model": TEXT_MODEL,
        "messages": PROMPT,
        "max_tokens": 400,
        "ignore_eos": True,
        "stream": True,
    }
    received = 0
    with gateway.stream("POST", "/v1/chat/completions", json=body, headers=key) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                chunk = httpx.Response(200, content=line[6:]).json()
                received += sum(bool(c["delta"].get("content")) for c in chunk["choices"])
            if received >= 5:
                break
    time.sleep(2)  # the gateway settles once the cancel has reached the engine
    generated = _charged_between(before, _probe(gateway, key)) - prompt_tokens
    assert received <= generated < 400, (generated, prompt_tokens, received)


def test_serve_reports_usage_on_every_stream_chunk_when_asked(serve_stack: LocalServing) -> None:
    """What the gateway relies on for abandoned streams: usage on each chunk."""
    body = {
        "model": TEXT_MODEL,
        "messages": PROMPT,
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    counts = []
    with httpx.stream(
        "POST", f"{serve_stack.base_url}/chat/completions", json=body, timeout=300
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = httpx.Response(200, content=line[6:]).json()
                if chunk["choices"]:
                    counts.append(chunk["usage"]["completion_tokens"])
    assert len(counts) >= 2
    assert counts == sorted(counts)
    assert counts[-1] >= 1


def test_an_abandoned_non_streamed_chat_stops_in_the_engine_and_is_settled(
    gateway: httpx.Client,
) -> None:
    """A client that gives up on a long answer after 1 s: the engine aborts it within 1 s,
    the key's concurrency slot is free again and it is charged its reservation."""
    created = gateway.post(
        "/admin/keys",
        json={"tenant": "quota-e2e", "limits": {"tokens_per_minute": TPM, "max_concurrent": 1}},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    key = {"authorization": f"Bearer {created.json()['key']}"}
    before = _probe(gateway, key)
    body = {"model": TEXT_MODEL, "messages": PROMPT, "max_tokens": 1500, "ignore_eos": True}
    gave_up: list[BaseException] = []

    def give_up_after_one_second() -> None:
        timeout = httpx.Timeout(300, read=1.0)
        try:
            with httpx.Client(base_url=gateway.base_url, timeout=timeout) as client:
                client.post("/v1/chat/completions", json=body, headers=key)
        except httpx.ReadTimeout as exc:  # the client closes its connection
            gave_up.append(exc)

    client = threading.Thread(target=give_up_after_one_second)
    client.start()
    deadline = time.monotonic() + 30
    while unfinished_requests(TEXT_MODEL) == 0:
        assert time.monotonic() < deadline, "the engine never took the request"
        time.sleep(0.05)
    client.join()
    assert gave_up, "the answer came before the client gave up"
    left = time.monotonic()
    while unfinished_requests(TEXT_MODEL) > 0:
        assert time.monotonic() - left < 1.0, "the engine kept generating the abandoned answer"
        time.sleep(0.05)
    after = _probe(gateway, key)  # admitted at once: the one concurrency slot is free
    needs = chat_needs(body)
    reserved = accounting.reservation(needs, accounting.budget(CHAT_PATH, needs, 1024))
    assert _charged_between(before, after) == reserved


WORD = "[a-z]{1,6}"
#: A thinking answer in Gemma 4's format: a thought channel, then the answer.
THINKING = "\n".join(
    [
        'root ::= "<|channel>thought\\n" words "<channel|>" words',
        f'words ::= {WORD} (" " {WORD}){{0,3}}',
    ]
)


def test_a_thinking_answer_comes_apart_from_its_content_and_is_charged_in_full(
    gateway: httpx.Client, key: dict[str, str]
) -> None:
    """``reasoning_effort`` on the Gemma 4 fixture: vLLM's gemma4 reasoning parser splits the
    thought from the answer, in a stream too, and the quota is charged every token.

    Random weights never open a thought channel: the grammar (vLLM's ``structured_outputs``,
    which the fixture's engine applies inside thinking too) makes this answer think.
    """
    body = {
        "model": MEDIA_MODEL,
        "messages": [{"role": "user", "content": "Think, then answer."}],
        "reasoning_effort": "low",
        "structured_outputs": {"grammar": THINKING},
        # <|channel> and <channel|> as Gemma 4's special tokens (ids 100, 101), as a trained
        # model writes them: the grammar also accepts them spelled out in ordinary tokens,
        # which vLLM's streaming reasoning parser (it matches the token ids) does not see.
        "logit_bias": {"100": 50, "101": 50},
        "max_tokens": 96,
        "temperature": 0.0,
    }
    before = _probe(gateway, key)
    answer = gateway.post("/v1/chat/completions", json=body, headers=key)
    assert answer.status_code == 200, answer.text
    after = _probe(gateway, key)
    message, usage = answer.json()["choices"][0]["message"], answer.json()["usage"]
    thought = message.get("reasoning") or message.get("reasoning_content")
    assert thought
    assert message["content"]
    assert "channel" not in thought + message["content"]
    assert _charged_between(before, after) == usage["total_tokens"]
    assert usage["completion_tokens"] > len(message["content"].split())

    streamed = {"reasoning": "", "content": ""}
    streamed_usage = None
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with gateway.stream("POST", "/v1/chat/completions", json=stream, headers=key) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = httpx.Response(200, content=line[6:]).json()
            streamed_usage = chunk.get("usage") or streamed_usage
            for choice in chunk["choices"]:
                delta = choice["delta"]
                streamed["reasoning"] += (
                    delta.get("reasoning") or delta.get("reasoning_content") or ""
                )
                streamed["content"] += delta.get("content") or ""
    assert streamed == {"reasoning": thought, "content": message["content"]}
    assert streamed_usage is not None
    assert streamed_usage["completion_tokens"] == usage["completion_tokens"]
    assert _charged_between(after, _probe(gateway, key)) == streamed_usage["total_tokens"]


def test_usage_read_by_the_key_and_the_cli_is_what_the_engine_reported(
    gateway: httpx.Client, prefix: str
) -> None:
    admin = {"authorization": f"Bearer {ADMIN}"}
    made = [
        gateway.post("/admin/keys", json={"tenant": "usage-e2e", **limits}, headers=admin).json()
        for limits in ({"limits": {"tokens_per_day": 1_000_000}}, {})
    ]
    mine, theirs = made
    base_url = str(gateway.base_url).rstrip("/") + "/v1"
    with OpenAI(base_url=base_url, api_key=mine["key"], max_retries=0, timeout=300) as api:
        chat = api.chat.completions.create(model=TEXT_MODEL, messages=PROMPT, max_tokens=8)
        text = api.completions.create(model=TEXT_MODEL, prompt="A lighthouse", max_tokens=8)
        stream = api.chat.completions.create(
            model=TEXT_MODEL,
            messages=PROMPT,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = [c.usage.total_tokens for c in stream if c.usage]
    assert chat.usage is not None
    assert text.usage is not None
    reported = chat.usage.total_tokens + text.usage.total_tokens + sum(streamed)
    with OpenAI(base_url=base_url, api_key=theirs["key"], max_retries=0, timeout=300) as api:
        api.completions.create(model=TEXT_MODEL, prompt="Another tenant", max_tokens=4)

    read = gateway.get("/v1/usage", headers={"authorization": f"Bearer {mine['key']}"})
    assert read.status_code == 200, read.text
    usage = read.json()
    assert usage["key_id"] == mine["id"]
    [row] = usage["data"]
    assert row["model"] == TEXT_MODEL
    assert row["day"] == {"requests": 3, "tokens": reported, "batch_tokens": 0}
    assert usage["limits"][0]["tokens_per_day"]["used"] == reported

    cli = CliRunner().invoke(
        app,
        ["keys", "usage", mine["id"], "--json", "--redis-url", SHARED_REDIS_URL],
        env={"GATEWAY_QUOTA__KEY_PREFIX": prefix},
    )
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["data"][0]["day"] == row["day"]
    other = gateway.get("/v1/usage", headers={"authorization": f"Bearer {theirs['key']}"}).json()
    assert other["key_id"] == theirs["id"]
    assert [r["day"]["requests"] for r in other["data"]] == [1]


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_embeddings_on_the_embeddinggemma_fixture_are_shaped_and_charged(
    gateway: httpx.Client,
) -> None:
    """Single and batch inputs, token arrays, Matryoshka ``dimensions`` (truncated and
    normalized again by the engine), base64; the key is charged the engine's input tokens."""
    admin = {"authorization": f"Bearer {ADMIN}"}
    made = gateway.post("/admin/keys", json={"tenant": "embed-e2e"}, headers=admin).json()
    base_url = str(gateway.base_url).rstrip("/") + "/v1"
    with OpenAI(base_url=base_url, api_key=made["key"], max_retries=0, timeout=300) as api:
        one = api.embeddings.create(
            model=EMBEDDING_MODEL, input="A lighthouse", encoding_format="float"
        )
        batch = api.embeddings.create(model="auto", input=["one", "two", "three"])
        small = api.embeddings.create(
            model=EMBEDDING_MODEL, input=[[2, 651, 3001], [2, 17]], dimensions=16
        )
    answers = [one, batch, small]
    [full] = one.data
    assert len(full.embedding) == 64
    assert abs(_norm(full.embedding) - 1.0) < 1e-3
    assert batch.model == EMBEDDING_MODEL
    assert [len(d.embedding) for d in batch.data] == [64, 64, 64]
    assert [len(d.embedding) for d in small.data] == [16, 16]
    assert all(abs(_norm(d.embedding) - 1.0) < 1e-3 for d in small.data)
    assert small.usage.prompt_tokens == 5

    headers = {"authorization": f"Bearer {made['key']}"}
    body = {"model": EMBEDDING_MODEL, "input": "A lighthouse", "encoding_format": "base64"}
    raw = gateway.post("/v1/embeddings", json=body, headers=headers)
    assert raw.status_code == 200, raw.text
    packed = base64.b64decode(raw.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert decoded == pytest.approx(full.embedding, abs=1e-5)
    charged = sum(a.usage.total_tokens for a in answers) + raw.json()["usage"]["total_tokens"]

    odd = gateway.post("/v1/embeddings", json={**body, "dimensions": 20}, headers=headers)
    assert odd.status_code == 400  # not a Matryoshka size of the model: the engine's refusal
    assert "error" in odd.json()
    usage = gateway.get("/v1/usage", headers=headers).json()
    [row] = usage["data"]
    assert row["model"] == EMBEDDING_MODEL
    assert row["day"] == {"requests": 5, "tokens": charged, "batch_tokens": 0}

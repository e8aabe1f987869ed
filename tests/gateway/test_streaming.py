"""The SSE relay: errors after the first byte, and clients that leave."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.stub_upstream import StubUpstream

BODY = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_upstream_failure_mid_stream_ends_with_error_event_and_done(
    http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.fail_after_chunks = 2
    with http.stream("POST", "/v1/chat/completions", json=BODY) as response:
        assert response.status_code == 200
        data = events(response)
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["type"] == "upstream_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert sum(1 for d in data if '"choices"' in d) == 2
    assert 'gateway_stream_errors_total{served="gemma-3-270m"} 1.0' in http.get("/metrics").text
    assert http.post("/v1/chat/completions", json={**BODY, "stream": False}).status_code == 200


def test_finished_streams_keep_their_upstream_connection(
    http: httpx.Client, stub: StubUpstream
) -> None:
    """A stream read to its end returns its connection to the pool for the next request."""
    for _ in range(5):
        with http.stream("POST", "/v1/chat/completions", json=BODY) as response:
            assert events(response)[-1] == "[DONE]"
    assert len(set(stub.peers[-5:])) == 1


def test_a_client_leaving_at_done_keeps_the_upstream_connection(
    gateway_url: str, stub: StubUpstream
) -> None:
    """Clients hang up as soon as ``[DONE]`` arrives; the relay still reads the stream's end.

    The stub ends its body a moment after ``[DONE]``, so each client is gone before the
    gateway has read the last bytes: the connection survives only if that read does.
    """
    stub.knobs.after_done_delay = 0.3
    for _ in range(3):
        with (
            httpx.Client(base_url=gateway_url, timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json=BODY) as response,
        ):
            lines = response.iter_lines()
            assert any(line == "data: [DONE]" for line in lines)  # then hang up at once
        time.sleep(1.0)  # pacing: the previous stream's end is read before the next request
    assert stub.cancelled == []
    assert len(set(stub.peers[-3:])) == 1


def test_client_disconnect_cancels_the_upstream_stream(
    gateway_url: str, stub: StubUpstream
) -> None:
    stub.knobs.chunk_delay = 0.5
    stub.knobs.chunks = 20
    with (
        httpx.Client(base_url=gateway_url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=BODY) as response,
    ):
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    assert stub.wait_cancelled()
    assert stub.cancelled == ["gemma-3-270m"]
    metrics = httpx.get(gateway_url + "/metrics").text
    assert 'gateway_client_disconnects_total{served="gemma-3-270m"} 1.0' in metrics

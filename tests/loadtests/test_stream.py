"""Token timings read from an SSE answer, on a hand-driven clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loadtests.stream import StreamBroken, read_completion, read_stream


def _data(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload)


def _delta(**delta: Any) -> str:
    return _data({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


class Clock:
    """Advances one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _lines(*lines: str) -> Iterator[str]:
    for line in lines:
        yield line
        yield ""


def test_times_first_and_following_tokens() -> None:
    lines = _lines(
        _delta(role="assistant"),
        _delta(content="Hel"),
        _delta(content="lo"),
        _delta(content="!"),
        _data({"choices": [], "usage": {"completion_tokens": 3}}),
        "data: [DONE]",
    )
    timing = read_stream(lines, 0.0, Clock())
    assert timing.ttft == 1.0
    assert timing.tpot == 1.0  # tokens at t=1, 2, 3
    assert timing.output_tokens == 3
    assert timing.e2e == 4.0
    assert timing.tokens_per_second == 0.75


def test_usage_tokens_win_over_chunk_count() -> None:
    lines = _lines(_delta(content="two tokens"), _delta(content="and three"))
    lines2 = [*lines, _data({"choices": [], "usage": {"completion_tokens": 5}}), "data: [DONE]"]
    timing = read_stream(lines2, 0.0, Clock())
    assert timing.output_tokens == 5
    assert timing.tpot == pytest.approx(1 / 4)


def test_tool_call_deltas_are_output() -> None:
    call = [{"index": 0, "function": {"name": "get_weather", "arguments": ""}}]
    timing = read_stream([_delta(tool_calls=call), "data: [DONE]"], 0.0, Clock())
    assert timing.ttft == 1.0
    assert timing.output_tokens == 1
    assert timing.tpot is None


def test_bytes_lines_are_read() -> None:
    timing = read_stream([_delta(content="x").encode(), b"data: [DONE]"], 0.0, Clock())
    assert timing.output_tokens == 1


@pytest.mark.parametrize(
    "lines",
    [
        [_delta(content="x")],
        [_delta(content="x"), _data({"error": {"message": "boom", "type": "upstream_error"}})],
        ["data: {not json"],
    ],
)
def test_broken_streams_raise(lines: list[str]) -> None:
    with pytest.raises(StreamBroken):
        read_stream(lines, 0.0, Clock())


def test_completion_body() -> None:
    timing = read_completion({"usage": {"completion_tokens": 8}}, 1.0, 3.0)
    assert (timing.e2e, timing.output_tokens, timing.ttft) == (2.0, 8, None)
    assert timing.tokens_per_second == 4.0
    with pytest.raises(StreamBroken):
        read_completion({"error": {"message": "no"}}, 0.0, 1.0)

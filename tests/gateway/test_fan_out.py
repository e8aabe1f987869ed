"""Several engine answers merged into one chat completion (``gateway.upstream.fan_out``)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import UpstreamError
from gateway.upstream.fan_out import merged


def _answer(text: str, prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = prompt + completion
    choice = {"index": 0, "message": {"role": "assistant", "content": text}}
    return json.dumps(
        {"id": f"c-{text}", "model": "m", "choices": [choice], "usage": usage}
    ).encode()


def test_choices_keep_their_order_and_the_usage_is_summed() -> None:
    body = json.loads(merged([_answer("a", 100, 1), _answer("b", 120, 1), _answer("c", 90, 2)]))
    assert [c["message"]["content"] for c in body["choices"]] == ["a", "b", "c"]
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"] == {"prompt_tokens": 310, "completion_tokens": 4, "total_tokens": 314}
    assert body["id"] == "c-a"


@pytest.mark.parametrize("broken", [b"not json", b'{"error": {"message": "x"}}', b"[]"])
def test_an_answer_that_is_no_chat_completion_is_an_upstream_error(broken: bytes) -> None:
    with pytest.raises(UpstreamError):
        merged([_answer("a", 1, 1), broken])

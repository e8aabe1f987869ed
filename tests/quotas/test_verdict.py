"""Pure logic: OpenAI's duration format and the headers built from a verdict."""

from __future__ import annotations

import pytest

from gateway.quotas.protocol import Limits
from gateway.quotas.verdict import Verdict, format_duration, rate_limit_headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (17.25, "17.25s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3723.5, "1h2m3.5s"),
        (86400, "24h0m0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_headers_only_for_limits_the_key_has() -> None:
    reply = [0, b"", b"0", b"1700000000000000", b"19675", b"4", b"30000000", b"-1", b"0", b"-1"]
    reply += [b"0", 1]
    verdict = Verdict.from_reply(reply)
    assert verdict.requests_remaining == 4
    assert verdict.tokens_remaining is None
    assert verdict.now == 1_700_000_000.0
    headers = rate_limit_headers(Limits(requests_per_minute=5), verdict)
    assert headers == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "30s",
    }

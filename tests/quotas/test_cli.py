"""``gemma-serving keys`` against a private Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway.errors import AuthenticationFailed
from gateway.moderation.key_policy import GuardMode
from gateway.priority import PriorityClass
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from gemma_serving.cli import app
from gemma_serving.commands.keys import parse_model_limit

runner = CliRunner()


def authenticate(url: str, secret: str) -> ApiKey:
    async def main() -> ApiKey:
        backend = RedisQuotaBackend.from_settings(QuotaSettings(redis_url=url))
        try:
            return await backend.keys.authenticate(secret)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def keys(url: str, *args: str) -> str:
    result = runner.invoke(app, ["keys", *args, "--redis-url", url])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_create_prints_the_secret_once_and_stores_limits(redis_url: str) -> None:
    out = keys(
        redis_url,
        "create",
        "--tenant",
        "acme",
        "--models",
        "gemma-3-270m,gemma-3-1b",
        "--capabilities",
        "text,tools",
        "--rpm",
        "60",
        "--tpm",
        "10000",
        "--tpd",
        "100000",
        "--concurrency",
        "4",
        "--model-limit",
        "gemma-3-1b:rpm=10,concurrency=1",
        "--json",
    )
    created = json.loads(out)
    key = authenticate(redis_url, created["key"])
    assert key.key_id == created["id"]
    assert key.allowed_models == frozenset({"gemma-3-270m", "gemma-3-1b"})
    assert key.allowed_capabilities == frozenset({"text", "tools"})
    assert key.limits == Limits(60, 10000, 100000, 4)
    assert key.model_limits == {"gemma-3-1b": Limits(requests_per_minute=10, max_concurrent=1)}

    listed = keys(redis_url, "list")
    shown = keys(redis_url, "show", key.key_id)
    assert key.key_id in listed
    assert "gemma-3-1b: rpm=10" in shown
    assert created["key"] not in listed + shown


def test_plain_create_prints_the_secret(redis_url: str) -> None:
    out = keys(redis_url, "create", "--tenant", "acme")
    secret = out.strip().splitlines()[-1]
    assert authenticate(redis_url, secret).tenant == "acme"


def test_set_limits_and_revoke(redis_url: str) -> None:
    created = json.loads(keys(redis_url, "create", "--tenant", "acme", "--rpm", "5", "--json"))
    key_id = created["id"]
    out = keys(
        redis_url, "set-limits", key_id, "--tpm", "900", "--model-limit", "m:a:tpd=7", "--json"
    )
    changed = json.loads(out)
    assert changed["limits"]["requests_per_minute"] == 5
    assert changed["limits"]["tokens_per_minute"] == 900
    assert changed["model_limits"] == {
        "m:a": {
            "requests_per_minute": None,
            "tokens_per_minute": None,
            "tokens_per_day": 7,
            "max_concurrent": None,
        }
    }
    cleared = json.loads(keys(redis_url, "set-limits", key_id, "--rpm", "-1", "--json"))
    assert cleared["limits"]["requests_per_minute"] is None
    assert "revoked" in keys(redis_url, "revoke", key_id)
    with pytest.raises(AuthenticationFailed):
        authenticate(redis_url, created["key"])


def test_priority_class_is_set_at_creation_and_changed_by_set_limits(redis_url: str) -> None:
    created = json.loads(
        keys(redis_url, "create", "--tenant", "acme", "--priority-class", "batch", "--json")
    )
    assert created["priority_class"] == "batch"
    assert authenticate(redis_url, created["key"]).priority_class is PriorityClass.BATCH
    kept = json.loads(keys(redis_url, "set-limits", created["id"], "--rpm", "9", "--json"))
    assert kept["priority_class"] == "batch"
    keys(redis_url, "set-limits", created["id"], "--priority-class", "interactive")
    assert authenticate(redis_url, created["key"]).priority_class is PriorityClass.INTERACTIVE
    assert "class=interactive weight=1" in keys(redis_url, "show", created["id"])
    keys(redis_url, "set-limits", created["id"], "--weight", "2.5")
    weighted = authenticate(redis_url, created["key"])
    assert (weighted.weight, weighted.priority_class) == (2.5, PriorityClass.INTERACTIVE)
    plain = keys(redis_url, "create", "--tenant", "acme").strip().splitlines()[-1]
    assert authenticate(redis_url, plain).priority_class is PriorityClass.STANDARD
    wrong = runner.invoke(
        app,
        ["keys", "create", "--tenant", "a", "--priority-class", "urgent", "--redis-url", redis_url],
    )
    assert wrong.exit_code == 2


def test_the_guard_is_set_at_creation_and_changed_by_set_guard(redis_url: str) -> None:
    created = json.loads(
        keys(
            redis_url,
            "create",
            "--tenant",
            "acme",
            "--guard",
            "prompts",
            "--guard-threshold",
            "hate=0.3",
            "--guard-threshold",
            "answer:sexual=0.1",
            "--json",
        )
    )
    assert created["guard"] == {
        "mode": "prompts",
        "prompt_thresholds": {"hate": 0.3},
        "answer_thresholds": {"hate": 0.3, "sexual": 0.1},
    }
    guard = authenticate(redis_url, created["key"]).guard
    assert guard.mode is GuardMode.PROMPTS
    assert guard.answer_thresholds["sexual"] == 0.1
    keys(redis_url, "set-guard", created["id"], "prompts_and_answers")
    changed = authenticate(redis_url, created["key"]).guard
    assert changed.mode is GuardMode.PROMPTS_AND_ANSWERS
    assert changed.prompt_thresholds == {}
    assert "guard=prompts_and_answers" in keys(redis_url, "show", created["id"])
    for wrong in (["--guard", "sometimes"], ["--guard", "prompts", "--guard-threshold", "x=1"]):
        refused = runner.invoke(
            app, ["keys", "create", "--tenant", "a", *wrong, "--redis-url", redis_url]
        )
        assert refused.exit_code == 2, refused.output


def test_unknown_key_fails_cleanly(redis_url: str) -> None:
    result = runner.invoke(app, ["keys", "show", "key_missing", "--redis-url", redis_url])
    assert result.exit_code == 1
    assert "No API key" in result.output


def test_dev_key_is_idempotent(redis_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "dev-key"
    first = keys(redis_url, "dev", "--key-file", str(key_file)).strip()
    second = keys(redis_url, "dev", "--key-file", str(key_file)).strip()
    assert first == second
    assert key_file.read_text().strip() == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = authenticate(redis_url, first)
    assert key.tenant == "local-dev"
    keys(redis_url, "revoke", key.key_id)
    third = keys(redis_url, "dev", "--key-file", str(key_file)).strip()
    assert third != first
    assert authenticate(redis_url, third).tenant == "local-dev"
    dev_keys = json.loads(keys(redis_url, "list", "--tenant", "local-dev", "--json"))
    assert len(dev_keys) == 2


@pytest.mark.parametrize(
    ("spec", "model", "limits"),
    [
        ("gemma-3-270m:rpm=10,tpm=500", "gemma-3-270m", Limits(10, 500)),
        ("gemma-3-270m:sql:tpd=5", "gemma-3-270m:sql", Limits(tokens_per_day=5)),
        ("m:concurrency=2,rpm=-1", "m", Limits(max_concurrent=2)),
    ],
)
def test_parse_model_limit(spec: str, model: str, limits: Limits) -> None:
    assert parse_model_limit(spec) == (model, limits)


@pytest.mark.parametrize("spec", ["rpm=10", "m:rpm", "m:rpm=x", "m:qps=3", ":rpm=1"])
def test_parse_model_limit_rejects_nonsense(spec: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_model_limit(spec)


def test_usage_prints_what_the_key_was_charged(redis_url: str) -> None:
    created = json.loads(keys(redis_url, "create", "--tenant", "acme", "--tpd", "1000", "--json"))

    async def spend() -> None:
        backend = RedisQuotaBackend.from_settings(QuotaSettings(redis_url=redis_url))
        try:
            key = await backend.keys.get(created["id"])
            await backend.gate.settle(await backend.gate.admit(key, "gemma-3-270m", 50), 21)
            await backend.gate.charge_total(key, "gemma-3-270m", "batch_a", 9, keep=60)
        finally:
            await backend.aclose()

    asyncio.run(spend())
    usage = json.loads(keys(redis_url, "usage", created["id"], "--json"))
    assert usage["key_id"] == created["id"]
    day = {"requests": 1, "tokens": 30, "batch_tokens": 9}
    assert usage["data"] == [{"model": "gemma-3-270m", "minute": day, "day": day}]
    assert usage["limits"][0]["tokens_per_day"]["remaining"] == 970
    text = keys(redis_url, "usage", created["id"])
    assert "gemma-3-270m" in text
    assert "tpd=30/1000 (970 left" in text

"""A batch's tokens are charged to its key's day exactly once, whenever its runner dies.

The gate's ``charge_total`` and ``BatchCharges`` run against the shared Redis. The crash
windows are real: a gateway subprocess (``batches_dying_gateway``) SIGKILLs itself inside
a job's charge - right after a block was journalled, or right after it was charged - and
a second gateway on the same Redis prefix and files directory resumes the job once the
dead runner's lease expires.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.batches.charges import RECORD_TTL, BatchCharges
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.keys import ScopeKeys
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from tests.gateway.batches_support import (
    TEXT_MODEL,
    TOKENS_PER_LINE,
    ScriptedEngine,
    batch_file,
    create_batch,
    create_key,
    day_used,
    finished,
    running_gateway,
    settings,
    upload,
    wait_for,
)
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import StubUpstream

ROOT = Path(__file__).resolve().parents[2]
OTHER_MODEL = "gemma-3-1b-it"


@pytest.fixture
def prefix() -> Iterator[str]:
    with unique_prefix("batches-charges") as name:
        yield name


@pytest.fixture
async def backend(prefix: str) -> AsyncIterator[RedisQuotaBackend]:
    quota = QuotaSettings(redis_url=SHARED_REDIS_URL, key_prefix=prefix, timeout=2.0)
    quota_backend = RedisQuotaBackend.from_settings(quota)
    yield quota_backend
    await quota_backend.aclose()


def api_key(**model_limits: Limits) -> ApiKey:
    return ApiKey(
        key_id=f"key_{uuid.uuid4().hex[:8]}",
        tenant="t",
        limits=Limits(tokens_per_day=1000),
        model_limits=model_limits,
    )


@pytest.mark.anyio
async def test_a_total_is_charged_once_however_often_it_is_charged(
    backend: RedisQuotaBackend, prefix: str
) -> None:
    gate, key = backend.gate, api_key()
    first = await gate.charge_total(key, TEXT_MODEL, "batch_a", 21, RECORD_TTL)
    assert (first.used, first.remaining, first.charged) == (21, 979, 21)
    again = await gate.charge_total(key, TEXT_MODEL, "batch_a", 21, RECORD_TTL)
    assert (again.used, again.charged) == (21, 0)
    grown = await gate.charge_total(key, TEXT_MODEL, "batch_a", 35, RECORD_TTL)
    assert (grown.used, grown.charged) == (35, 14)
    smaller = await gate.charge_total(key, TEXT_MODEL, "batch_a", 7, RECORD_TTL)
    assert (smaller.used, smaller.charged) == (35, 0)  # never taken back
    other = await gate.charge_total(key, TEXT_MODEL, "batch_b", 7, RECORD_TTL)
    assert (other.used, other.charged) == (42, 7)  # each batch has its own record
    assert (await gate.charge(key, TEXT_MODEL, 3)).used == 45  # plain charges still add
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        record = ScopeKeys(prefix, key.key_id).charged("batch_a")[-1]
        assert int(client.get(record) or 0) == 35
        assert 0 < client.pttl(record) <= RECORD_TTL * 1000
    finally:
        client.close()


@pytest.mark.anyio
async def test_concurrent_charges_of_one_total_add_it_once(backend: RedisQuotaBackend) -> None:
    key = api_key()
    days = await asyncio.gather(
        *(backend.gate.charge_total(key, TEXT_MODEL, "batch_a", 50, RECORD_TTL) for _ in range(40))
    )
    assert sum(d.charged for d in days) == 50
    assert max(d.used for d in days) == 50


@pytest.mark.anyio
async def test_each_scope_is_charged_the_tokens_of_its_models(
    backend: RedisQuotaBackend, prefix: str
) -> None:
    key = api_key(**{OTHER_MODEL: Limits(tokens_per_day=100)})
    charges = BatchCharges(backend.gate, backend.keys)
    usage = {TEXT_MODEL: 10, "gemma-3-4b-it": 5, OTHER_MODEL: 7}
    assert await charges.settle_all(key, "batch_a", usage) == 22
    assert day_used(prefix, key.key_id) == 15
    assert day_used(prefix, f"{key.key_id}/{OTHER_MODEL}") == 7
    assert await charges.settle_all(key, "batch_a", usage) == 0
    day = await charges.settle(key, "batch_a", {**usage, OTHER_MODEL: 9}, OTHER_MODEL)
    assert (day.used, day.remaining, day.charged) == (9, 91, 2)
    assert day_used(prefix, key.key_id) == 15


def _wait_file(path: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 120  # the subprocess imports the whole gateway
    while not path.exists():
        assert process.poll() is None, f"the gateway exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, "the gateway never started"
        time.sleep(0.05)
    return path.read_text()


def _killed_in_charge(
    stub: StubUpstream, prefix: str, tmp_path: Path, lines: int, when: str
) -> tuple[dict[str, str], str]:
    """Run a batch on a gateway that SIGKILLs itself when the journal reaches 4 lines."""
    ready, go, log = tmp_path / "ready", tmp_path / "go", tmp_path / "dying.log"
    at = 4 * TOKENS_PER_LINE  # the charge of the second two-line block
    args = [stub.base_url, prefix, str(tmp_path / "files"), str(ready), str(go), str(at), when]
    command = [sys.executable, "-m", "tests.gateway.batches_dying_gateway", *args]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = _wait_file(ready, process, log)
        with httpx.Client(base_url=url, timeout=30) as http:
            key = create_key(http, tokens_per_day=10_000)
            batch_id = create_batch(http, key, upload(http, key, batch_file(lines))["id"])["id"]
        go.touch()
        assert process.wait(timeout=60) == -signal.SIGKILL, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    return key, batch_id


@pytest.mark.parametrize(
    ("lines", "when", "charged_at_death"),
    [
        (8, "before", 2),  # two lines journalled, not charged; the job resumes
        (4, "before", 2),  # the same on the last block: nothing is left but finalizing
        (8, "after", 4),  # charged, then killed: the resumed job must not charge it again
    ],
)
def test_a_runner_killed_in_a_charge_leaves_the_day_charged_exactly_once(
    stub: StubUpstream,
    tmp_path: Path,
    prefix: str,
    lines: int,
    when: str,
    charged_at_death: int,
) -> None:
    key, batch_id = _killed_in_charge(stub, prefix, tmp_path, lines, when)
    journal = tmp_path / "files" / "jobs" / f"{batch_id}.jsonl"
    journalled = [json.loads(line)["custom_id"] for line in journal.read_text().splitlines()]
    assert sorted(journalled) == ["c-0", "c-1", "c-2", "c-3"]
    assert day_used(prefix, key["id"]) == charged_at_death * TOKENS_PER_LINE

    go: list[bool] = []
    second = ScriptedEngine(block=2, pause_after=0, resume=lambda: bool(go))
    with running_gateway(settings(stub.base_url, prefix, tmp_path / "files"), second) as (_, http):
        if lines > 4:  # the resumed run reconciles the journal before it runs anything
            wait_for(http, key, batch_id, lambda _: bool(second.calls))  # the lease expired
            assert day_used(prefix, key["id"]) == 4 * TOKENS_PER_LINE
        go.append(True)
        batch = wait_for(http, key, batch_id, finished)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": lines, "completed": lines, "failed": 0}
    resumed = [f"c-{i}" for i in range(4, lines)]
    assert second.calls == ([(TEXT_MODEL, resumed)] if resumed else [])
    assert batch["usage"]["total_tokens"] == lines * TOKENS_PER_LINE
    assert day_used(prefix, key["id"]) == lines * TOKENS_PER_LINE

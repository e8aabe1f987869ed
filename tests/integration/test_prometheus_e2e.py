"""A real Prometheus scraping the real stack: every dashboard query and alert has data.

Prometheus (Debian's package, as ``make observe`` runs it) scrapes a gateway in front of
the session's cpu-full Serve application and every Ray node's metrics port, with the
chart's alert rules loaded as rendered for the chart's namespace. A short mixed load
goes through the gateway with the ``openai`` client: an unknown model (404), a key over
its requests per minute (429), then chats, streams (the 270M and the Gemma 4 fixture) and
completions in a loop, under which every dashboard panel query, and every metric
selector of every alert rule, must return at least one series, except those listed below
with the reason.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from openai import NotFoundError, OpenAI, RateLimitError

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gemma_serving.dashboards import filled, queries
from gemma_serving.prometheus import ray_metrics_targets, running_prometheus, scrape_config
from serving.runner import LocalServing
from tests.helm import chart
from tests.helm.scenarios import EVERYTHING_ON
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import free_port, serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ADMIN = "admin-key-for-prometheus-e2e"
GEMMA4 = "tiny-random-gemma-4"
USER = [{"role": "user", "content": "Name a colour."}]
#: Panels a healthy short load leaves empty, and why.
PANELS_MAY_BE_EMPTY = {
    "Batches ended per hour": "no batch ends in this load (tests/gateway/test_batches_jobs.py)",
    "Batch lines per second": "no batch runs in this load (tests/gateway/test_batches_jobs.py)",
}
#: Alert selectors (alert, a fragment of the selector) it leaves empty, and why.
SELECTORS_MAY_BE_EMPTY = {
    ("GemmaLowSuccessRate", 'status=~"5.."'): "no request of a healthy load fails with a 5xx",
    ("GemmaContainerMemoryNearLimit", ""): "cAdvisor and kube-state-metrics are Kubernetes'",
}


def _may_be_empty(alert: str, selector: str) -> bool:
    return any(a == alert and part in selector for a, part in SELECTORS_MAY_BE_EMPTY)


@pytest.fixture(scope="module")
def gateway(serve_stack: LocalServing) -> Iterator[tuple[str, str]]:
    prefix = f"test-prometheus-e2e-{uuid.uuid4().hex[:10]}:"
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
        }
    )
    try:
        with serve_in_thread(create_app(settings)) as url:
            yield url, prefix
    finally:
        delete_prefix(prefix)


@pytest.fixture(scope="module")
def prometheus(gateway: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prometheus")
    rules = chart.render(EVERYTHING_ON).one("PrometheusRule")["spec"]
    (home / "rules.yaml").write_text(yaml.safe_dump({"groups": rules["groups"]}))
    config = scrape_config(
        gateway=gateway[0],
        ray_targets=ray_metrics_targets(),
        namespace=chart.NAMESPACE,  # the namespace the rendered rules select
        interval="2s",
        rule_files=[str(home / "rules.yaml")],
    )
    with running_prometheus(config, home, port=free_port()) as url:
        yield url


def _key(gateway: str, tenant: str, **limits: int) -> str:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": tenant, "limits": limits},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    secret: str = created.json()["key"]
    return secret


def _refusals(gateway: str) -> None:
    """One 404 (unknown model) and one 429 (a key over its requests per minute)."""
    client = OpenAI(base_url=f"{gateway}/v1", api_key=_key(gateway, "refused"), max_retries=0)
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=USER)
    limited = OpenAI(
        base_url=f"{gateway}/v1",
        api_key=_key(gateway, "limited", requests_per_minute=1),
        max_retries=0,
    )
    limited.chat.completions.create(model=TEXT_MODEL, messages=USER, max_tokens=2)
    with pytest.raises(RateLimitError):
        limited.chat.completions.create(model=TEXT_MODEL, messages=USER, max_tokens=2)


@contextmanager
def _traffic(gateway: str) -> Iterator[list[BaseException]]:
    """Chats, streams and completions on both engines until the block ends.

    Ray exports vLLM's series only while an engine works, so the queries run under load.
    """
    client = OpenAI(base_url=f"{gateway}/v1", api_key=_key(gateway, "observed"), max_retries=0)
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                for model in (TEXT_MODEL, GEMMA4):
                    client.chat.completions.create(model=model, messages=USER, max_tokens=8)
                    stream = client.chat.completions.create(
                        model=model,
                        messages=USER,
                        max_tokens=8,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    assert sum(1 for _ in stream) > 0
                client.completions.create(model=TEXT_MODEL, prompt="Once upon a", max_tokens=8)
            except BaseException as exc:  # reported by the test, not lost in the thread
                failures.append(exc)
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(timeout=120)


def _series(prometheus: str, expr: str) -> int:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    assert answer.status_code == 200, (expr, answer.text)
    body = answer.json()
    assert body["status"] == "success", (expr, body)
    return len(body["data"]["result"])


def _selectors(expr: str) -> list[str]:
    """Every vector selector of an expression, as PromQL (with its label matchers)."""
    found: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node.prettify())

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _rules(prometheus: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/rules", timeout=30).json()
    return [r for g in answer["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"]


def _wait_for_data(prometheus: str, deadline: float) -> None:
    """Until the load is scraped: the gateway's tokens and vLLM's, over the rate window."""
    probes = (
        'sum(rate(gateway_tokens_total{direction="out"}[1m]))',
        "sum(rate(ray_vllm_generation_tokens_total[1m]))",
    )
    while not all(_series(prometheus, p) for p in probes):
        assert time.monotonic() < deadline, "the load never reached Prometheus"
        time.sleep(2)


def test_every_panel_and_alert_has_data_from_the_running_stack(
    gateway: tuple[str, str], prometheus: str, tmp_path: Path
) -> None:
    _refusals(gateway[0])
    empty: list[str] = []
    checked = 0
    with _traffic(gateway[0]) as failures:
        _wait_for_data(prometheus, time.monotonic() + 180)
        time.sleep(6)  # a few more scrapes, so every rate() has two points in its window
        for name, title, query in queries():
            checked += 1
            if not _series(prometheus, filled(query.expr)) and title not in PANELS_MAY_BE_EMPTY:
                empty.append(f"{name} / {title}: {query.expr}")
        rules = _rules(prometheus)
        assert {r["name"] for r in rules} >= {"GemmaHighP95Latency", "GemmaKvCacheNearlyFull"}
        for rule in rules:
            assert rule["health"] == "ok", rule
            for selector in _selectors(rule["query"]):
                checked += 1
                if not _series(prometheus, selector) and not _may_be_empty(rule["name"], selector):
                    empty.append(f"alert {rule['name']}: {selector}")
    assert not failures, failures
    assert not empty, "\n".join(empty)
    assert checked > 30

"""Redis for quotas: a small StatefulSet with persistence options, or an external URL."""

from __future__ import annotations

from tests.helm import chart


def _redis(values: dict | None = None) -> tuple[dict, dict]:
    statefulset = chart.render(values).one("StatefulSet", "-redis")
    return statefulset, statefulset["spec"]["template"]["spec"]["containers"][0]


def test_persistent_by_default_with_append_only_file() -> None:
    statefulset, container = _redis()
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    # Quota windows (with TTLs) may be evicted, API keys (without) never.
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]


def test_ephemeral_redis_uses_an_empty_dir() -> None:
    statefulset, container = _redis({"redis": {"persistence": {"enabled": False}}})
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container["args"][container["args"].index("--appendonly") + 1] == "no"


def test_password_from_an_existing_secret() -> None:
    _, container = _redis({"redis": {"auth": {"existingSecret": "redis-auth"}}})
    env = chart.env_of(container)
    ref = {"secretKeyRef": {"name": "redis-auth", "key": "redis-password"}}
    assert env["REDIS_PASSWORD"]["valueFrom"] == ref
    assert env["REDISCLI_AUTH"]["valueFrom"] == ref, "the probes authenticate"
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"


def test_service_selects_the_redis_pod() -> None:
    rendered = chart.render()
    service = rendered.one("Service", "-redis")
    pod_labels = rendered.one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert chart.selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert service["spec"]["ports"][0]["port"] == 6379


def test_external_mode_renders_no_redis() -> None:
    rendered = chart.render(
        {"redis": {"mode": "external", "external": {"url": "redis://r:6379/0"}}}
    )
    assert not [o for o in rendered.objects if "-redis" in o["metadata"]["name"]]

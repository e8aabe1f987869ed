"""Run a profile's Serve application on this machine: start, wait until ready, shut down.

The steps are separate so the CLI, the test fixtures and a combined stack (gateway plus
engines) compose them as they need::

    serving = start_serving("cpu-dev", port=8000)    # Ray + Serve + the app
    wait_ready(serving)                              # every model listed in /v1/models
    ...                                              # talk to serving.base_url
    shutdown()                                       # Serve drains, then Ray stops
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from serving.app import DIRECT_STREAMING_ENV, AppArgs, adapter_model_id
from serving.catalog import Catalog, load_catalog
from serving.config_export import APP_NAME
from serving.logs import SERVE_LOGGING
from serving.models.store import gemma_home, is_local_source, resolve_source
from serving.progress import EngineProgress, engine_statuses, phase
from serving.tracing import serve_tracing_config, traces_endpoint, tracing_env

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# Ray Serve's housekeeping cadence, on every Ray process of the stack (here and in the
# chart's Ray pods). The controller reconciles every deployment and asks the GCS for the
# cluster's nodes on each step of its control loop (Ray: every 0.1 s), and every replica and
# router exports its cached metrics every 100 ms: an idle cpu-text stack took 14% of one
# core of a 2-core host with those, 10% with these (benchmarks/stack_idle_cpu.py), CPU the
# engines do not get. Once a second is quick enough for what the loop reacts to (replicas
# that take minutes to start, health checks every 10 s, autoscaling over a 30 s window) and
# for a Prometheus scrape.
SERVE_HOUSEKEEPING_ENV = {
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "1",
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
}

# A Ray cluster started on this host for the stack (an explicit value in the environment
# wins). Ray's memory monitor counts the whole host's memory and, past its threshold,
# kills Ray's own workers - the Serve controller, the ingress, an engine replica - even
# when the memory is held by a process outside Ray; the kernel's OOM killer, which picks
# by OOM score, is left to act instead. Ray's usage stats stay on this machine. No idle
# worker process is kept for reuse (Ray keeps one per CPU): the one that ran Ray Serve LLM's
# node initialization, which imports torch and vLLM, held 0.8 GB PSS for the stack's life.
LOCAL_RAY_ENV = {
    "RAY_memory_monitor_refresh_ms": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_num_workers_soft_limit": "0",
    **SERVE_HOUSEKEEPING_ENV,
}
# A local cluster of a direct-streaming profile: an engine replica being stopped (Ctrl-C,
# scale-down) keeps answering for this long after Serve took it out of its HAProxy, which
# happens within a second here. Ray's 30 s default gives an external load balancer (a
# cloud's) time to notice; on this host there is none.
LOCAL_DIRECT_STREAMING_ENV = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
# Inherited by Ray's processes and the engines they start: under memory pressure the
# kernel kills other processes (a test run, a build) before any part of the stack.
STACK_OOM_SCORE_ADJ = -500


@dataclass(frozen=True, kw_only=True)
class LocalServing:
    """A running Serve application: where it listens and which model ids it serves."""

    profile: str
    app_name: str
    host: str
    port: int
    model_ids: tuple[str, ...]

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"http://{self.host}:{self.port}/v1"


def served_model_ids(catalog: Catalog, profile: str) -> tuple[str, ...]:
    """Base variants and their adapters, as ``/v1/models`` lists them."""
    target = catalog.profile(profile).target
    ids: list[str] = []
    for variant in catalog.profile_variants(profile):
        ids.append(variant.id)
        ids.extend(adapter_model_id(variant.id, a.name) for a in variant.adapters_for(target))
    return tuple(ids)


def local_sources(catalog: Catalog, profile: str) -> list[str]:
    """The ``local:`` and ``fixture:`` sources (weights, adapters, drafts) a profile loads."""
    target = catalog.profile(profile).target
    sources: list[str] = []
    for variant in catalog.profile_variants(profile):
        sources.append(variant.source_for(target) or "")
        sources.extend(a.source for a in variant.adapters_for(target))
        if variant.draft_params_b(variant.engines[target]) and variant.mtp_draft is not None:
            sources.append(variant.mtp_draft.weights_source)
    return [s for s in sources if is_local_source(s)]


def missing_sources(catalog: Catalog, profile: str, home: Path | None = None) -> list[str]:
    """Local sources whose directory does not exist yet."""
    root = home if home is not None else gemma_home()
    return [
        s for s in local_sources(catalog, profile) if not Path(resolve_source(s, root)).is_dir()
    ]


def required_cpus(catalog: Catalog, profile: str) -> int:
    """Logical CPUs Ray needs: per replica its engine bundles plus the replica actor."""
    target = catalog.profile(profile).target
    total = 1  # the OpenAI ingress replica
    for variant in catalog.profile_variants(profile):
        engine = variant.engines[target]
        per_replica = engine.tensor_parallel_size + 1
        total += per_replica * variant.autoscaling_for(target).max_replicas
    return total


def start_serving(
    profile: str,
    *,
    catalog: Catalog | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    num_cpus: int | None = None,
    models_home: Path | None = None,
    app_name: str = APP_NAME,
    otlp_traces_endpoint: str | None = None,
) -> LocalServing:
    """Start Ray (if needed) and Serve, and deploy the profile's application.

    ``otlp_traces_endpoint`` (an OTLP/HTTP ``.../v1/traces`` URL; default from the
    standard ``OTEL_EXPORTER_OTLP_*`` variables) turns on Ray Serve's tracing and the
    engines' spans; it must be known before Ray starts, as every Ray worker inherits it.
    Returns once the application is submitted; ``wait_ready`` waits for its engines.
    A Ray cluster started here gets ``LOCAL_RAY_ENV`` and the OOM score of
    ``protect_from_oom``: the stack shares the host with whatever else runs on it; for a
    ``direct_streaming`` profile, ``DIRECT_STREAMING_ENV`` too (a cluster already running
    must have been started with it).
    """
    import ray
    from ray import serve

    from serving.deploy import deploy_in_child

    catalog = catalog if catalog is not None else load_catalog()
    endpoint = otlp_traces_endpoint or traces_endpoint()
    args = AppArgs(
        profile=profile,
        catalog=catalog.subset(profile),
        models_home=str(models_home) if models_home is not None else None,
        otlp_traces_endpoint=endpoint,
    )
    if endpoint is not None:
        os.environ.update(tracing_env(endpoint))  # Ray's processes inherit it
    if not ray.is_initialized():
        os.environ.update({k: v for k, v in LOCAL_RAY_ENV.items() if k not in os.environ})
        if catalog.profile(profile).direct_streaming:
            os.environ.update(DIRECT_STREAMING_ENV)  # Ray's processes read it as they start
            os.environ.update(
                {k: v for k, v in LOCAL_DIRECT_STREAMING_ENV.items() if k not in os.environ}
            )
        protect_from_oom()
        ray.init(num_cpus=num_cpus or required_cpus(catalog, profile), include_dashboard=False)
    serve.start(
        http_options={"host": host, "port": port},
        tracing_config=serve_tracing_config(endpoint),
        logging_config=SERVE_LOGGING,
    )
    # Built and submitted by a child process: this one keeps no vLLM or torch in memory.
    deploy_in_child(args, address=ray.get_runtime_context().gcs_address, app_name=app_name)
    return LocalServing(
        profile=profile,
        app_name=app_name,
        host=host,
        port=port,
        model_ids=served_model_ids(catalog, profile),
    )


def protect_from_oom(adj: int = STACK_OOM_SCORE_ADJ) -> bool:
    """Lower this process's OOM score (children inherit it); ``False`` if not permitted.

    Lowering needs ``CAP_SYS_RESOURCE`` (root, or a container granted it); without it
    the stack runs at the default score.
    """
    try:
        Path("/proc/self/oom_score_adj").write_text(f"{adj}\n")
    except OSError:
        return False
    return True


def listed_model_ids(base_url: str, timeout_s: float = 10.0) -> set[str]:
    """The ids ``GET {base_url}/models`` lists."""
    with urllib.request.urlopen(f"{base_url}/models", timeout=timeout_s) as response:
        body = json.load(response)
    return {model["id"] for model in body["data"]}


def wait_ready(
    serving: LocalServing,
    *,
    timeout_s: float = 900.0,
    poll_s: float = 2.0,
    progress: EngineProgress | None = None,
) -> None:
    """Block until every engine is up and ``/v1/models`` lists every model id of the profile.

    Each poll reads the engines' Serve status (reported to ``progress``, if given);
    an engine whose deployment failed raises ``RuntimeError`` at once.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        statuses = engine_statuses(serving.app_name)
        if progress is not None:
            progress.update(statuses)
        failed = {m: text for m, (status, text) in statuses.items() if phase(status) == "failed"}
        if failed:
            raise RuntimeError(f"engines failed to start: {failed}")
        try:
            listed = listed_model_ids(serving.base_url)
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = repr(exc)
        else:
            missing = set(serving.model_ids) - listed
            loading = sorted(m for m, (status, _) in statuses.items() if phase(status) != "ready")
            if not missing and not loading:
                return
            last = f"still missing {sorted(missing)}, loading {loading}"
        time.sleep(poll_s)
    raise TimeoutError(f"{serving.base_url} not ready after {timeout_s:.0f}s: {last}")


def unfinished_requests(model_id: str, app_name: str = APP_NAME) -> int:
    """Requests the engine serving ``model_id`` is still working on (this Ray cluster)."""
    from ray import serve

    deployments = serve.status().applications[app_name].deployments
    name = next((d for d in deployments if d.endswith(f":{model_id}")), None)
    if name is None:
        raise KeyError(f"no engine deployment for {model_id!r} in {app_name!r}")
    handle = serve.get_deployment_handle(name, app_name=app_name)
    return int(handle.num_unfinished_requests.remote().result(timeout_s=30))


def shutdown() -> None:
    """Delete the Serve applications (replicas drain within their graceful timeout), stop Ray."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()

"""JSON log lines of the Serve application: vLLM's logger and the replicas' trace ids."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from gateway.telemetry.logs import JsonFormatter
from serving.app import AppArgs, serving_args
from serving.logs import SERVE_LOGGING, install_trace_ids, vllm_logging_env

#: A program that logs through vLLM's own logger inside a span, as an engine does.
VLLM_PROGRAM = """
from opentelemetry.sdk.trace import TracerProvider
from vllm.logger import init_logger

tracer = TracerProvider().get_tracer("test")
logger = init_logger("vllm.entrypoints.test")
logger.info("outside %d", 1)
with tracer.start_as_current_span("request") as span:
    logger.warning("inside %s", "a span")
    context = span.get_span_context()
    print("IDS", format(context.trace_id, "032x"), format(context.span_id, "016x"))
"""


def test_every_replica_gets_vllms_json_logging_config() -> None:
    from serving.app import build_app

    for profile in ("cpu-dev", "gke-l4"):
        args = AppArgs(profile=profile)
        for config in serving_args(args)["llm_configs"]:
            path = config["runtime_env"]["env_vars"]["VLLM_LOGGING_CONFIG_PATH"]
            assert Path(path).is_file()
        # The ingress replica imports vLLM as well: Ray Serve LLM hands it the same variable.
        ingress = build_app(args)._bound_deployment
        env = ingress.ray_actor_options["runtime_env"]["env_vars"]
        assert env == vllm_logging_env()
    assert SERVE_LOGGING["encoding"] == "JSON"


def test_vllm_logs_json_lines_with_the_trace_id() -> None:
    """vLLM reads the shipped config itself, as it does in the engine's processes."""
    env = {**os.environ, **vllm_logging_env(), "VLLM_TARGET_DEVICE": "cpu"}
    run = subprocess.run(
        [sys.executable, "-c", VLLM_PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = run.stdout.splitlines()
    [ids] = [line.split()[1:] for line in lines if line.startswith("IDS ")]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    ours = {r["message"]: r for r in records if r["logger"] == "vllm.entrypoints.test"}
    assert ours["outside 1"]["trace_id"] is None
    assert ours["outside 1"]["level"] == "info"
    assert [ours["inside a span"]["trace_id"], ours["inside a span"]["span_id"]] == ids
    # vLLM's own records (platform detection and the like) are JSON too: no text lines.
    assert [line for line in lines if not line.startswith(("{", "IDS "))] == []


def test_records_carry_the_current_spans_ids() -> None:
    original = logging.getLogRecordFactory()
    try:
        install_trace_ids()
        installed = logging.getLogRecordFactory()
        install_trace_ids()  # idempotent: one wrapper per process
        assert logging.getLogRecordFactory() is installed is not original
        tracer = TracerProvider().get_tracer("test")
        record = logging.makeLogRecord({})
        assert (record.trace_id, record.span_id) == (None, None)
        with tracer.start_as_current_span("request") as span:
            record = logging.makeLogRecord({})
            context = span.get_span_context()
        assert record.trace_id == format(context.trace_id, "032x")
        assert record.span_id == format(context.span_id, "016x")
        # The JSON formatter writes the ids once, null outside a span (not "None").
        line = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "m"})))
        assert (line["trace_id"], line["span_id"]) == (None, None)
    finally:
        logging.setLogRecordFactory(original)

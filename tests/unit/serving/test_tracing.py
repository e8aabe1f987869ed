"""Tracing switches of the Serve application and of its exported Serve config."""

from __future__ import annotations

import json
import logging

import pytest
import typer
import yaml
from opentelemetry.sdk.trace import TracerProvider
from typer.testing import CliRunner

from gemma_serving.commands import serving as serving_commands
from serving.app import AppArgs, serving_args
from serving.catalog import load_catalog
from serving.config_export import serve_config
from serving.genai_span import usage_of, with_trace_context
from serving.tracing import serve_tracing_config, span_processors, traces_endpoint, tracing_env

URL = "http://collector:4318/v1/traces"
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def test_the_endpoint_follows_the_standard_variables() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}) == URL
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": URL + "x"}) == URL + "x"
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    assert traces_endpoint(off) is None
    assert serve_tracing_config(None) == {"enabled": False}
    assert serve_tracing_config(URL)["exporter_import_path"] == "serving.tracing:span_processors"


def test_engines_get_the_endpoint_and_http_protocol_only_when_tracing() -> None:
    for config in serving_args(AppArgs(profile="cpu-dev", otlp_traces_endpoint=URL))["llm_configs"]:
        assert config["engine_kwargs"]["otlp_traces_endpoint"] == URL
        env = config["runtime_env"]["env_vars"]
        assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
        assert env["VLLM_TARGET_DEVICE"] == "cpu"
        assert config["log_engine_metrics"] is True
    args = AppArgs(profile="cpu-dev", otlp_traces_endpoint=None)
    for config in serving_args(args)["llm_configs"]:
        assert "otlp_traces_endpoint" not in config["engine_kwargs"]


def test_the_trace_header_handed_to_vllm_names_the_span() -> None:
    from ray.llm._internal.serve.core.protocol import RawRequestInfo

    span = TracerProvider().get_tracer("t").start_span("chat")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    info = with_trace_context(RawRequestInfo(headers={"traceparent": parent, "x": "1"}), span)
    context = span.get_span_context()
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-"
    assert info.headers["traceparent"].startswith(expected)
    assert info.headers["x"] == "1"
    span.end()


def test_usage_is_read_from_responses_and_stream_batches() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    batch = [
        'data: {"choices": []}\n\n',
        f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n",
    ]
    assert usage_of(batch) == usage
    assert usage_of(["data: [DONE]\n\n"]) is None


def test_ray_serve_proxies_get_the_tracing_switches_from_the_environment() -> None:
    env = tracing_env(URL, sampling_ratio=0.5)
    assert env["RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH"] == "serving.tracing:span_processors"
    assert env["RAY_SERVE_TRACING_SAMPLING_RATIO"] == "0.5"
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == URL


def test_serve_config_turns_tracing_on_only_with_an_endpoint() -> None:
    from ray.serve.schema import ServeDeploySchema

    catalog = load_catalog()
    assert "tracing_config" not in serve_config(catalog, "cpu-text")
    config = serve_config(catalog, "cpu-text", traces_endpoint=URL)
    schema = ServeDeploySchema.model_validate(config)
    assert schema.tracing_config is not None
    assert schema.tracing_config.enabled
    assert schema.tracing_config.exporter_import_path == "serving.tracing:span_processors"
    [app] = config["applications"]
    assert app["runtime_env"]["env_vars"] == tracing_env(URL)
    built = serving_args(AppArgs.model_validate(app["args"]))
    assert built["llm_configs"][0]["engine_kwargs"]["otlp_traces_endpoint"] == URL


def test_the_serve_config_command_reads_the_standard_variables() -> None:
    app = typer.Typer()
    serving_commands.register(app)
    command = ["serve-config", "--profile", "cpu-text"]
    unset: dict[str, str | None] = {v: None for v in OTEL_VARIABLES}
    plain = yaml.safe_load(CliRunner().invoke(app, command, env=unset).output)
    assert "tracing_config" not in plain
    env = {**unset, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    traced = yaml.safe_load(CliRunner().invoke(app, command, env=env).output)
    assert traced["tracing_config"]["enabled"] is True
    assert traced["applications"][0]["args"]["otlp_traces_endpoint"] == URL


def test_serves_exporter_hook_gives_the_process_trace_ids_on_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", URL)
    original = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)  # as in a fresh Serve process
    try:
        processors = span_processors()
        assert len(processors) == 1
        factory = logging.getLogRecordFactory()
        assert factory is not logging.LogRecord
        assert factory("proxy", logging.INFO, __file__, 1, "m", (), None).trace_id is None
        with TracerProvider().get_tracer("t").start_as_current_span("request") as span:
            record = factory("proxy", logging.INFO, __file__, 1, "m", (), None)
        assert record.trace_id == format(span.get_span_context().trace_id, "032x")
        for processor in processors:
            processor.shutdown()
    finally:
        logging.setLogRecordFactory(original)

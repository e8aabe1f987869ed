from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from batch.runner import run_batch
from tests.batch.support import (
    TEXT,
    VISION,
    EchoEngine,
    chat_line,
    completion_line,
    image_line,
    planner,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_id(path: Path) -> dict[str, dict]:
    return {r["custom_id"]: r for r in _records(path)}


LINES = [
    chat_line("c1", max_tokens=4),
    completion_line("p1", max_tokens=4),
    "{broken",
    chat_line("bad-model", model="nope"),
    image_line("img"),
    chat_line("c2"),
    "",
    chat_line("c1"),
]


def test_every_line_gets_one_answer(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", LINES)
    engine = EchoEngine()
    summary = run_batch(
        source, tmp_path / "out.jsonl", planner=planner(), engine_factory=lambda: engine
    )
    records = _records(tmp_path / "out.jsonl")
    counts = Counter(r["custom_id"] for r in records)
    assert counts == {"c1": 2, "p1": 1, "line-3": 1, "bad-model": 1, "img": 1, "c2": 1}
    by_id = _by_id(tmp_path / "out.jsonl")
    assert by_id["p1"]["response"]["body"]["choices"][0]["text"] == "echo p1"
    assert by_id["line-3"]["response"]["status_code"] == 400
    assert by_id["bad-model"]["response"]["status_code"] == 404
    assert by_id["img"]["response"]["body"]["model"] == VISION
    codes = [r["error"]["code"] for r in records if r["custom_id"] == "c1" and r["error"]]
    assert codes == ["duplicate_custom_id"]
    assert sorted(engine.calls) == [(TEXT, ["c1", "p1", "c2"]), (VISION, ["img"])]
    assert engine.closed
    assert summary.as_dict() == {
        "total": 7,
        "done": 7,
        "skipped": 0,
        "succeeded": 4,
        "failed": 3,
        "prompt_tokens": 20,
        "completion_tokens": 8,
    }


def test_rerun_skips_everything_done_and_builds_no_engine(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", LINES)
    out = tmp_path / "out.jsonl"
    run_batch(source, out, planner=planner(), engine_factory=EchoEngine)
    before = out.read_bytes()

    def no_engine() -> EchoEngine:
        raise AssertionError("nothing left to run")

    summary = run_batch(source, out, planner=planner(), engine_factory=no_engine)
    assert out.read_bytes() == before
    assert (summary.skipped, summary.done) == (7, 7)


def test_resume_after_a_crash_loses_and_repeats_nothing(tmp_path: Path) -> None:
    lines = [chat_line(f"c{i}") for i in range(7)] + ["{broken", chat_line("c0")]
    source = _write(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="engine died"):
        run_batch(source, out, planner=planner(), engine_factory=lambda: EchoEngine(stop_after=2))
    assert len(_records(out)) == 2 + 4  # error lines first, then two blocks of two
    with out.open("ab") as handle:  # and a torn write
        handle.write(b'{"id": "batch_req_x", "custom_id": "c6", "resp')
    engine = EchoEngine()
    summary = run_batch(source, out, planner=planner(), engine_factory=lambda: engine)
    assert engine.calls == [(TEXT, ["c4", "c5", "c6"])]
    counts = Counter(r["custom_id"] for r in _records(out))
    assert counts == {**{f"c{i}": 1 for i in range(1, 7)}, "c0": 2, "line-8": 1}
    assert (summary.skipped, summary.succeeded) == (6, 3)


def test_engine_errors_become_server_error_lines(tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", [chat_line("ok"), chat_line("bad")])
    out = tmp_path / "out.jsonl"
    summary = run_batch(
        source, out, planner=planner(), engine_factory=lambda: EchoEngine(fail=["bad"])
    )
    assert _by_id(out)["bad"]["response"]["status_code"] == 500
    assert (summary.succeeded, summary.failed) == (1, 1)

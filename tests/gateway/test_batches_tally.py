"""Counting a job's journal as it grows, and splitting it into output and error files."""

from __future__ import annotations

import json
from pathlib import Path

from batch.engine import EngineResult
from batch.records import refusal_record, result_record
from gateway.batches.objects import Counts
from gateway.batches.tally import JournalTally, split_journal
from gateway.errors import InvalidRequest


def _answered(custom_id: str, model: str = "m") -> str:
    record = result_record("chat", model, EngineResult(custom_id, "hi", 3, 2))
    return json.dumps(record) + "\n"


def _refused(custom_id: str) -> str:
    return json.dumps(refusal_record(custom_id, InvalidRequest("no"))) + "\n"


def test_the_tally_reads_only_complete_new_lines(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    tally = JournalTally(journal, total=4)
    assert tally.update() == Counts(total=4)
    journal.write_text(_answered("a") + _refused("b") + _answered("c")[:10])
    assert tally.update() == Counts(4, completed=1, failed=1, input_tokens=3, output_tokens=2)
    with journal.open("a") as handle:
        handle.write(_answered("c")[10:])
    assert tally.update() == Counts(4, completed=2, failed=1, input_tokens=6, output_tokens=4)
    assert tally.usage == {"m": 10}
    tally.restart()
    assert tally.update().completed == 2
    assert tally.usage == {"m": 10}


def test_split_keeps_answers_and_errors_apart_and_drops_a_torn_tail(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    journal.write_text(_answered("a") + _refused("b") + _answered("c", "n") + '{"custom_id": "d')
    output, errors = tmp_path / "out", tmp_path / "err"
    counts, usage = split_journal(journal, output, errors, total=5)
    assert counts == Counts(5, completed=2, failed=1, input_tokens=6, output_tokens=4)
    assert usage == {"m": 5, "n": 5}  # per model; the refused line and the torn tail spent none
    assert [json.loads(line)["custom_id"] for line in output.read_text().splitlines()] == ["a", "c"]
    assert [json.loads(line)["custom_id"] for line in errors.read_text().splitlines()] == ["b"]


def test_split_writes_no_empty_files(tmp_path: Path) -> None:
    output, errors = tmp_path / "out", tmp_path / "err"
    assert split_journal(tmp_path / "never-written.jsonl", output, errors, total=3) == (
        Counts(3),
        {},
    )
    assert not output.exists()
    assert not errors.exists()
    journal = tmp_path / "job.jsonl"
    journal.write_text(_answered("a"))
    split_journal(journal, output, errors, total=1)
    assert output.exists()
    assert not errors.exists()

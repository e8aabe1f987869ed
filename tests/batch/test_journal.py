from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.journal import OutputJournal, scan
from batch.records import duplicate_record, success_record


def _record(custom_id: str) -> dict[str, object]:
    return success_record(custom_id, {"ok": True})


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def test_new_file_starts_empty(tmp_path: Path) -> None:
    with OutputJournal.open(tmp_path / "sub" / "out.jsonl") as journal:
        assert len(journal.done) == 0
        assert journal.append([]) == 0
    assert (tmp_path / "sub" / "out.jsonl").read_bytes() == b""


def test_appended_blocks_are_done_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with OutputJournal.open(path) as journal:
        assert journal.append([_record("a"), _record("b")]) == 2
        journal.append([_record("c")])
        assert journal.done.ids == {"a", "b", "c"}
    with OutputJournal.open(path) as journal:
        assert journal.done.ids == {"a", "b", "c"}
        journal.append([_record("d")])
    assert _ids(path) == ["a", "b", "c", "d"]


def test_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with OutputJournal.open(path) as journal:
        journal.append([_record("a")])
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(_record("b")).encode()[:25])
    with OutputJournal.open(path) as journal:
        assert journal.done.ids == {"a"}
        assert path.read_bytes() == whole
        journal.append([_record("b")])
    assert _ids(path) == ["a", "b"]


def test_trailing_garbage_lines_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    good = json.dumps(_record("a")) + "\n"
    path.write_text(good + '\0\0\0\n{"half\n')
    done, length = scan(path)
    assert done.ids == {"a"}
    assert length == len(good.encode())


def test_a_broken_line_before_good_ones_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("garbage\n" + json.dumps(_record("a")) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        OutputJournal.open(path)


def test_duplicate_error_lines_are_counted_apart(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with OutputJournal.open(path) as journal:
        journal.append([duplicate_record("a", 1), _record("a"), duplicate_record("a", 1)])
    done, _ = scan(path)
    assert done.ids == {"a"}
    assert done.duplicates["a"] == 2
    assert len(done) == 3

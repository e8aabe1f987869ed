"""The output file as a journal: what is done, repaired after a crash, appended durably.

Output lines are appended one block at a time, each block as one ``write`` of whole lines
followed by ``flush`` and ``fsync``, so after a crash the file holds every block that was
acknowledged plus, at worst, a torn last line. ``OutputJournal.open`` cuts such a tail
off (everything after the last newline, and any last line that is not a JSON object)
before anything is appended, and reads which ``custom_id``s are done: a re-run skips
them, so every input line ends up in the output exactly once.

Repeated ``custom_id``s in the input are told apart by their error code: the first
occurrence runs, later ones are ``duplicate_custom_id`` error lines, counted separately.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

DUPLICATE_CODE = "duplicate_custom_id"


@dataclass
class DoneSet:
    """The ``custom_id``s an output file already answers."""

    ids: set[str] = field(default_factory=set)
    duplicates: Counter[str] = field(default_factory=Counter)

    def add(self, record: dict[str, Any]) -> None:
        custom_id = str(record.get("custom_id"))
        error = record.get("error") or {}
        if isinstance(error, dict) and error.get("code") == DUPLICATE_CODE:
            self.duplicates[custom_id] += 1
        else:
            self.ids.add(custom_id)

    def __len__(self) -> int:
        return len(self.ids) + sum(self.duplicates.values())


def _valid_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "custom_id" in record else None


def scan(path: Path) -> tuple[DoneSet, int]:
    """The done set of ``path`` and the byte length of its intact prefix.

    Appends are whole lines, so only the end of the file can be damaged: a last piece
    without a newline, or trailing lines that do not parse (e.g. zero-filled after a
    power loss). A broken line *followed by* a good one means the file is not a batch
    output file, which is an error rather than something to cut.
    """
    done = DoneSet()
    if not path.exists():
        return done, 0
    complete = path.read_bytes().split(b"\n")[:-1]
    good = offset = 0
    broken: int | None = None
    for number, line in enumerate(complete, start=1):
        offset += len(line) + 1
        record = _valid_record(line)
        if record is None:
            broken = broken or number
            continue
        if broken is not None:
            raise ValueError(f"{path}: line {broken} is not a batch output record")
        done.add(record)
        good = offset
    return done, good


class OutputJournal:
    """Appends output records to a file durably; ``done`` lists what it already holds."""

    def __init__(self, path: Path, done: DoneSet, handle: IO[bytes]) -> None:
        self.path = path
        self.done = done
        self._handle = handle

    @classmethod
    def open(cls, path: Path) -> OutputJournal:
        """Open (or create) ``path`` for appending, after cutting off a torn tail."""
        done, good = scan(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab")
        if handle.tell() != good:
            handle.truncate(good)
            handle.seek(good)
            os.fsync(handle.fileno())
        return cls(path, done, handle)

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write ``records`` as one durable block; returns how many were written."""
        block = [r for r in records]
        if not block:
            return 0
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in block)
        self._handle.write(data.encode())
        self._handle.flush()
        os.fsync(self._handle.fileno())
        for record in block:
            self.done.add(record)
        return len(block)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

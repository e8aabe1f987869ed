"""What a job's output journal says: request counts and usage, and the final split.

The journal (``batch.journal``) is appended in whole, fsync'd lines, so a reader that
stops at the last newline sees only complete records. ``JournalTally`` reads just the
bytes added since it last looked; ``split_journal`` writes the OpenAI output file
(answered lines) and error file (every line with an ``error``) when a batch ends. Both
also sum the tokens of the answered lines per model (``Usage``): what the batch's key is
charged (``gateway.batches.charges``).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from batch.journal import scan
from gateway.batches.objects import Counts

#: Tokens of a journal's answered lines, per model that answered them.
Usage = dict[str, int]


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = (record.get("response") or {}).get("body") or {}
    return body


def _usage(record: dict[str, Any]) -> tuple[int, int]:
    usage = _body(record).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _answered(record: dict[str, Any]) -> bool:
    return record.get("error") is None


def add(counts: Counts, record: dict[str, Any]) -> Counts:
    """``counts`` with one more journal record."""
    if not _answered(record):
        return replace(counts, failed=counts.failed + 1)
    prompt, completion = _usage(record)
    return replace(
        counts,
        completed=counts.completed + 1,
        input_tokens=counts.input_tokens + prompt,
        output_tokens=counts.output_tokens + completion,
    )


def add_usage(usage: Usage, record: dict[str, Any]) -> None:
    """Add one journal record's tokens to ``usage`` (error lines spent none)."""
    if _answered(record):
        model = str(_body(record).get("model") or "")
        usage[model] = usage.get(model, 0) + sum(_usage(record))


class JournalTally:
    """Running counts and usage of a journal that grows (``total``: the input's requests)."""

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        self.offset = 0
        self.counts = Counts(total=total)
        self.usage: Usage = {}

    def restart(self) -> None:
        """Count from the start again (the journal may have lost a torn tail)."""
        self.offset = 0
        self.counts = Counts(total=self.counts.total)
        self.usage = {}

    def update(self) -> Counts:
        if not self.path.exists():
            return self.counts
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            record = json.loads(line)
            self.counts = add(self.counts, record)
            add_usage(self.usage, record)
        self.offset += len(complete)
        return self.counts


def split_journal(journal: Path, output: Path, errors: Path, total: int) -> tuple[Counts, Usage]:
    """Write the output and error files from a journal; empty ones are not kept."""
    counts = Counts(total=total)
    usage: Usage = {}
    _, intact = scan(journal)  # a torn tail was never acknowledged: leave it out
    with output.open("wb") as answered, errors.open("wb") as failed:
        if intact:
            with journal.open("rb") as handle:
                read = 0
                for line in handle:
                    read += len(line)
                    if read > intact:
                        break
                    record = json.loads(line)
                    counts = add(counts, record)
                    add_usage(usage, record)
                    (answered if _answered(record) else failed).write(line)
        for written in (answered, failed):
            written.flush()
            os.fsync(written.fileno())
    for path in (output, errors):
        if path.stat().st_size == 0:
            path.unlink()
    return counts, usage

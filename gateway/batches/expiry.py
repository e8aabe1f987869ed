"""Expiry, as OpenAI's Batch API has it: batches past their window, files past their time.

- A batch has its ``completion_window`` (24 hours) from ``created_at``: its ``expires_at``.
  One still ``validating`` or ``in_progress`` then becomes ``expired``: the lines answered
  so far stay in its output file (their tokens were charged as they ran), and every line
  not answered becomes an error line ``batch_expired`` (no response, no tokens), counted
  as failed. A running job notices between two blocks (``jobs.BlockControl``); one that
  waits for a runner is expired by the supervisor. Either way ``Finalizer.expire`` ends it.
- ``POST /v1/files`` takes ``expires_after`` and ``POST /v1/batches`` takes
  ``output_expires_after`` (for its output and error files): ``anchor`` is
  ``created_at`` (the file's own), ``seconds`` one hour to 30 days. An uploaded batch
  input without one expires after ``BatchSettings.input_file_ttl`` (OpenAI: 30 days).
  An expired file is gone - 404 from that second - and the supervisor purges its bytes
  and metadata (an input an unfinished batch still reads is purged once it ends).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batch.journal import OutputJournal
from batch.lines import custom_id_of
from batch.records import duplicate_record
from batch.runner import read_lines
from gateway.api.json_types import JSON_INTEGER
from gateway.errors import InvalidRequest

MIN_SECONDS = 3600
MAX_SECONDS = 30 * 24 * 3600
EXPIRED_CODE = "batch_expired"
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


class ExpiresAfter(BaseModel):
    """A file's expiration policy: ``seconds`` after its ``created_at``."""

    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=MIN_SECONDS, le=MAX_SECONDS), JSON_INTEGER]


def form_expires_after(form: Mapping[str, Any]) -> ExpiresAfter | None:
    """``expires_after[anchor]`` and ``expires_after[seconds]`` of a multipart upload."""
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if isinstance(seconds, str) and seconds.isdigit():  # a form's fields are text
        seconds = int(seconds)
    try:
        return ExpiresAfter.model_validate({"anchor": anchor, "seconds": seconds})
    except ValidationError as exc:
        raise InvalidRequest(
            f"expires_after needs anchor 'created_at' and seconds from {MIN_SECONDS} "
            f"to {MAX_SECONDS}.",
            param="expires_after",
        ) from exc


def expired_record(custom_id: str) -> dict[str, Any]:
    """The output line of a request the batch never ran: OpenAI's, with no response."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": EXPIRED_CODE, "message": EXPIRED_MESSAGE},
    }


def _unanswered(source: Path, journal: OutputJournal) -> tuple[int, list[dict[str, Any]]]:
    """The input's request count, and the lines its journal still owes (as error lines)."""
    done = journal.done
    first: dict[str, int] = {}
    repeats: Counter[str] = Counter()
    owed: list[dict[str, Any]] = []
    total = 0
    for number, raw in read_lines(source):
        total += 1
        custom_id = custom_id_of(raw, number)
        if custom_id in first:  # a repeat never runs; owed as the runner would write it
            repeats[custom_id] += 1
            if repeats[custom_id] > done.duplicates[custom_id]:
                owed.append(duplicate_record(custom_id, first[custom_id]))
            continue
        first[custom_id] = number
        if custom_id not in done.ids:
            owed.append(expired_record(custom_id))
    return total, owed


def expire_unanswered(source: Path, journal_path: Path) -> int:
    """Journal a ``batch_expired`` line for each request not answered; the request count.

    One durable block, so a second pass (a runner that died meanwhile) owes nothing more.
    Without the input (gone), nothing can be named: the journal stays as it is.
    """
    if not source.exists():
        return 0
    with OutputJournal.open(journal_path) as journal:
        total, owed = _unanswered(source, journal)
        journal.append(owed)
    return total

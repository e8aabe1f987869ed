"""Files and batches as they are stored, and as OpenAI's API shows them.

A file or batch belongs to the API key that created it (``owner`` is its key id); the
owner is stored with the object and never shown. A batch is stored as a Redis hash
(``BatchRecord.to_hash`` / ``from_hash``): its fixed part as one JSON field, and the
fields that change while it runs (status, timestamps, counts, files, errors) apart, so
that a status change and a progress update never overwrite each other.

Times are whole seconds since the epoch, as OpenAI's. A batch must end within its
``completion_window`` (24 hours) of ``created_at`` - its ``expires_at`` - or it becomes
``expired``; a file with an ``expires_at`` is gone from that second on
(``gateway.batches.expiry``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

BatchStatus = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]
ACTIVE: frozenset[str] = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})
#: What may still expire: a batch past its window in another status is ending anyway.
EXPIRABLE: tuple[str, ...] = ("validating", "in_progress")
TIMESTAMPS = (
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)
INPUT_PURPOSE = "batch"
OUTPUT_PURPOSE = "batch_output"
COMPLETION_WINDOW_SECONDS = 24 * 3600


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def output_file_ids(batch_id: str) -> tuple[str, str]:
    """The ids of a batch's output and error files (fixed, so finalizing twice is harmless)."""
    suffix = batch_id.removeprefix("batch_")
    return f"file-{suffix}-output", f"file-{suffix}-errors"


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded batch input, or a batch's output or error file."""

    id: str
    owner: str
    purpose: str
    filename: str
    size: int
    created_at: int
    expires_at: int | None = None

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> FileRecord:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class Counts:
    """``request_counts`` and token usage, as read from a job's output journal."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def request_counts(self) -> dict[str, int]:
        return {"total": self.total, "completed": self.completed, "failed": self.failed}

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch: what was asked (fixed) and how far it got.

    ``output_expires_after``: seconds its output and error files live after they are
    written (none: until deleted). ``expiring_at``: when its expiry began; an expiring
    batch goes ``finalizing`` then ``expired``, and whoever finishes a ``finalizing``
    batch reads this to know which of the two endings it owes.
    """

    id: str
    owner: str
    endpoint: str
    input_file_id: str
    created_at: int
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    output_expires_after: int | None = None
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    counts: Counts = Counts()
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    expiring_at: int | None = None

    @property
    def expires_at(self) -> int:
        return self.created_at + COMPLETION_WINDOW_SECONDS

    def overdue(self, now: int) -> bool:
        """Past its window and still expirable: it ends ``expired``."""
        return self.status in EXPIRABLE and now >= self.expires_at

    def _fixed(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "created_at": self.created_at,
            "completion_window": self.completion_window,
            "metadata": self.metadata,
            "output_expires_after": self.output_expires_after,
        }

    def to_hash(self) -> dict[str, str]:
        """The Redis hash of a new batch."""
        return {
            "doc": json.dumps(self._fixed()),
            "status": self.status,
            **counts_fields(self.counts),
        }

    @classmethod
    def from_hash(cls, data: Mapping[Any, Any]) -> BatchRecord:
        fields = {_text(k): _text(v) for k, v in data.items()}
        counts = json.loads(fields.get("counts", "{}"))
        errors = fields.get("errors")
        return cls(
            **json.loads(fields["doc"]),
            status=fields["status"],
            times={t: int(fields[f"{t}_at"]) for t in TIMESTAMPS if f"{t}_at" in fields},
            counts=Counts(**counts),
            output_file_id=fields.get("output_file_id") or None,
            error_file_id=fields.get("error_file_id") or None,
            errors=json.loads(errors) if errors else None,
            expiring_at=int(fields["expiring_at"]) if "expiring_at" in fields else None,
        )

    def to_openai(self) -> dict[str, Any]:
        errors = None if self.errors is None else {"object": "list", "data": self.errors}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            **{f"{t}_at": self.times.get(t) for t in TIMESTAMPS},
            "request_counts": self.counts.request_counts(),
            "usage": self.counts.usage(),
            "metadata": self.metadata,
        }


def counts_fields(counts: Counts) -> dict[str, str]:
    """The hash field holding a batch's counts."""
    return {"counts": json.dumps(asdict(counts))}


def batch_error(code: str, message: str, *, line: int | None = None) -> dict[str, Any]:
    """One entry of a batch's ``errors.data``."""
    return {"code": code, "message": message, "param": None, "line": line}

"""File bytes on disk, and the ``POST /v1/files`` upload read within its limits.

Layout under ``BatchSettings.files_dir`` (shared by every replica)::

    files/<file id>      an uploaded input, or a batch's output or error file
    jobs/<batch id>.jsonl the output journal of a batch that has not finished
    tmp/                 uploads being received (renamed into files/ once accepted)

An upload is refused before its body is read when its declared length is over the
limit, and as soon as the bytes received pass it otherwise (413); ``declared_file_bytes``
is what the declared length leaves for the file, for the key's storage limits (checked
before the body is read, and again atomically when the file is filed). The accepted file
must be UTF-8 with at least one and at most ``max_lines`` non-blank lines (400); each
line is checked when the batch runs, where a bad one becomes an error line. An
``expires_after`` policy (``expires_after[anchor]``, ``expires_after[seconds]``, as
OpenAI's clients send it) sets when the file expires (``gateway.batches.expiry``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.batches.expiry import form_expires_after
from gateway.batches.objects import INPUT_PURPOSE
from gateway.batches.settings import BatchSettings
from gateway.errors import InvalidRequest, PayloadTooLarge

FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the purpose field


class FileStorage:
    """Where the bytes of files and journals live."""

    def __init__(self, root: Path) -> None:
        self.files = root / "files"
        self.jobs = root / "jobs"
        self.tmp = root / "tmp"
        for folder in (self.files, self.jobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, file_id: str) -> Path:
        return self.files / file_id

    def journal(self, batch_id: str) -> Path:
        return self.jobs / f"{batch_id}.jsonl"

    def temp(self) -> Path:
        return self.tmp / secrets.token_hex(12)

    def delete(self, file_id: str) -> None:
        self.path(file_id).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Upload:
    """An accepted upload, still in ``tmp/`` (``expires_after``: its policy's seconds)."""

    path: Path
    filename: str
    size: int
    lines: int
    expires_after: int | None = None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than {limit} bytes.", param="file")


async def _bounded(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + FORM_OVERHEAD:
            raise _too_large(limit)
        yield chunk


def _check_declared(request: Request, limit: int) -> None:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("The request must be multipart/form-data.", code="invalid_form")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise _too_large(limit)


def declared_file_bytes(request: Request) -> int:
    """The fewest bytes the file of an upload may have, by its declared length (0: none)."""
    declared = request.headers.get("content-length", "")
    return max(0, int(declared) - FORM_OVERHEAD) if declared.isdigit() else 0


def _copy_lines(source: IO[bytes], target: Path, max_lines: int) -> int:
    """Copy an upload, counting non-blank lines; refuse non-UTF-8 or too many lines."""
    lines = 0
    with target.open("wb") as out:
        for number, line in enumerate(source, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest(
                    f"Line {number} is not UTF-8: batch files are JSONL.",
                    param="file",
                    code="invalid_file",
                ) from exc
            lines += bool(text.strip())
            if lines > max_lines:
                raise InvalidRequest(
                    f"The file has more than {max_lines} requests.",
                    param="file",
                    code="too_many_requests",
                )
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    if not lines:
        raise InvalidRequest("The file has no requests.", param="file", code="empty_file")
    return lines


async def _accept(
    file: UploadFile, storage: FileStorage, settings: BatchSettings, expires_after: int | None
) -> Upload:
    size = file.size or 0
    if size > settings.max_file_bytes:
        raise _too_large(settings.max_file_bytes)
    target = storage.temp()
    try:
        lines = await anyio.to_thread.run_sync(_copy_lines, file.file, target, settings.max_lines)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Upload(target, file.filename or "upload.jsonl", size, lines, expires_after)


async def receive_upload(request: Request, storage: FileStorage, settings: BatchSettings) -> Upload:
    """Read one ``POST /v1/files`` into ``tmp/``: ``file``, ``purpose=batch``, ``expires_after``."""
    limit = settings.max_file_bytes
    _check_declared(request, limit)
    parser = MultiPartParser(request.headers, _bounded(request, limit), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"Invalid upload: {exc.message}", code="invalid_form") from exc
    try:
        purpose = form.get("purpose")
        if purpose != INPUT_PURPOSE:
            raise InvalidRequest(
                f"purpose must be '{INPUT_PURPOSE}' (got {purpose!r}).", param="purpose"
            )
        policy = form_expires_after(form)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidRequest("A 'file' upload is required.", param="file")
        seconds = settings.input_file_ttl if policy is None else policy.seconds
        return await _accept(file, storage, settings, seconds)
    finally:
        with contextlib.suppress(OSError):
            await form.close()

"""How far this process's peak resident memory rises over a block (Linux).

The kernel keeps the peak as ``VmHWM`` in ``/proc/self/status``; writing ``5`` to
``/proc/self/clear_refs`` resets it to the current RSS, so the peak of one block is exact,
whatever ran before it and however briefly the memory was held.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK = "5"


@dataclass
class PeakGrowth:
    """Bytes the peak RSS rose above the RSS at the start of the block (set on exit)."""

    bytes: int = 0


def _status_bytes(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB$", _STATUS.read_text(), re.MULTILINE)
    assert found is not None, f"{field} missing from {_STATUS}"
    return int(found.group(1)) * 1024


@contextmanager
def peak_growth() -> Iterator[PeakGrowth]:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK)
    except OSError:
        pytest.skip("resetting the peak RSS needs a writable /proc/self/clear_refs (Linux)")
    start = _status_bytes("VmRSS")
    growth = PeakGrowth()
    yield growth
    growth.bytes = _status_bytes("VmHWM") - start

"""The machine's shared Redis (127.0.0.1:6379): tests keep to a key prefix of their own.

Never FLUSH it; ``unique_prefix`` names a test's keys and ``delete_prefix`` removes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def delete_prefix(prefix: str, url: str = SHARED_REDIS_URL) -> None:
    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()


@contextmanager
def unique_prefix(label: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test-{label}-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        delete_prefix(prefix)

"""Settings of the Batch API (``GATEWAY_BATCHES__*``): where files live, limits, the job runner."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

MIB = 1024 * 1024
GIB = 1024 * MIB


def default_files_dir() -> Path:
    """``$GEMMA_SERVING_HOME/gateway-files`` (by default ``~/.cache/gemma-serving/...``)."""
    from serving.models.store import gemma_home

    return gemma_home() / "gateway-files"


class BatchSettings(BaseModel):
    """The Batch API (``/v1/files``, ``/v1/batches``); nested in the gateway's settings.

    Metadata lives in the quota Redis under the quota ``key_prefix``; file bytes and the
    journals of running jobs in ``files_dir``, which every gateway replica must share.
    Jobs run on the engine deployments of the Serve application ``serve_app`` of the Ray
    cluster at ``ray_address``.
    """

    enabled: bool = Field(
        default=True, description="Serve /v1/files and /v1/batches (needs the Redis key store)."
    )
    files_dir: Path = Field(
        default_factory=default_files_dir,
        description="Directory of uploaded files, output files and job journals.",
    )
    max_file_bytes: int = Field(
        default=200 * MIB, ge=1, description="Largest upload (413 above it)."
    )
    max_lines: int = Field(default=50_000, ge=1, description="Most requests in one batch file.")
    max_files_per_key: int | None = Field(
        default=1000,
        ge=1,
        description="Most files one API key keeps (its uploads and its batches' output "
        "files); an upload past it is refused (400 too_many_files); null: no limit.",
    )
    max_bytes_per_key: int | None = Field(
        default=10 * GIB,
        ge=1,
        description="Most bytes of files one API key keeps; an upload past it is refused "
        "(400 file_storage_limit_exceeded); null: no limit.",
    )
    input_file_ttl: int | None = Field(
        default=30 * 24 * 3600,
        ge=3600,
        le=30 * 24 * 3600,
        description="Seconds an uploaded batch file lives when its upload sets no "
        "expires_after (OpenAI's default: 30 days); null keeps it until deleted.",
    )
    max_concurrent_jobs: int = Field(
        default=1, ge=1, description="Jobs one gateway process runs at a time (others wait)."
    )
    lease_ttl: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a job's lease outlives its runner: after a crash, another "
        "replica (or the restarted one) resumes the job this long after the last renewal.",
    )
    poll_interval: float = Field(
        default=5.0, gt=0, description="Seconds between looks for batches waiting to run."
    )
    stop_check_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between a running job's looks at whether it must stop "
        "(cancelled, past its window, shutdown, lease lost) while a block is in flight; "
        "when it must, the block's requests are aborted in the engines.",
    )
    shutdown_grace: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a shutdown waits for running jobs to stop at a block boundary.",
    )
    serve_app: str = Field(
        default="gemma", description="Serve application whose engines run the jobs."
    )
    ray_address: str = Field(
        default="auto", description="Ray cluster to connect to (ray.init address)."
    )
    block_size: int = Field(default=16, ge=1, description="Requests per Ray Data batch.")

"""The engines batch jobs run on: the Serve application's engine deployments, through Ray Data.

``ServeEngines`` is the gateway's default ``EngineFactory``: each job gets a
``batch.ray_engine.ServeProcessorEngine`` (Ray Data LLM's Serve deployment processor)
sending its lines to the engine deployments that serve online traffic, so a batch
shares the fleet without engines of its own. The gateway connects to the Ray cluster
once (``ray_address``), the first time a job needs it, and keeps the connection: jobs
run concurrently, and an engine only shuts Ray down when it started Ray itself.

The factory is injected through ``create_app(batch_engines=...)``; tests pass a small
in-process ``BatchEngine`` there.
"""

from __future__ import annotations

import logging
import threading

from batch.engine import BatchEngine
from gateway.batches.settings import BatchSettings


class ServeEngines:
    """Builds one Serve-deployment engine per job, on one shared Ray connection."""

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def _connect(self) -> None:
        import ray
        from ray.data import DataContext

        with self._lock:
            if not ray.is_initialized():
                ray.init(
                    address=self.settings.ray_address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
            DataContext.get_current().enable_progress_bars = False

    def __call__(self) -> BatchEngine:
        from batch.ray_engine import ServeProcessorEngine

        self._connect()
        return ServeProcessorEngine(
            self.settings.serve_app,
            address=self.settings.ray_address,
            batch_size=self.settings.block_size,
        )

"""Where each engine of a starting Serve application stands: loading, ready or failed.

Serve names an engine deployment ``<server class>:<model id>`` and reports its status
(``serve.status()``); ``EngineProgress`` turns successive reads into one line per change::

    gemma-3-270m                 loading
    gemma-3-270m                 ready in 84 s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

READY_STATES = frozenset({"HEALTHY", "UPSCALING", "DOWNSCALING"})
FAILED_STATES = frozenset({"DEPLOY_FAILED", "UNHEALTHY"})


def engine_statuses(app_name: str) -> dict[str, tuple[str, str]]:
    """Model id -> (Serve's deployment status, its message) for the app's engines."""
    from ray import serve

    application = serve.status().applications.get(app_name)
    if application is None:
        return {}
    return {
        name.split(":", 1)[1]: (str(getattr(d.status, "value", d.status)), d.message or "")
        for name, d in application.deployments.items()
        if ":" in name
    }


def phase(status: str) -> str:
    if status in READY_STATES:
        return "ready"
    if status in FAILED_STATES:
        return "failed"
    return "loading"


@dataclass
class EngineProgress:
    """Prints a line whenever an engine's phase changes, with the seconds it took."""

    say: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    phases: dict[str, str] = field(default_factory=dict)

    def update(self, statuses: dict[str, tuple[str, str]]) -> None:
        for model_id, (status, message) in sorted(statuses.items()):
            current = phase(status)
            if self.phases.get(model_id) == current:
                continue
            self.phases[model_id] = current
            self.say(self.line(model_id, current, message))

    def line(self, model_id: str, current: str, message: str) -> str:
        seconds = time.monotonic() - self.started
        if current == "ready":
            return f"  {model_id:<30} ready in {seconds:.0f} s"
        if current == "failed":
            first = message.splitlines()[0] if message else "no message"
            return f"  {model_id:<30} failed after {seconds:.0f} s: {first}"
        return f"  {model_id:<30} loading"

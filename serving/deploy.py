"""Deploy a profile's application onto a running Ray cluster from a short-lived process.

Building the application imports Ray Serve LLM, and with it vLLM and torch: about 0.4 GB
that a process keeps for as long as it lives. ``gemma-serving serve``'s process lives as
long as the stack (it started Ray), so it hands the build to this module in a child
process, which connects to the cluster, submits the application to Serve and exits::

    python -m serving.deploy < request.json      # {"address", "app_name", "args"}

Serve keeps the application (its controller is detached), as it does for ``serve deploy``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from serving.app import AppArgs
from serving.logs import SERVE_LOGGING


def deploy_request(args: AppArgs, *, address: str, app_name: str) -> str:
    """The JSON a deploy process reads on its standard input."""
    return json.dumps(
        {"address": address, "app_name": app_name, "args": args.model_dump(mode="json")}
    )


def deploy_in_child(args: AppArgs, *, address: str, app_name: str) -> None:
    """Submit the application from a child process; raise if it could not."""
    done = subprocess.run(
        [sys.executable, "-m", "serving.deploy"],
        input=deploy_request(args, address=address, app_name=app_name),
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploying {app_name!r} failed (exit {done.returncode}); see above")


def deploy(request: dict[str, Any]) -> None:
    import ray
    from ray import serve

    from serving.app import build_app

    ray.init(address=request["address"], log_to_driver=False)
    target = serve.RunTarget(
        target=build_app(AppArgs.model_validate(request["args"])),
        name=request["app_name"],
        route_prefix="/",
        logging_config=SERVE_LOGGING,
    )
    serve.run_many([target], wait_for_applications_running=False)


if __name__ == "__main__":
    deploy(json.loads(sys.stdin.read()))

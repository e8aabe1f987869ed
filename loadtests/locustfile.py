"""Locust users speaking the OpenAI API to the gateway, streamed the way clients stream it.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 \
        --keys gsk-a,gsk-b --mix stream=4,chat=2,tools=1,image=1,audio=1

Each request exercises one capability of the mix (``chat`` non-streamed; ``stream``,
``tools``, ``image`` and ``audio`` streamed with a usage chunk) with a prompt from
``prompts.jsonl``; users take the API keys in turn. What each request reports is listed
in ``loadtests.report``; the load shape comes from ``GEMMA_LOADTEST_SHAPE`` (see
``loadtests.shapes``), otherwise from ``-u``/``-r``/``-t``.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # locust loads this file by path: make `loadtests` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent
import requests
from locust import LoadTestShape, User, between, events, task
from locust.argument_parser import LocustArgumentParser

from loadtests.mix import STREAMING, Mix, lead_for, parse_mix
from loadtests.payloads import CHAT_PATH, chat_body
from loadtests.prompts import PromptPicker, load_prompts
from loadtests.report import Reporter, is_quota_refusal
from loadtests.settings import LoadtestSettings, split_keys
from loadtests.shapes import Plan, Stage, plan_for
from loadtests.stream import StreamBroken, Timing, read_completion, read_stream


class PlannedShape(LoadTestShape):
    """Follows ``plan``; locust runs a concrete subclass (``abstract = False``)."""

    abstract = True
    plan: Plan

    def tick(self) -> Stage | None:
        return self.plan.at(self.get_run_time())


def _shape_class(settings: LoadtestSettings) -> type[LoadTestShape] | None:
    """The shape ``GEMMA_LOADTEST_SHAPE`` names, or ``None`` (then -u/-r/-t drive the run)."""
    plan = plan_for(settings)
    if plan is None:
        return None
    name = settings.shape.title() + "Shape"
    return type(name, (PlannedShape,), {"plan": plan, "abstract": False})


_SHAPE = _shape_class(LoadtestSettings())
if _SHAPE is not None:
    SelectedShape = _SHAPE  # the one LoadTestShape locust finds in this module


@events.init_command_line_parser.add_listener
def _add_options(parser: LocustArgumentParser) -> None:
    defaults = LoadtestSettings()
    parser.add_argument("--keys", default=defaults.keys, is_secret=True, help="API keys, a,b,c")
    parser.add_argument("--mix", default=defaults.mix, help="capability=weight, comma-separated")
    parser.add_argument("--model", default=defaults.model, help="model id or alias")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens, help="per request")


@events.init.add_listener
def _refresh_loop_clock(**_: Any) -> None:
    """The event loop caches its clock; after slow imports -t would fire at once without this."""
    gevent.get_hub().loop.update_now()


class HttpFailure(Exception):
    """A non-200 answer that no quota meant."""


class OpenAIUser(User):
    """One client: a pooled HTTP session, one API key, requests drawn from the mix."""

    _numbers = itertools.count()

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        settings = LoadtestSettings()
        options = environment.parsed_options
        number = next(self._numbers)
        keys = split_keys(getattr(options, "keys", None) or settings.keys)
        self.model = getattr(options, "model", None) or settings.model
        self.max_tokens = getattr(options, "max_tokens", None) or settings.max_tokens
        weights = parse_mix(getattr(options, "mix", None) or settings.mix)
        self.mix = Mix(weights, lead=lead_for(weights, number))
        self.prompts = PromptPicker(load_prompts(settings.prompts), seed=number)
        self.timeout = settings.timeout
        self.think = between(settings.wait_min, max(settings.wait_min, settings.wait_max))
        self.reporter = Reporter(environment.events.request)
        self.session = requests.Session()
        if keys:
            self.session.headers["Authorization"] = f"Bearer {keys[number % len(keys)]}"

    def wait_time(self) -> float:
        return float(self.think(self))

    def on_stop(self) -> None:
        self.session.close()

    @task
    def one_request(self) -> None:
        self.send(self.mix.draw())

    def send(self, capability: str) -> None:
        body = chat_body(
            capability, self.prompts.pick().text, model=self.model, max_tokens=self.max_tokens
        )
        started = time.perf_counter()
        try:
            timing = self._exchange(capability, body, started)
        except (requests.RequestException, StreamBroken, HttpFailure, ValueError) as exc:
            self.reporter.failure(capability, time.perf_counter() - started, exc)
            return
        if timing is None:
            self.reporter.quota_refusal(capability, time.perf_counter() - started)
        else:
            self.reporter.success(capability, timing)

    def _exchange(self, capability: str, body: dict[str, Any], started: float) -> Timing | None:
        """The answer's timing, or ``None`` for a refusal a quota meant."""
        streamed = capability in STREAMING
        url = (self.host or "").rstrip("/") + CHAT_PATH
        with self.session.post(url, json=body, stream=streamed, timeout=self.timeout) as answer:
            if answer.status_code != 200:
                return self._refused(answer)
            if streamed:
                lines = answer.iter_lines(chunk_size=None)
                return read_stream(lines, started, time.perf_counter)
            return read_completion(answer.json(), started, time.perf_counter())

    @staticmethod
    def _refused(answer: requests.Response) -> None:
        try:
            error = answer.json()
        except ValueError:
            error = None
        if is_quota_refusal(answer.status_code, error):
            return None
        raise HttpFailure(f"HTTP {answer.status_code}: {answer.text[:200]}")

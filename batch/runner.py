"""A batch job: input file -> validated, routed requests -> engine -> output journal.

``run_batch`` is the whole job and takes its engine as an argument (``BatchEngine``), so
the command line and an HTTP batch API can run the same job with any engine. Order:

1. open the output journal (cut a torn tail, read the ``custom_id``s already done);
2. read the input: lines already answered are skipped; malformed, refused and repeated
   lines become error lines at once (one durable block); the rest are planned into
   prompt requests, grouped by the variant that serves them;
3. each variant's requests run on the engine; every result block is journalled before
   the next is taken, and the progress bar shows lines/s and tokens/s;
4. a ``Summary`` (done, failed, tokens in and out) comes back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.engine import BatchEngine, EngineResult
from batch.journal import DoneSet, OutputJournal
from batch.lines import custom_id_of, parse_line
from batch.records import duplicate_record, refusal_record, result_record
from batch.requests import PromptRequest, RequestPlanner
from gateway.errors import GatewayError


@dataclass
class Summary:
    """What one run did (this run only; ``skipped`` were done by earlier runs)."""

    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def done(self) -> int:
        return self.skipped + self.succeeded + self.failed

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass
class Plan:
    """The work left for a run: error lines to write and requests per variant."""

    total: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, list[PromptRequest]] = field(default_factory=lambda: defaultdict(list))

    @property
    def pending(self) -> int:
        return len(self.errors) + sum(len(r) for r in self.requests.values())


class Progress:
    """Where a run reports its progress (a tqdm bar on the command line)."""

    def start(self, total: int, initial: int) -> None: ...

    def advance(self, lines: int, tokens: int) -> None: ...

    def close(self) -> None: ...


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank input lines with their 1-based line numbers."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def _plan_line(planner: RequestPlanner, raw: str, number: int) -> PromptRequest | dict[str, Any]:
    try:
        return planner.plan(parse_line(raw, planner.default_model))
    except GatewayError as exc:
        return refusal_record(custom_id_of(raw, number), exc)


def plan_lines(lines: Iterable[tuple[int, str]], planner: RequestPlanner, done: DoneSet) -> Plan:
    """Sort the input into skipped, error lines and requests (first occurrence wins)."""
    plan = Plan()
    seen: dict[str, int] = {}
    repeats: Counter[str] = Counter()
    for number, raw in lines:
        plan.total += 1
        custom_id = custom_id_of(raw, number)
        if custom_id in seen:
            repeats[custom_id] += 1
            if repeats[custom_id] <= done.duplicates[custom_id]:
                plan.skipped += 1
            else:
                plan.errors.append(duplicate_record(custom_id, seen[custom_id]))
            continue
        seen[custom_id] = number
        if custom_id in done.ids:
            plan.skipped += 1
            continue
        planned = _plan_line(planner, raw, number)
        if isinstance(planned, PromptRequest):
            plan.requests[planned.variant].append(planned)
        else:
            plan.errors.append(planned)
    return plan


def _count(summary: Summary, result: EngineResult) -> None:
    if result.error is not None:
        summary.failed += 1
        return
    summary.succeeded += 1
    summary.prompt_tokens += result.prompt_tokens
    summary.completion_tokens += result.completion_tokens


def _run_variant(
    engine: BatchEngine,
    variant: str,
    requests: list[PromptRequest],
    journal: OutputJournal,
    summary: Summary,
    progress: Progress,
) -> None:
    endpoints = {r.custom_id: r.endpoint for r in requests}
    for block in engine.run(variant, requests):
        fresh = [r for r in block if r.custom_id not in journal.done.ids]
        journal.append(result_record(endpoints[r.custom_id], variant, r) for r in fresh)
        for result in fresh:
            _count(summary, result)
        progress.advance(len(fresh), sum(r.prompt_tokens + r.completion_tokens for r in fresh))


def run_batch(
    input_path: Path,
    output_path: Path,
    *,
    planner: RequestPlanner,
    engine_factory: Callable[[], BatchEngine],
    progress: Progress | None = None,
) -> Summary:
    """Run (or resume) one batch job; the engine is only built if a request needs it."""
    progress = progress or Progress()
    with OutputJournal.open(output_path) as journal:
        plan = plan_lines(read_lines(input_path), planner, journal.done)
        summary = Summary(total=plan.total, skipped=plan.skipped)
        progress.start(plan.total, plan.skipped)
        summary.failed += journal.append(plan.errors)
        progress.advance(len(plan.errors), 0)
        if plan.requests:
            engine = engine_factory()
            try:
                for variant, requests in plan.requests.items():
                    _run_variant(engine, variant, requests, journal, summary, progress)
            finally:
                engine.close()
        progress.close()
    return summary

"""A relayed chat completion stream as the Responses API's stream events.

    response.created, response.in_progress
    per output item: response.output_item.added
        reasoning:      response.reasoning_text.delta ... .done
        message:        response.content_part.added, response.output_text.delta ...,
                        response.output_text.done, response.content_part.done
        function call:  response.function_call_arguments.delta ... .done
    response.output_item.done
    response.completed (or response.incomplete, cut at max_output_tokens)

Each event is ``event: <type>`` and ``data: <json>`` with a ``sequence_number``. The relay
ends a broken stream with an error event: it becomes an ``error`` event and
``response.failed``. Usage comes from the last usage the stream carried (the gateway asks
the engine for it on every chunk).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from gateway.responses import convert
from gateway.upstream.sse import DONE, StreamTally


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class _Call:
    item_id: str
    call_id: str
    name: str
    output_index: int
    arguments: str = ""


@dataclass
class ResponseEvents:
    """Builds the events of one response from the chat chunks, in order."""

    response: dict[str, Any]
    sequence: int = 0
    output: list[dict[str, Any] | None] = field(default_factory=list)
    text: str | None = None
    text_item: tuple[str, int] | None = None
    thinking: str | None = None
    thinking_item: tuple[str, int] | None = None
    calls: dict[int, _Call] = field(default_factory=dict)
    finish_reason: Any = None
    failed: bool = False

    def event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return _sse(kind, payload)

    def start(self) -> list[bytes]:
        snapshot = dict(self.response)
        return [
            self.event("response.created", response=snapshot),
            self.event("response.in_progress", response=snapshot),
        ]

    def _open(self, item: dict[str, Any]) -> tuple[list[bytes], int]:
        index = len(self.output)
        self.output.append(None)
        return [self.event("response.output_item.added", output_index=index, item=item)], index

    def _close_thinking(self) -> list[bytes]:
        if self.thinking_item is None or self.thinking is None:
            return []
        item_id, index = self.thinking_item
        item = convert.reasoning_item(self.thinking, item_id)
        self.output[index] = item
        self.thinking_item = None
        done = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [
            self.event("response.reasoning_text.done", **done, text=self.thinking),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _close_text(self) -> list[bytes]:
        if self.text_item is None or self.text is None:
            return []
        item_id, index = self.text_item
        item = convert.message_item(self.text, item_id)
        self.output[index] = item
        self.text_item = None
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [
            self.event("response.output_text.done", **where, text=self.text),
            self.event("response.content_part.done", **where, part=item["content"][0]),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _close_calls(self) -> list[bytes]:
        events = []
        for call in self.calls.values():
            item = convert.function_call_item(call.call_id, call.name, call.arguments, call.item_id)
            self.output[call.output_index] = item
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    arguments=call.arguments,
                )
            )
            events.append(
                self.event("response.output_item.done", output_index=call.output_index, item=item)
            )
        self.calls = {}
        return events

    def _thinking_delta(self, delta: str) -> list[bytes]:
        events: list[bytes] = []
        if self.thinking_item is None:
            item_id = convert.new_id("rs")
            item = {**convert.reasoning_item("", item_id), "content": []}
            opened, index = self._open(item)
            events += opened
            self.thinking_item, self.thinking = (item_id, index), ""
        item_id, index = self.thinking_item
        self.thinking = (self.thinking or "") + delta
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [*events, self.event("response.reasoning_text.delta", **where, delta=delta)]

    def _text_delta(self, delta: str) -> list[bytes]:
        events = self._close_thinking()
        if self.text_item is None:
            item_id = convert.new_id("msg")
            item = {**convert.message_item("", item_id, "in_progress"), "content": []}
            opened, index = self._open(item)
            events += opened
            self.text_item, self.text = (item_id, index), ""
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            events.append(self.event("response.content_part.added", **where, part=part))
        item_id, index = self.text_item
        self.text = (self.text or "") + delta
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        return [*events, self.event("response.output_text.delta", **where, delta=delta)]

    def _call_delta(self, call: Mapping[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        position = int(call.get("index", len(self.calls)))
        function = call.get("function") or {}
        if position not in self.calls:
            events += self._close_thinking() + self._close_text()
            item_id = convert.new_id("fc")
            call_id = str(call.get("id") or convert.new_id("call"))
            name = str(function.get("name") or "")
            item = convert.function_call_item(call_id, name, "", item_id, "in_progress")
            opened, index = self._open(item)
            events += opened
            self.calls[position] = _Call(item_id, call_id, name, index)
        tracked = self.calls[position]
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            tracked.arguments += piece
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=tracked.item_id,
                    output_index=tracked.output_index,
                    delta=piece,
                )
            )
        return events

    def chunk(self, chunk: Mapping[str, Any]) -> list[bytes]:
        """The events one chat chunk makes."""
        events: list[bytes] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(thinking, str) and thinking:
                events += self._thinking_delta(thinking)
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
        return events

    def end(self, tally: StreamTally) -> list[bytes]:
        events = self._close_thinking() + self._close_text() + self._close_calls()
        self.response["output"] = [item for item in self.output if item is not None]
        done = convert.finished(self.response, self.finish_reason, tally.usage)
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        return [*events, self.event(kind, response=done)]

    def relayed(self, done: bool, data: Any, tally: StreamTally) -> list[bytes]:
        """The events of one relayed event: the end, a chat chunk or an error."""
        if self.failed:
            return []
        if done:
            return self.end(tally)
        if isinstance(data, Mapping) and "choices" in data:
            return self.chunk(data)
        self.failed = True
        return self.fail(data)

    def fail(self, error: Any) -> list[bytes]:
        body = error.get("error") if isinstance(error, Mapping) else None
        body = body if isinstance(body, Mapping) else {"message": "The stream failed."}
        self.response["status"] = "failed"
        self.response["error"] = {
            "code": body.get("code") or "server_error",
            "message": body.get("message"),
        }
        return [
            self.event("error", code=body.get("code"), message=body.get("message"), param=None),
            self.event("response.failed", response=self.response),
        ]


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw.removeprefix(b"data: "))
    except ValueError:
        return None


Events = Callable[[AsyncGenerator[bytes, None], StreamTally], AsyncGenerator[bytes, None]]


def response_events(request: Mapping[str, Any], response_id: str) -> Events:
    """A ``gateway.proxy`` events wrapper turning chat chunks into response events.

    ``response.created`` goes out with the first chunk, which names the model that serves.
    """

    async def wrap(
        events: AsyncGenerator[bytes, None], tally: StreamTally
    ) -> AsyncGenerator[bytes, None]:
        builder: ResponseEvents | None = None
        async with aclosing(events):
            async for raw in events:
                data = None if raw == DONE else _parse(raw)
                if builder is None:
                    served = data.get("model") if isinstance(data, Mapping) else None
                    model = str(served or request.get("model"))
                    builder = ResponseEvents(convert.skeleton(request, response_id, model))
                    for started in builder.start():
                        yield started
                for made in builder.relayed(raw == DONE, data, tally):
                    yield made

    return wrap

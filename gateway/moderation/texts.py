"""The text the guard screens: a request's prompt, a JSON answer's, a stream event's.

A chat request's prompt is the text of its messages (text parts of every role but the
assistant's: what the client wrote), a completion's its prompt strings (token arrays
are refused for a guarded key, see ``gateway.moderation.guard``); an answer is every
choice's content, reasoning and tool call arguments (chat) or text (completions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_ANSWER_FIELDS = ("reasoning_content", "reasoning", "content", "text")


def _content_text(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") in ("text", "input_text")
        ]
    return []


def prompt_text(payload: Mapping[str, Any]) -> str:
    """What the client asked, as one text."""
    parts: list[str] = []
    for message in payload.get("messages") or []:
        if isinstance(message, Mapping) and message.get("role") != "assistant":
            parts.extend(_content_text(message.get("content")))
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        parts.extend(p for p in prompt if isinstance(p, str))
    return "\n".join(p for p in parts if p)


def has_token_prompt(payload: Mapping[str, Any]) -> bool:
    """Whether a completion's prompt is token ids (which no text check can read)."""
    prompt = payload.get("prompt")
    return isinstance(prompt, list) and any(not isinstance(p, str) for p in prompt)


def _call_arguments(inner: Mapping[str, Any]) -> list[str]:
    calls = inner.get("tool_calls")
    functions = [c.get("function") for c in calls if isinstance(c, Mapping)] if calls else []
    return [
        str(f["arguments"])
        for f in functions
        if isinstance(f, Mapping) and isinstance(f.get("arguments"), str)
    ]


def _choice_text(choice: Mapping[str, Any], container: str) -> list[str]:
    inner = choice.get(container) if container else choice
    if not isinstance(inner, Mapping):
        return []
    texts = [str(inner[f]) for f in _ANSWER_FIELDS if isinstance(inner.get(f), str)]
    return texts + _call_arguments(inner)


def answer_text(body: Any) -> str:
    """Every choice's answer in a JSON chat or completion body, as one text."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    parts: list[str] = []
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, Mapping):
            parts.extend(_choice_text(choice, "message") or _choice_text(choice, ""))
    return "\n".join(p for p in parts if p)


def delta_text(event: bytes) -> str:
    """The answer text one relayed SSE event (``data: {...}``) adds."""
    data = event.decode(errors="replace").strip()
    if not data.startswith("data:"):
        return ""
    try:
        chunk = json.loads(data[5:])
    except ValueError:
        return ""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    parts: list[str] = []
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, Mapping):
            parts.extend(_choice_text(choice, "delta") or _choice_text(choice, ""))
    return "".join(parts)

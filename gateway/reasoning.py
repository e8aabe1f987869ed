"""Thinking: whether a chat request asks the model to reason, and the engine's switch for it.

A client asks with OpenAI's ``reasoning_effort`` (``low``, ``medium``, ``high``, ...;
``none`` and ``minimal`` mean no thinking) or with the engine's own switch,
``chat_template_kwargs.enable_thinking``: Gemma 4's chat template opens a thinking turn
only when it is true, and vLLM's ``gemma4`` reasoning parser reads the same switch to
split the thinking (``reasoning`` / ``reasoning_content``) from the answer. A switch the
client set wins over the effort. A request that asks for thinking needs the ``reasoning``
capability (``gateway.routing``).

``thinking_payload`` forwards ``reasoning_effort`` as sent and sets the switch to match it
when the client did not set it, so the engine thinks exactly when routing counted on it.
(vLLM 0.29 sets the switch itself for every effort but ``none``; here ``minimal`` is off too,
as routing treats it.) The switch is a chat template variable: templates that do not use
it ignore it, so the payload is the same for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidRequest

THINKING_SWITCH = "enable_thinking"
#: vLLM's accepted values ("max" is DeepSeek's, "xhigh" OpenAI's newest).
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
EFFORTS_OFF = frozenset({"none", "minimal"})


def _switch(body: Mapping[str, Any]) -> object:
    kwargs = body.get("chat_template_kwargs")
    return kwargs.get(THINKING_SWITCH) if isinstance(kwargs, Mapping) else None


def wants_thinking(body: Mapping[str, Any]) -> bool:
    """True when the request turns thinking on, by the switch or by a reasoning effort."""
    switch = _switch(body)
    if switch is not None:
        return bool(switch)
    effort = body.get("reasoning_effort")
    return isinstance(effort, str) and effort not in EFFORTS_OFF


def thinking_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The chat payload with the engine's switch set from ``reasoning_effort`` (400 if invalid)."""
    _check(payload)
    effort = payload.get("reasoning_effort")
    kwargs = payload.get("chat_template_kwargs") or {}
    if effort is None or kwargs.get(THINKING_SWITCH) is not None:
        return payload
    switched = {**kwargs, THINKING_SWITCH: effort not in EFFORTS_OFF}
    return {**payload, "chat_template_kwargs": switched}


def _check(payload: Mapping[str, Any]) -> None:
    effort = payload.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise InvalidRequest(
            f"reasoning_effort is {effort!r}; accepted: {', '.join(EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_reasoning_effort",
        )
    kwargs = payload.get("chat_template_kwargs")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InvalidRequest(
            "chat_template_kwargs must be an object.", param="chat_template_kwargs"
        )
    switch = _switch(payload)
    if switch is not None and not isinstance(switch, bool):
        raise InvalidRequest(
            f"chat_template_kwargs.{THINKING_SWITCH} must be true or false.",
            param=f"chat_template_kwargs.{THINKING_SWITCH}",
        )

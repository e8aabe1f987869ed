"""OpenAI's Responses API on chat completions: a request becomes a chat payload, an answer
becomes a response object. Pure functions, no I/O.

Stateless: nothing is stored, so what needs stored state is refused with a 400
(``previous_response_id``, ``conversation``, ``item_reference`` items, ``store: true``,
``background``). Supported:

- ``input``: a string, or items: messages (``user``, ``assistant``, ``system``,
  ``developer``; content a string or ``input_text`` / ``output_text`` / ``input_image`` /
  ``input_audio`` parts), ``function_call`` and ``function_call_output`` items (a tool
  round trip), ``reasoning`` items (dropped: Gemma's templates keep no past thinking);
- ``instructions`` (a system message first), ``max_output_tokens``, ``temperature``,
  ``top_p``, ``user``, ``metadata`` (echoed back), ``parallel_tool_calls``;
- ``tools`` of type ``function`` and ``tool_choice`` (``auto``, ``none``, ``required``, a
  named function);
- ``text.format`` (``text``, ``json_object``, ``json_schema``), ``reasoning.effort``;
- ``stream`` (``gateway.responses.stream``), ``truncation: disabled``, ``include: []``.

Anything else OpenAI defines is a 400 ``unsupported_parameter`` naming it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidRequest

#: Fields that need state this gateway does not keep.
STATEFUL = ("previous_response_id", "conversation")
#: OpenAI fields with no chat equivalent here.
UNSUPPORTED = ("prompt", "prompt_cache_key", "service_tier", "top_logprobs", "max_tool_calls")
_ROLES = {"user", "assistant", "system", "developer"}


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _check_stateless(body: Mapping[str, Any]) -> None:
    for name in STATEFUL:
        if body.get(name) is not None:
            raise _unsupported(
                f"{name} needs stored responses; this API is stateless (store=false): "
                "send the whole conversation in input.",
                name,
            )
    if body.get("store") is True:
        raise _unsupported("Responses are not stored here: set store to false.", "store")
    if body.get("background") is True:
        raise _unsupported("Background responses need stored state; not supported.", "background")
    for name in UNSUPPORTED:
        if body.get(name) is not None:
            raise _unsupported(f"{name} is not supported.", name)
    if body.get("truncation") not in (None, "disabled"):
        raise _unsupported("Only truncation 'disabled' is supported.", "truncation")
    if body.get("include"):
        raise _unsupported("include is not supported (nothing extra is kept).", "include")


def _part(part: Any, index: str) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise InvalidRequest("A content part must be an object.", param=index)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "refusal"):
        text = part.get("text", part.get("refusal"))
        if not isinstance(text, str):
            raise InvalidRequest(f"A {kind} part needs its text.", param=index)
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _unsupported("input_image needs image_url (file_id is not supported).", index)
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        return {"type": "input_audio", "input_audio": dict(part["input_audio"])}
    raise _unsupported(f"Content parts of type {kind!r} are not supported.", index)


def _message(item: Mapping[str, Any], index: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(sorted(_ROLES))}.", param=index)
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequest("A message's content is a string or a list of parts.", param=index)
    parts = [_part(p, f"{index}.content[{i}]") for i, p in enumerate(content)]
    if role != "user" and all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _tool_output(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text", "")) for p in output if isinstance(p, Mapping))
    raise InvalidRequest("function_call_output needs its output.", param="input")


def _add_call(messages: list[dict[str, Any]], item: Mapping[str, Any]) -> None:
    """A ``function_call`` item as a tool call of the assistant turn it belongs to."""
    call = {
        "id": str(item.get("call_id") or new_id("call")),
        "type": "function",
        "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    given = body.get("input")
    if isinstance(given, str):
        return [*messages, {"role": "user", "content": given}]
    for i, item in enumerate(given or []):
        index = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, Mapping) else None
        if kind == "message":
            messages.append(_message(item, index))
        elif kind == "function_call":
            _add_call(messages, item)
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id")),
                    "content": _tool_output(item.get("output")),
                }
            )
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise _unsupported("item_reference needs stored items; send the items.", index)
        else:
            raise _unsupported(f"Input items of type {kind!r} are not supported.", index)
    if not messages or all(m["role"] == "system" for m in messages):
        raise InvalidRequest("input must hold at least one message.", param="input")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    converted = []
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            raise _unsupported(f"Only function tools are supported, not {kind!r}.", f"tools[{i}]")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _unsupported("tool_choice is auto, none, required or a named function.", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if fmt is None or (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}
    raise _unsupported("text.format is text, json_object or json_schema.", "text.format")


def chat_payload(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completion a Responses request asks for (refusing what it cannot carry)."""
    _check_stateless(body)
    payload: dict[str, Any] = {"model": body["model"], "messages": chat_messages(body)}
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "stream"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("max_output_tokens") is not None:
        payload["max_completion_tokens"] = body["max_output_tokens"]
    if tools := _tools(body.get("tools")):
        payload["tools"] = tools
    if (choice := _tool_choice(body.get("tool_choice"))) is not None:
        payload["tool_choice"] = choice
    if (fmt := _response_format(body.get("text"))) is not None:
        payload["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping) and reasoning.get("effort") is not None:
        payload["reasoning_effort"] = reasoning["effort"]
    known = set(STATEFUL) | set(UNSUPPORTED) | set(RESPONSE_ONLY) | set(payload)
    known |= {"input", "instructions", "max_output_tokens", "tools", "tool_choice", "text"}
    known |= {"reasoning", "store", "background", "truncation", "include"}
    for name, value in body.items():  # vLLM's extra sampling fields the limits let through
        if name not in known:
            payload[name] = value
    return payload


#: Fields kept for the response object only.
RESPONSE_ONLY = ("metadata",)


def usage(chat_usage: Any) -> dict[str, Any] | None:
    """Chat usage as Responses usage."""
    if not isinstance(chat_usage, Mapping):
        return None
    completion = chat_usage.get("completion_tokens_details") or {}
    prompt = chat_usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": int(chat_usage.get("prompt_tokens") or 0),
        "input_tokens_details": {"cached_tokens": int(prompt.get("cached_tokens") or 0)},
        "output_tokens": int(chat_usage.get("completion_tokens") or 0),
        "output_tokens_details": {"reasoning_tokens": int(completion.get("reasoning_tokens") or 0)},
        "total_tokens": int(chat_usage.get("total_tokens") or 0),
    }


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id or new_id("rs"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def message_item(
    text: str, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_item(
    call_id: str, name: str, arguments: str, item_id: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id or new_id("fc"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def skeleton(request: Mapping[str, Any], response_id: str, model: str) -> dict[str, Any]:
    """A response object with what the request set, no output yet (``in_progress``)."""
    text = request.get("text") if isinstance(request.get("text"), Mapping) else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": request.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def finished(response: dict[str, Any], finish_reason: Any, chat_usage: Any) -> dict[str, Any]:
    """``response`` with its status (``incomplete`` when cut at max_output_tokens) and usage."""
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        response["status"] = "completed"
    response["usage"] = usage(chat_usage)
    return response


def response_object(
    chat: Mapping[str, Any], request: Mapping[str, Any], response_id: str, model: str
) -> dict[str, Any]:
    """A chat completion's answer as a response object."""
    response = skeleton(request, response_id, model)
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], Mapping) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    thinking = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(thinking, str) and thinking:
        output.append(reasoning_item(thinking))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(message_item(message["content"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                str(call.get("id") or new_id("call")),
                str(function.get("name", "")),
                str(function.get("arguments", "")),
            )
        )
    response["output"] = output
    return finished(response, choice.get("finish_reason"), chat.get("usage"))

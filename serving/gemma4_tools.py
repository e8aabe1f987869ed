"""``tool_choice`` "required" and a named function for Gemma 4, in Gemma 4's own call syntax.

vLLM 0.29's ``gemma4`` tool parser leaves required and named tool choice unconstrained:
the JSON grammar other parsers use would fight Gemma 4's native
``<|tool_call>call:NAME{key:<|"|>value<|"|>}<tool_call|>`` syntax, so the model is trusted
to call a tool, and a model that answers in prose instead returns no tool call at all.
``gemma4_constrained`` (registered by ``register``, a ``vllm.general_plugins`` entry
point; the catalog names it for every Gemma 4 variant) constrains those requests with a
grammar in the native syntax, built from the tools' JSON schemas (``native_grammar``):
the engine can only emit calls of the allowed tools with arguments of their schema,
which vLLM's own ``gemma4`` parser then reads. ``auto`` and ``none`` are left as they are;
a schema the grammar cannot express (``$ref``, ``allOf``, ``not``, patterns) keeps
vLLM's behaviour.

Gemma 4's argument syntax (as its chat template writes declarations and calls): keys
unquoted, strings between ``<|"|>`` delimiters, numbers, ``true``/``false``/``null``,
nested ``{...}`` objects and ``[...]`` arrays, items separated by commas; several calls
follow each other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

PARSER_NAME = "gemma4_constrained"
QUOTE = '<|"|>'
SCALARS = {
    "integer": 'int ::= "-"? [0-9]+',
    "number": 'num ::= "-"? [0-9]+ ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
    "boolean": 'bool ::= "true" | "false"',
    "null": 'null ::= "null"',
    "string": f"str ::= {json.dumps(QUOTE)} [^<]* {json.dumps(QUOTE)}",
}
UNSUPPORTED = frozenset({"$ref", "allOf", "not", "if", "pattern", "patternProperties"})


class Unsupported(ValueError):
    """A schema the native grammar cannot express."""


def _literal(text: str) -> str:
    return json.dumps(text)  # an EBNF string literal: JSON's escapes are xgrammar's


class _Grammar:
    """EBNF rules for the values of JSON schemas, in Gemma 4's argument syntax."""

    def __init__(self) -> None:
        self.rules: list[str] = []
        self.scalars: set[str] = set()
        self._count = 0

    def _rule(self, body: str) -> str:
        self._count += 1
        name = f"r{self._count}"
        self.rules.append(f"{name} ::= {body}")
        return name

    def _scalar(self, kind: str) -> str:
        self.scalars.add(kind)
        return SCALARS[kind].split(" ::= ")[0]

    def _constant(self, value: object) -> str:
        if isinstance(value, str):
            return _literal(QUOTE + value + QUOTE)
        if isinstance(value, bool):
            return _literal("true" if value else "false")
        if value is None:
            return _literal("null")
        if isinstance(value, int | float):
            return _literal(json.dumps(value))
        raise Unsupported(f"enum value {value!r}")

    def value(self, schema: Mapping[str, Any]) -> str:
        """The name of the rule matching one value of ``schema``."""
        if not isinstance(schema, Mapping):
            raise Unsupported("a schema that is not an object")
        if UNSUPPORTED & schema.keys():
            raise Unsupported(", ".join(sorted(UNSUPPORTED & schema.keys())))
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            return self._rule(" | ".join(self._constant(v) for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._rule(" | ".join(self.value(s) for s in schema[key]))
        kinds = schema.get("type", "string" if not schema.get("properties") else "object")
        if isinstance(kinds, list):
            return self._rule(" | ".join(self.value({**schema, "type": k}) for k in kinds))
        if kinds == "object":
            return self._object(schema)
        if kinds == "array":
            item = self.value(schema.get("items") or {"type": "string"})
            return self._rule(f'"[" ({item} ("," {item})*)? "]"')
        if kinds in SCALARS:
            return self._scalar(kinds)
        raise Unsupported(f"type {kinds!r}")

    def _object(self, schema: Mapping[str, Any]) -> str:
        return self._rule(f'"{{" {self.members(schema)} "}}"')

    def members(self, schema: Mapping[str, Any]) -> str:
        """The rule for an object's ``key:value`` list (properties in their declared order).

        Required properties are always there, optional ones may be left out; commas go
        between the members present.
        """
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        items = [
            (f"{_literal(name + ':')} {self.value(sub)}", name in required)
            for name, sub in properties.items()
        ]
        # after[i]: the members from i on, once one is written (each with its comma);
        # first[i]: the members from i on, none written yet.
        after, first = ['""'], ['""']
        for item, needed in reversed(items):
            tail, start = after[-1], first[-1]
            if needed:
                after.append(self._rule(f'"," {item} {tail}'))
                first.append(self._rule(f"{item} {tail}"))
            else:
                after.append(self._rule(f'("," {item})? {tail}'))
                first.append(self._rule(f"{item} {tail} | {start}"))
        return first[-1]

    def text(self, root: str) -> str:
        scalars = [SCALARS[k] for k in sorted(self.scalars)]
        return "\n".join([f"root ::= {root}", *self.rules, *scalars]) + "\n"


def _functions(tools: Iterable[Any]) -> dict[str, Mapping[str, Any]]:
    """Function name -> its parameters schema, from OpenAI-shaped tools (dicts or models)."""
    found: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        data = tool.model_dump() if hasattr(tool, "model_dump") else dict(tool)
        function = data.get("function") or {}
        if data.get("type", "function") == "function" and function.get("name"):
            found[function["name"]] = function.get("parameters") or {"type": "object"}
    return found


def native_grammar(tools: Iterable[Any], name: str | None, *, parallel: bool = True) -> str:
    """EBNF for one call of ``name`` or, without a name, calls of any tool.

    Without a name: one or more calls, or exactly one when ``parallel`` is false (OpenAI's
    ``parallel_tool_calls``). Raises ``Unsupported`` when a tool's parameters cannot be
    expressed.
    """
    functions = _functions(tools)
    if name is not None:
        if name not in functions:
            raise Unsupported(f"no tool named {name!r}")
        functions = {name: functions[name]}
    if not functions:
        raise Unsupported("no function tools")
    grammar = _Grammar()
    calls = []
    for function, parameters in functions.items():
        args = grammar.members(parameters)
        calls.append(
            grammar._rule(f'"<|tool_call>call:" {_literal(function)} "{{" {args} "}}<tool_call|>"')
        )
    one = grammar._rule(" | ".join(calls))
    return grammar.text(one if name is not None or not parallel else f"{one}+")


def forced(tool_choice: Any) -> tuple[bool, str | None]:
    """Whether ``tool_choice`` forces a tool call, and the function it names (None: any)."""
    if tool_choice == "required":
        return True, None
    data = tool_choice.model_dump() if hasattr(tool_choice, "model_dump") else tool_choice
    if isinstance(data, Mapping):
        function = data.get("function") or {}
        if isinstance(function, Mapping) and function.get("name"):
            return True, str(function["name"])
        if data.get("name"):
            return True, str(data["name"])
    return False, None


def register() -> None:
    """The ``vllm.general_plugins`` entry point: register ``gemma4_constrained``."""
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.tool_parsers import ToolParserManager
    from vllm.tool_parsers.gemma4_engine_tool_parser import Gemma4EngineToolParser

    if PARSER_NAME in ToolParserManager.list_registered():
        return

    class Gemma4ConstrainedToolParser(Gemma4EngineToolParser):
        """vLLM's gemma4 parser; required and named tool choice run under a native grammar."""

        def adjust_request(self, request: Any) -> Any:
            force, named = forced(getattr(request, "tool_choice", None))
            if not (force and request.tools and hasattr(request, "structured_outputs")):
                return super().adjust_request(request)
            try:
                parallel = getattr(request, "parallel_tool_calls", True) is not False
                grammar = native_grammar(request.tools, named, parallel=parallel)
            except Unsupported as exc:
                logger.info("tool_choice left unconstrained for Gemma 4: %s", exc)
                return super().adjust_request(request)
            request.structured_outputs = StructuredOutputsParams(grammar=grammar)
            request.response_format = None
            request.skip_special_tokens = False
            return request

    ToolParserManager.register_module(PARSER_NAME, module=Gemma4ConstrainedToolParser)

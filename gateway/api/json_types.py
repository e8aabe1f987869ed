"""JSON's scalar types as the request models check them: what their JSON Schema says.

Pydantic's lax mode reads ``true`` as 1 and ``"5"`` as 5, which the OpenAPI document
(``integer``) calls invalid; these types refuse them. An integer takes ``5.0`` as 5, as
JSON Schema does; ``Number`` takes integers; ``Boolean`` takes only ``true`` and ``false``.
Bounds go before ``JSON_INTEGER`` (``Annotated[int, Field(ge=1), JSON_INTEGER]``), or
the document loses them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, StrictBool, StrictFloat
from pydantic_core import PydanticCustomError


def _json_integer(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
Integer = Annotated[int, JSON_INTEGER]
Count = Annotated[int, Field(ge=0), JSON_INTEGER]
PositiveInteger = Annotated[int, Field(ge=1), JSON_INTEGER]
Number = StrictFloat
Boolean = StrictBool

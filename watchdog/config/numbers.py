"""YAML's ``true``/``false`` are not numbers, whatever pydantic's lax mode says.

Pydantic turns ``threshold: true`` into 1.0 and ``concurrency: yes`` into 1; the
JSON Schema an editor checks says "number" and refuses them. Config sections,
rule models and each notifier entry are checked with this first, so ``check``
refuses what the schema refuses, with a message that says what to write.
Rule files are YAML alone and also refuse quoted numbers (``threshold: "3"``);
config sections keep accepting text, which is how environment variables arrive.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo

_NUMBERS = (int, float)


def refuse_non_number(
    model: type[BaseModel], value: Any, info: ValidationInfo, *, text: bool = True
) -> Any:
    """A field validator's body: raise for a bool (unless ``text``, a string too) as a number."""
    suspect = isinstance(value, bool) or (not text and isinstance(value, str))
    if suspect and info.field_name is not None:  # most values are neither: no field lookup
        problem = number_problem(model, info.field_name, value, text=text)
        if problem:
            raise ValueError(problem)
    return value


def number_problem(model: type[BaseModel], key: str, value: Any, *, text: bool = True) -> str:
    """What is wrong with ``value`` for ``model``'s field ``key`` if it is a number field."""
    field = model.model_fields.get(key)
    if field is None or not _is_number(field.annotation):
        return ""
    if isinstance(value, bool):
        return f"a number is expected, not {str(value).lower()}"
    if isinstance(value, str) and not text:
        return f"a number is expected, not the text {value!r}: write it without quotes"
    return ""


def _is_number(annotation: Any) -> bool:
    if annotation in _NUMBERS:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool(args) and bool not in args and all(a in _NUMBERS for a in args)
    return False

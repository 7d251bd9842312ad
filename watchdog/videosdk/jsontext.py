"""JSON whose text orjson refuses: a lone surrogate or bytes that are not UTF-8.

Node's ``JSON.stringify`` writes a string cut mid-emoji as a lone surrogate
escape (``"Al\\ud83d"``), and proxies mangle bytes; orjson, rightly strict,
refuses the whole body for one such string. Here such a body costs only the
strings that hold bad text (replaced with U+FFFD); everything else reads as
orjson would read it. The caller tries orjson first, so a clean body (every
poll, nearly always) never comes here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_INT64 = range(-(2**63), 2**64)  # the integers orjson keeps as int; larger ones become float


def bad_text(body: bytes) -> bool:
    """Whether ``body`` holds text orjson refuses: invalid UTF-8, or a ``\\uD800``-
    ``\\uDFFF`` escape (a lone surrogate, which Node's JSON.stringify emits for a
    string cut mid-emoji). Both checks are linear, in C."""
    try:
        body.decode()
    except UnicodeDecodeError:
        return True
    return _SURROGATE_ESCAPE.search(body) is not None


def _float(text: str) -> float:
    """A JSON number as orjson reads it: never infinity."""
    number = float(text)
    if math.isinf(number):
        raise ValueError("number is infinity when parsed as double")
    return number


def _int(text: str) -> int | float:
    """An integer as orjson reads it: beyond 64 bits, a float."""
    value = int(text)
    return value if value in _INT64 else _float(text)


def _refuse(text: str) -> NoReturn:
    raise ValueError(f"{text} is not JSON")


def _repair_text(document: Any) -> tuple[Any, int]:
    """Every string (keys too) with its lone surrogates replaced by U+FFFD, and how many
    strings that changed; iterative, so as deep as the parser went, in one pass."""
    repaired = 0

    def fix(text: str) -> str:
        nonlocal repaired
        if _SURROGATE.search(text) is None:
            return text
        repaired += 1
        return _SURROGATE.sub("\ufffd", text)

    if isinstance(document, str):
        return fix(document), repaired
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str):
                    node[key] = fix(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
                if _SURROGATE.search(key) is not None:
                    node[fix(key)] = node.pop(key)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = fix(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return document, repaired


def loads_lenient(body: bytes) -> tuple[Any, int]:
    """JSON whose text orjson refused (see ``bad_text``): bytes that are not UTF-8 and lone
    surrogates cost only the strings holding them, replaced with U+FFFD; everything else
    is read as orjson would (numbers, NaN refused). Returns the document and how many
    strings were repaired; ValueError if it is not JSON even so."""
    text = body.decode("utf-8", "surrogateescape")  # each bad byte: one lone surrogate
    try:
        document = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_refuse)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    return _repair_text(document)

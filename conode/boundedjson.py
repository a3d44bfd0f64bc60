"""JSON text read with its nesting bounded before it is parsed.

Python's ``json`` parses nested arrays and objects by recursion: one line of
a thousand ``[`` raises ``RecursionError`` (which no ``except ValueError``
catches), and the depth at which it does depends on the caller's stack.
``loads`` measures the nesting first, in time linear in the text, and
refuses anything deeper than ``max_depth`` with ``JsonTooDeep`` (a
``ValueError``), so ``json`` never recurses further than that. It also
refuses text of more than ``max_items`` values or ``MAX_CONTAINERS`` arrays
and objects (``JsonTooLarge``): ``json`` builds every value, at about a
microsecond each, before it finds a fault at the end of the text.

How the depth is measured: strings are cut out exactly as JSON lexes them
(from a quote to the next unescaped quote, or to the end), every other
character but brackets is dropped, and the deepest prefix of what remains
is the depth. Values are counted in the same text without strings: at most
one more than its commas and brackets. Text that is not JSON may be measured deeper than it is,
never shallower where ``json`` would recurse: ``json`` reads left to right
and stops at the first character it cannot take.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, Final

__all__ = [
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "JsonTooDeep",
    "JsonTooLarge",
    "depth",
    "loads",
]

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted by default."""
MAX_ITEMS: Final = 1 << 16
"""Most values (scalars, arrays, objects) in one text, as many as a CBOR value may hold."""
MAX_CONTAINERS: Final = 1 << 13
"""Most arrays and objects in one text."""


class JsonTooLarge(ValueError):
    """JSON text with too many values or containers, or nested too deep."""


class JsonTooDeep(JsonTooLarge):
    """JSON text nested deeper than the limit."""


_STRINGS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string, or an unterminated one to the end: never fails, so never backtracks."""
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK: Final = 4096


def depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (an upper bound for text that is not JSON).

    With ``stop_above``, the answer may be any depth over it, found as soon as
    it is passed (a hostile line is not measured to its end).
    """
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    deepest = level = 0
    for start in range(0, len(brackets), _CHUNK):
        levels = list(
            itertools.accumulate(
                map(_STEP.__getitem__, brackets[start : start + _CHUNK]), initial=level
            )
        )
        deepest, level = max(deepest, max(levels)), levels[-1]
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """``json.loads`` of UTF-8 text nested at most ``max_depth`` deep, of at most ``max_items`` values.

    ``JsonTooDeep``/``JsonTooLarge`` if over a limit, ``ValueError``
    (``json.JSONDecodeError`` or ``UnicodeDecodeError``) if it is not JSON;
    never ``RecursionError``.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    brackets = text.count("[") + text.count("{")
    if brackets > min(max_depth, MAX_CONTAINERS) or text.count(",") >= max_items:
        bare = _STRINGS.sub("", text)  # else none of the limits can be passed: no scan
        containers = bare.count("[") + bare.count("{")
        if containers > MAX_CONTAINERS:
            raise JsonTooLarge(f"JSON of more than {MAX_CONTAINERS} arrays and objects")
        if bare.count(",") + containers + 1 > max_items:
            raise JsonTooLarge(f"JSON of more than {max_items} values")
        if containers > max_depth and depth(bare, stop_above=max_depth) > max_depth:
            raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text)

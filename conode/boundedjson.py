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
(from a quote to the next unescaped quote, or to the end): escape pairs
are dropped first (``\\\\`` then ``\\"``, left to right as JSON pairs them),
then the text is split at the quotes that are left and every other piece
kept. Every other character but brackets is dropped (one ``bytes.translate``),
and the deepest prefix of what remains is the depth (a running sum over
signed bytes). All of it runs in C, a few ms per MiB, with no regex: a
regex cutting out 200 000 short strings took 85 ms a MiB. Values are counted in the same text without strings: at most
one more than its commas and brackets. Text that is not JSON may be measured deeper than it is,
never shallower where ``json`` would recurse: ``json`` reads left to right
and stops at the first character it cannot take.
"""

from __future__ import annotations

import itertools
import json
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


_BRACKETS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS: Final = bytes(set(range(256)) - set(b"[{]}"))
_CHUNK: Final = 1 << 16


def _outside_strings(text: str) -> str:
    """``text`` with every JSON string (quotes included) cut out, an unterminated one to the end.

    Outside strings a backslash is not JSON: ``json`` stops there, so what is cut after it
    does not matter.
    """
    if '"' not in text:
        return text
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    return "".join(text.split('"')[0::2])


def _depth_outside_strings(bare: str, stop_above: int | None) -> int:
    """The deepest prefix nesting of text with no strings left in it."""
    steps = bare.encode("utf-8", "surrogatepass").translate(_BRACKETS, _NOT_BRACKETS)
    deepest = level = 0
    for start in range(0, len(steps), _CHUNK):
        levels = list(
            itertools.accumulate(memoryview(steps[start : start + _CHUNK]).cast("b"), initial=level)
        )
        deepest, level = max(deepest, max(levels)), levels[-1]
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


def depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``text`` (an upper bound for text that is not JSON).

    With ``stop_above``, the answer may be any depth over it, found as soon as
    it is passed (a hostile line is not measured to its end).
    """
    return _depth_outside_strings(_outside_strings(text), stop_above)


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """``json.loads`` of UTF-8 text nested at most ``max_depth`` deep, of at most ``max_items`` values.

    ``JsonTooDeep``/``JsonTooLarge`` if over a limit, ``ValueError``
    (``json.JSONDecodeError`` or ``UnicodeDecodeError``) if it is not JSON;
    never ``RecursionError``.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    brackets = text.count("[") + text.count("{")
    if brackets > min(max_depth, MAX_CONTAINERS) or text.count(",") >= max_items:
        _measure(text, max_depth, max_items)  # else none of the limits can be passed: no scan
    return json.loads(text)


def _measure(text: str, max_depth: int, max_items: int) -> None:
    """Refuse ``text`` over a limit, reading it a chunk at a time outside its strings and
    stopping at the chunk where a limit is passed (a hostile line is not read to its end)."""
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    inside = False
    containers = values = deepest = level = 0
    for start in range(0, len(text), _CHUNK):
        pieces = text[start : start + _CHUNK].split('"')
        bare = "".join(pieces[1 if inside else 0 :: 2])
        inside ^= len(pieces) % 2 == 0  # an odd number of quotes: the chunk ends on the other side
        opened = bare.count("[") + bare.count("{")
        if opened or "]" in bare or "}" in bare:
            steps = bare.encode("utf-8", "surrogatepass").translate(_BRACKETS, _NOT_BRACKETS)
            levels = list(itertools.accumulate(memoryview(steps).cast("b"), initial=level))
            deepest, level = max(deepest, max(levels)), levels[-1]
        containers += opened
        values += bare.count(",") + opened
        if deepest > max_depth:
            raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
        if containers > MAX_CONTAINERS:
            raise JsonTooLarge(f"JSON of more than {MAX_CONTAINERS} arrays and objects")
        if values + 1 > max_items:
            raise JsonTooLarge(f"JSON of more than {max_items} values")

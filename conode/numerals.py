"""Numbers as people type them, and amounts as people read them: ASCII digits only.

Python's ``int()``, ``float()`` and ``Decimal()`` read any Unicode decimal
digit (``'\u0663'`` Arabic-Indic three, ``'\uff11'`` fullwidth one) and
underscores between digits (``'1_000'``), and ``str.isdigit()`` says yes to
``'\u00b2'`` (superscript two). A number typed on a command line, sent in
an API call or given to an app function must mean the same to every person
and every tool that later reads it, so conode takes only ``0``-``9``, a
leading ``-`` where a sign is allowed, and at most one ``.``; anything else
is a ``ValueError`` naming the text. Pure: no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

__all__ = ["format_minor", "parse_decimal", "parse_whole"]

_WHOLE: Final = re.compile(r"[0-9]+")
_DECIMAL: Final = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SPACE: Final = " \t"


def parse_whole(text: str, what: str = "a number") -> int:
    """``text`` as a whole number of zero or more (ASCII digits only); ``ValueError`` otherwise."""
    stripped = text.strip(_SPACE)
    if _WHOLE.fullmatch(stripped) is None:
        raise ValueError(f"{what} must be a whole number written with the digits 0-9, not {text!r}")
    return int(stripped)


def parse_decimal(text: str, what: str = "a number", *, signed: bool = False) -> Decimal:
    """``text`` as an exact decimal (``12``, ``12.5``, ``.5``; ``-`` first if ``signed``).

    ``ValueError`` for anything else: other digits, ``_``, exponents, ``inf``, ``nan``.
    """
    stripped = text.strip(_SPACE)
    if _DECIMAL.fullmatch(stripped) is None or (not signed and stripped.startswith("-")):
        kind = "a number" if signed else "a number of zero or more"
        raise ValueError(f"{what} must be {kind} written with the digits 0-9, not {text!r}")
    return Decimal(stripped.removesuffix("."))


def format_minor(minor: int, scale: int, currency: str = "") -> str:
    """Minor units as major-unit text with exactly ``scale`` decimals (``-12.50 CXT``)."""
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**scale)
    text = f"{sign}{whole}.{part:0{scale}d}" if scale else f"{sign}{whole}"
    return f"{text} {currency}" if currency else text

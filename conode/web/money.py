"""Amounts on the page: minor units to text in major units, and typed text back to minor units.

Exact (integers and ``decimal``), never floats. Thousands are grouped with a
narrow no-break space (``1 000.00``), which reads the same in English and
Spanish; the decimal mark is the language's (``.`` or ``,``), and either is
accepted when typed.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = ["DECIMAL_MARK", "format_amount", "parse_amount"]

DECIMAL_MARK: Final = {"en": ".", "es": ","}
_GROUP: Final = "\u202f"
_MAX_MINOR: Final = 10**15


def format_amount(minor: int, scale: int, lang: str = "en", *, sign: bool = False) -> str:
    """``-123456`` at scale 2 -> ``-1 234.56`` (``sign``: a ``+`` before a positive amount)."""
    negative = minor < 0
    whole, frac = divmod(abs(minor), 10**scale)
    digits = f"{whole:,}".replace(",", _GROUP)
    text = digits if scale == 0 else f"{digits}{DECIMAL_MARK.get(lang, '.')}{frac:0{scale}d}"
    if negative:
        return f"\u2212{text}"
    return f"+{text}" if sign and minor > 0 else text


def parse_amount(text: str, scale: int) -> int:
    """Typed major units (``12.5``, ``12,50``, ``1 000``) as minor units; ``ValueError`` if not
    a positive amount with at most ``scale`` decimals."""
    cleaned = text.strip().replace(" ", "").replace(_GROUP, "").replace("\u00a0", "")
    if cleaned.count(",") == 1 and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not an amount") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError("the amount must be more than zero")
    minor = value.scaleb(scale)
    if minor != minor.to_integral_value():
        raise ValueError(f"the amount has at most {scale} decimals")
    if minor > _MAX_MINOR:
        raise ValueError("the amount is too large")
    return int(minor)

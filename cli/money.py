"""Amounts on the command line: major units as text (``12.50``) <-> integer minor units.

The charter's ``scale`` is the number of minor-unit digits (2: pence,
cents). Conversion is exact (``decimal``, never floats): an amount with more
decimals than the scale is refused rather than rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

from cli.datadir import CommandError
from conode.validation.entries import MAX_AMOUNT

__all__ = ["format_amount", "parse_amount"]

_AMOUNT: Final = re.compile(r"(\d+)(?:\.(\d*))?|\.(\d+)")


def parse_amount(text: str, scale: int, currency: str = "") -> int:
    """``text`` (major units, e.g. ``12.50``) as a positive integer of minor units.

    ``CommandError`` if it is not a plain positive decimal number, has more
    decimals than ``scale``, or is too large.
    """
    cleaned = text.strip().replace("_", "")
    match = _AMOUNT.fullmatch(cleaned)
    unit = f" {currency}" if currency else ""
    what = f"{currency} amounts" if currency else "amounts"
    if match is None:
        raise CommandError(f"{text!r} is not an amount (write it like 12.50: digits, one '.')")
    decimals = match.group(2) or match.group(3) or ""
    if len(decimals.rstrip("0")) > scale:
        raise CommandError(
            f"{text}: too many decimals: {what} have at most {scale} "
            f"(1{unit} = {10**scale} minor units)"
        )
    try:
        minor = Decimal(cleaned if not cleaned.endswith(".") else cleaned[:-1]).scaleb(scale)
    except InvalidOperation as exc:
        raise CommandError(f"{text!r} is not an amount") from exc
    if minor != minor.to_integral_value():  # cannot happen after the check above; keep it exact
        raise CommandError(f"{text}: too many decimals")
    value = int(minor)
    if value <= 0:
        raise CommandError(f"{text}: an amount must be more than zero")
    if value > MAX_AMOUNT:
        raise CommandError(f"{text}: the amount is too large")
    return value


def format_amount(minor: int, scale: int, currency: str = "") -> str:
    """Minor units as major-unit text with exactly ``scale`` decimals (``-12.50 CXT``)."""
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**scale)
    text = f"{sign}{whole}.{part:0{scale}d}" if scale else f"{sign}{whole}"
    return f"{text} {currency}" if currency else text

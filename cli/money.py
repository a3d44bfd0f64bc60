"""Numbers on the command line: amounts in major units (``12.50``) <-> integer minor units,
and whole numbers (counts, days) for argparse.

The charter's ``scale`` is the number of minor-unit digits (2: pence,
cents). Conversion is exact (``decimal``, never floats): an amount with more
decimals than the scale is refused rather than rounded. Only the ASCII
digits 0-9 are numbers (``conode.numerals``): an Arabic-Indic three, a
fullwidth one and ``1_000`` are refused, though Python's own ``int`` reads them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal

from cli.datadir import CommandError
from conode.numerals import format_minor, parse_decimal, parse_whole
from conode.validation.entries import MAX_AMOUNT

__all__ = ["decimal_arg", "format_amount", "parse_amount", "whole_arg"]


def parse_amount(text: str, scale: int, currency: str = "") -> int:
    """``text`` (major units, e.g. ``12.50``) as a positive integer of minor units.

    ``CommandError`` if it is not a plain positive decimal number in ASCII
    digits, has more decimals than ``scale``, or is too large.
    """
    unit = f" {currency}" if currency else ""
    what = f"{currency} amounts" if currency else "amounts"
    try:
        major = parse_decimal(text)
    except ValueError:
        raise CommandError(
            f"{text!r} is not an amount (write it like 12.50: the digits 0-9, one '.')"
        ) from None
    minor = major.scaleb(scale)
    if minor != minor.to_integral_value():
        raise CommandError(
            f"{text}: too many decimals: {what} have at most {scale} "
            f"(1{unit} = {10**scale} minor units)"
        )
    value = int(minor)
    if value <= 0:
        raise CommandError(f"{text}: an amount must be more than zero")
    if value > MAX_AMOUNT:
        raise CommandError(f"{text}: the amount is too large")
    return value


def format_amount(minor: int, scale: int, currency: str = "") -> str:
    """Minor units as major-unit text with exactly ``scale`` decimals (``-12.50 CXT``)."""
    return format_minor(minor, scale, currency)


def whole_arg(low: int = 0) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``low``, in the digits 0-9."""

    def parse(text: str) -> int:
        try:
            value = parse_whole(text, "it")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is less than {low}")
        return value

    return parse


def decimal_arg(text: str) -> Decimal:
    """An argparse ``type``: a number of zero or more (``2.5``), in the digits 0-9."""
    try:
        return parse_decimal(text, "it")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

"""Printing: times, entries as JSON-ish text, JSON-safe values, tables, the progress line."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, TextIO

from conode.chain import Record, Violation

__all__ = [
    "PROGRESS_THRESHOLD",
    "Progress",
    "days_text",
    "iso_time",
    "jsonable",
    "jsonish",
    "minute_time",
    "percent_text",
    "record_json",
    "spreadsheet_text",
    "table",
    "violation_json",
]

PROGRESS_THRESHOLD: Final = 2000
"""Chains of at least this many records get a progress line (on a terminal)."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_US: Final = 86_400 * 10**6
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP's CSV injection rule)."""


def iso_time(micros: int) -> str:
    """``2024-05-01T12:00:00.000001Z`` for a timestamp in integer microseconds."""
    try:
        moment = _EPOCH + dt.timedelta(microseconds=micros)
    except OverflowError:
        return f"{micros} µs (out of range)"
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def minute_time(micros: int) -> str:
    """``2024-05-01 12:00`` (UTC) for a table's column: a date and time people read at a glance."""
    return iso_time(micros)[:16].replace("T", " ")


def percent_text(bp: int) -> str:
    """Basis points as a percentage without trailing zeros (``5001`` -> ``50.01``)."""
    whole, part = divmod(bp, 100)
    return f"{whole}" if part == 0 else f"{whole}.{part:02d}".rstrip("0")


def days_text(us: int) -> str:
    """Microseconds as a number of days, exactly (``1209600000000`` -> ``14``)."""
    return f"{(Decimal(us) / _DAY_US).normalize():f}"


def jsonish(value: Any) -> str:
    """An entry value as compact JSON, with byte strings as CBOR diagnostic ``h'00ff'``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonish(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}: {jsonish(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)


def jsonable(value: Any) -> Any:
    """An entry value for ``json.dumps``: byte strings become ``{"$bytes": "<hex>"}``."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


def record_json(record: Record) -> dict[str, Any]:
    """One record as a JSON object (full hashes, decoded entry)."""
    action = record.action
    return {
        "seq": action.seq,
        "kind": action.kind.name.lower(),
        "timestamp": action.timestamp,
        "time": iso_time(action.timestamp),
        "entry_type": action.entry_type,
        "hash": str(record.hash),
        "prev": None if action.prev is None else str(action.prev),
        "entry_hash": None if action.entry_hash is None else str(action.entry_hash),
        "ref": None if action.ref is None else str(action.ref),
        "entry": None if record.entry is None else jsonable(record.entry_value()),
    }


def violation_json(violation: Violation | None) -> dict[str, Any] | None:
    """A violation as a JSON object, or None."""
    if violation is None:
        return None
    return {
        "position": violation.position,
        "seq": violation.seq,
        "rule": violation.rule,
        "reason": violation.reason,
    }


def spreadsheet_text(text: str) -> str:
    """A CSV text cell a spreadsheet shows and never runs: ``'`` before a formula's first character.

    Only for text (names, memos, titles: what other people wrote). Numbers we
    format ourselves (``-12.50``) are written as they are, so a spreadsheet
    still reads a negative amount as a number.
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(cell) for cell in row] for row in [list(headers), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


class Progress:
    """A ``\\r`` progress line on stderr for long chains; silent when not on a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = total
        self._stream = sys.stderr if stream is None else stream
        self._last = 0.0
        self._width = 0

    @classmethod
    def maybe(cls, label: str, total: int) -> Progress | None:
        """A progress line if the chain is long and stderr is a terminal, else None."""
        if total < PROGRESS_THRESHOLD:
            return None
        try:
            if not sys.stderr.isatty():
                return None
        except (AttributeError, ValueError):
            return None
        return cls(label, total)

    def __call__(self, done: int) -> None:
        """Show ``done`` records of the total (at most ten times a second)."""
        now = time.monotonic()
        if done < self._total and now - self._last < 0.1:
            return
        self._last = now
        percent = 100 * done // self._total if self._total else 100
        filled = percent // 5
        bar = "#" * filled + "-" * (20 - filled)
        line = f"{self._label} [{bar}] {done}/{self._total} ({percent}%)"
        self._stream.write("\r" + line)
        self._stream.flush()
        self._width = max(self._width, len(line))

    def close(self) -> None:
        """Erase the line."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0

"""What every command shares for output: exit codes, the one-line error, notes, JSON."""

from __future__ import annotations

import json
import sys
from typing import Final

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "error",
    "note",
    "print_json",
    "warn",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def error(message: str) -> None:
    """``conode: error: ...`` on stderr, always one line."""
    one_line = " ".join(message.split())
    sys.stderr.write(f"conode: error: {one_line}\n")


def note(message: str) -> None:
    """An informational line on stderr (stdout stays for data)."""
    sys.stderr.write(f"conode: {message}\n")


def warn(message: str) -> None:
    """A warning line on stderr."""
    sys.stderr.write(f"conode: warning: {message}\n")


def print_json(value: object) -> None:
    """One JSON value on one line of stdout."""
    print(json.dumps(value, ensure_ascii=False), flush=True)

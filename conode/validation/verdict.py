"""Verdicts: what a rule says about a record, as a value.

``Valid`` and ``Invalid`` are final: the same record with the same
dependencies always gets the same one. ``Missing`` is not a verdict on the
record but on what this peer holds: fetch the named dependencies and ask again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from conode.hashes import TypedHash

__all__ = ["VALID", "Invalid", "Missing", "Valid", "Verdict"]


@dataclass(frozen=True, slots=True)
class Valid:
    """Every rule passed."""

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Invalid:
    """A rule failed: ``rule`` names it, ``reason`` says why in words."""

    rule: str
    reason: str

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Missing:
    """The verdict needs data this peer does not hold yet."""

    dependencies: tuple[TypedHash, ...]

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return "missing: " + ", ".join(str(d) for d in self.dependencies)


Verdict = Valid | Invalid | Missing
VALID: Final = Valid()

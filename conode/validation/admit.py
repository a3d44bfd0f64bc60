"""The one "fold + judge" step every door into a chain takes: ``admit``.

A record joins its author's chain only if the activity fold takes it
(``activity.step``: the chain rules, the author's signature among them, and
the whole-chain rules) and the engine then judges it valid with its
dependencies (the record rules). Ingest, a payment session's commit, the
offline commits of the CLI and the test ledger all call ``admit`` and
append (with the new state) only on ``Admitted``: so no door judges by
other rules than another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from conode.chain import Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.activity import Activity, step
from conode.validation.context import Judge, ValidationContext
from conode.validation.verdict import Invalid, Missing

__all__ = ["ACTIVITY", "INVALID", "Admitted", "Needs", "Refused", "admit"]

ACTIVITY: Final = "activity"
"""A refusal by the activity fold: the chain as a whole breaks a rule at this record."""
INVALID: Final = "invalid"
"""A refusal by the record rules: the record itself breaks a rule."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """The record passes: ``state`` is its author's activity with it folded in."""

    state: Activity


@dataclass(frozen=True, slots=True)
class Refused:
    """The record breaks a rule; ``kind`` says which rules (``ACTIVITY`` or ``INVALID``)."""

    verdict: Invalid
    kind: str


@dataclass(frozen=True, slots=True)
class Needs:
    """The record cannot be judged yet: these records and agents' chains are not held."""

    verdict: Missing

    @property
    def records(self) -> tuple[ActionHash, ...]:
        return tuple(d for d in self.verdict.dependencies if isinstance(d, ActionHash))

    @property
    def agents(self) -> tuple[AgentKey, ...]:
        return tuple(d for d in self.verdict.dependencies if isinstance(d, AgentKey))


def admit(
    state: Activity, record: Record, judge: Judge, ctx: ValidationContext
) -> Admitted | Refused | Needs:
    """Fold ``record`` into ``state`` (its author's activity), then judge it with ``ctx``.

    Deterministic in its arguments and the records ``ctx`` holds. The fold
    checks the author's signature (a chain rule), so the engine does not
    verify it again.
    """
    folded, offence = step(state, record)
    if isinstance(offence, Invalid):
        return Refused(offence, ACTIVITY)
    verdict = judge.validate_record(record, ctx, signature_checked=True)
    if isinstance(verdict, Missing):
        return Needs(verdict)
    if isinstance(verdict, Invalid):
        return Refused(verdict, INVALID)
    return Admitted(folded)

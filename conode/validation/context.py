"""What a rule may read and whom it may ask: the ``ValidationContext`` and the ``Judge``.

The record rules (``credit``, ``foundation``, ``stale``, ``warrants``) call
back into the engine for dependencies, parsed entries, the rules in force
and the network's money format. They see it through ``Judge``, the few members they use, so they
import no engine and the engine imports them: the arrows inside
``conode.validation`` point one way (``.importlinter`` keeps them so).
``conode.validation.engine.Engine`` is the one ``Judge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from conode.chain import Record
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.validation.governance import Rules
from conode.validation.verdict import Verdict

__all__ = ["Judge", "ValidationContext"]

T = TypeVar("T")


class ValidationContext(Protocol):
    """Deterministic reads of data this peer already holds (Holochain's ``must_get_*``)."""

    def get_record(self, action: ActionHash) -> Record | None:
        """The record with this action hash, if held."""

    def get_genesis(self, agent: AgentKey) -> Record | None:
        """The agent's genesis record (seq 0), if held."""

    def validated(self, action: ActionHash) -> bool:
        """True if this peer already judged that record ``Valid`` (it holds it as an authority)."""


class Judge(Protocol):
    """The engine as the record rules see it: verdicts, dependencies, parses and rules in force.

    Every member is deterministic in its arguments and the records the context holds.
    """

    network: CharterHash
    """The network whose rules these are (its charter's hash)."""

    def money(self, minor: int) -> str:
        """An amount in the network's currency, for a reason people read (``5.00 RVX``)."""

    def validate_record(
        self, record: Record, ctx: ValidationContext, *, signature_checked: bool = False
    ) -> Verdict:
        """The verdict on one record with its dependencies."""

    def dependency(self, action: ActionHash, ctx: ValidationContext) -> Record | Verdict:
        """A valid record a verdict depends on, or the verdict that stops it."""

    def parsed(self, record: Record, parse: Callable[[Any], T]) -> T:
        """``parse`` of the record's decoded entry, done once per entry."""

    def entry_verdict(self, entry: bytes, judge: Callable[[], Verdict]) -> Verdict:
        """``judge()`` of an entry shared by several records, once."""

    def rules_at(self, head: ActionHash | None, at: int, ctx: ValidationContext) -> Rules | Verdict:
        """The rules in force at ``at`` under the governance log ending at ``head``."""

    def balance_after(
        self, record: Record, agent: AgentKey, ctx: ValidationContext
    ) -> int | Verdict:
        """``agent``'s balance right after ``record`` (a credit-moving record of its chain)."""

    def proposal_decided(
        self, head: ActionHash | None, proposal: ActionHash, ctx: ValidationContext
    ) -> bool | Verdict:
        """Whether the log ending at ``head`` ratifies ``proposal``."""

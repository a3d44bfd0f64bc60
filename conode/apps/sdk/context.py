"""The SDK's validation context: the deterministic reads a validator may make (the record, the
rules in force, ``must_get``, ``party``, the author's role)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conode.chain import Record
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.validation import credit
from conode.validation.credit import Party
from conode.validation.governance import Rules
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

if TYPE_CHECKING:
    from conode.apps.sdk.app import App
    from conode.validation.engine import Engine, ValidationContext

__all__ = ["Context", "Fetched"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A dependency fetched through ``Context.must_get_entry``: the record, its type and entry.

    ``entry`` is read with the app's schema for the app's own types, and is the
    raw decoded value for other apps' types.
    """

    record: Record
    entry_type: str
    entry: Any

    @property
    def hash(self) -> ActionHash:
        return self.record.hash

    @property
    def author(self) -> AgentKey:
        return self.record.action.author


class Context:
    """What a validator may read: the record, its checked entry, the rules, and checked dependencies.

    Every read is deterministic (held data named by hash, checked by the
    engine before it is lent); a read that needs data this peer does not
    hold returns ``Missing``, which the validator returns as it is.
    """

    __slots__ = ("_author", "_engine", "_vctx", "app", "entry", "record", "rules")

    def __init__(
        self,
        app: App,
        record: Record,
        entry: Mapping[str, Any],
        rules: Rules,
        engine: Engine,
        vctx: ValidationContext,
    ) -> None:
        self.app = app
        self.record = record
        self.entry = entry
        self.rules = rules
        self._engine = engine
        self._vctx = vctx
        self._author: Party | Verdict | None = None

    @property
    def entry_type(self) -> str:
        """The record's full entry type (``app/type``)."""
        return self.record.action.entry_type or ""

    @property
    def author(self) -> AgentKey:
        return self.record.action.author

    @property
    def timestamp(self) -> int:
        """The record's timestamp (microseconds): "now" for every rule about this record."""
        return self.record.action.timestamp

    def must_get(self, action: ActionHash) -> Record | Verdict:
        """The valid record ``action`` names, or the verdict that stops it (``Missing``, ``Invalid``)."""
        return self._engine.dependency(action, self._vctx)

    def must_get_entry(
        self,
        action: ActionHash,
        entry_types: Collection[str],
        *,
        rule: str = "reference",
        what: str = "the reference",
    ) -> Fetched | Verdict:
        """The valid record ``action`` names, if it is of one of ``entry_types`` (else ``Invalid(rule)``)."""
        got = self._fetch([(what, action)], entry_types, rule)
        return got[0] if isinstance(got, list) else got

    def must_get_entries(
        self,
        actions: Sequence[ActionHash],
        entry_types: Collection[str],
        *,
        rule: str = "reference",
        what: str = "references",
    ) -> list[Fetched] | Verdict:
        """``must_get_entry`` of each (named ``what[i]``); every missing one is named in one ``Missing``."""
        return self._fetch([(f"{what}[{i}]", a) for i, a in enumerate(actions)], entry_types, rule)

    def _fetch(
        self, actions: Sequence[tuple[str, ActionHash]], entry_types: Collection[str], rule: str
    ) -> list[Fetched] | Verdict:
        # Missing ones are gathered so that the node fetches them in one round; the first
        # Invalid stops the walk (any Invalid is final, whichever this peer meets first).
        fetched: list[Fetched] = []
        missing: list[TypedHash] = []
        for where, action in actions:
            record = self.must_get(action)
            if isinstance(record, Missing):
                missing.extend(d for d in record.dependencies if d not in missing)
                continue
            if not isinstance(record, Record):
                return record
            got = self.app.fetched(record)
            if got.entry_type not in entry_types:
                wanted = " or ".join(sorted(entry_types))
                return Invalid(rule, f"{where} is {got.entry_type or 'not an entry'}, not {wanted}")
            fetched.append(got)
        if missing:
            return Missing(tuple(missing))
        return fetched

    def party(self, agent: AgentKey | None = None) -> Party | Verdict:
        """Who ``agent`` (default: the author) is at the record's time, or why it is no one.

        Read from the genesis of ``agent`` this peer holds: an app entry pins no genesis
        (``credit.party_by_held_genesis`` says what that leaves open for a forked agent).
        """
        if agent is None or agent == self.author:
            if self._author is None:
                self._author = credit.party_by_held_genesis(
                    self._engine, self.author, self.timestamp, self.rules, self._vctx
                )
            return self._author
        return credit.party_by_held_genesis(
            self._engine, agent, self.timestamp, self.rules, self._vctx
        )

    def role(self) -> str | Verdict:
        """The author's role (``Role.COOP``, ``Role.MEMBER``, ``Role.FOUNDATION``), or why it has none."""
        party = self.party()
        return party.role if isinstance(party, Party) else party

    def require_role(self, *roles: str) -> Verdict:
        """``VALID`` if the author is now a valid party of one of ``roles``; else ``Invalid("role")``."""
        party = self.party()
        if not isinstance(party, Party):
            return party
        if party.role not in roles:
            return Invalid(
                "role", f"{party.name} is a {party.role}; only {' or '.join(roles)} may post this"
            )
        return VALID

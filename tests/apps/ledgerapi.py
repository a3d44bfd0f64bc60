"""``LedgerAPI``: the node's ``AppAPI`` played by a ``conode.testing.Ledger``, for app functions.

A module of its own (``from ledgerapi import LedgerAPI``) so that a test which cannot take a
fixture (a Hypothesis state machine) uses the same class as ``conftest``'s ``api_for``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from conode.apps.sdk import App
from conode.chain import ActionKind, Record, author_record
from conode.errors import AppError, ValidationError
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.store.search import TextIndex
from conode.testing import Ledger
from conode.validation.activity import Activity
from conode.validation.governance import Rules
from conode.validation.verdict import Invalid, Valid

__all__ = ["LedgerAPI"]


class LedgerAPI:
    """An ``AppAPI`` over a ledger: commits are judged by the ledger's engine, the clock is its clock.

    ``search`` runs on a real ``TextIndex`` in an in-memory SQLite database,
    fed (as a node feeds it) with ``App.search_text`` of every record the
    ledger holds, however it was committed.
    """

    def __init__(self, ledger: Ledger, app: App) -> None:
        self.ledger = ledger
        self.app = app
        self.text_index = TextIndex(sqlite3.connect(":memory:", isolation_level=None))
        self._indexed: set[ActionHash] = set()

    @property
    def app_id(self) -> str:
        return self.app.app_id

    def agents(self) -> Sequence[AgentKey]:
        return [agent.key for agent in self.ledger.agents.values()]

    def name_of(self, agent: AgentKey) -> str:
        return next((a.name for a in self.ledger.agents.values() if a.key == agent), "?")

    def _own(self, entry_type: str) -> None:
        if entry_type.partition("/")[0] != self.app_id:
            raise AppError(f"{entry_type} is not a type of {self.app_id}")

    def _with_rules(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(entry)
        if out.get("rules") is None and self.ledger.gov_head is not None:
            out["rules"] = self.ledger.gov_head.to_bytes()
        return out

    def _commit(self, name: str, record: Record) -> ActionHash:
        verdict = self.ledger.commit(name, record)
        if not isinstance(verdict, Valid):
            rule = verdict.rule if isinstance(verdict, Invalid) else "missing"
            raise ValidationError(rule, str(verdict))
        return record.hash

    def rules(self) -> Rules:
        rules: Rules = self.ledger.rules_now()
        return rules

    def activity(self, agent: AgentKey) -> Activity:
        return self.ledger[self.ledger.name_of(agent)].activity

    async def commit(
        self, agent: AgentKey, entry_type: str, entry: Mapping[str, Any]
    ) -> ActionHash:
        self._own(entry_type)
        name = self.ledger.name_of(agent)
        activity = self.ledger[name].activity
        prepared = self.app.prepare(
            entry_type,
            self._with_rules(entry),
            last_credit=activity.last_credit,
            balance=activity.balance,
        )
        record = author_record(
            self.ledger[name].signer,
            activity.head,
            kind=ActionKind.CREATE,
            timestamp=self.ledger.now(),
            entry=prepared,
            entry_type=entry_type,
        )
        return self._commit(name, record)

    async def link(
        self, agent: AgentKey, link_type: str, base: TypedHash, target: TypedHash, tag: Any
    ) -> ActionHash:
        self._own(link_type)
        name = self.ledger.name_of(agent)
        record = author_record(
            self.ledger[name].signer,
            self.ledger[name].activity.head,
            kind=ActionKind.LINK,
            timestamp=self.ledger.now(),
            entry=self._with_rules(
                {"base": base.to_bytes(), "target": target.to_bytes(), "tag": tag}
            ),
            entry_type=link_type,
        )
        return self._commit(name, record)

    async def fetch_links(
        self, link_type: str, *bases: TypedHash, wait: float = 3.0
    ) -> Sequence[Record]:
        self._own(link_type)
        return []  # a ledger holds every chain: the network has nothing more

    def records(
        self, *entry_types: str, authors: Collection[AgentKey] | None = None
    ) -> Sequence[Record]:
        wanted = set(entry_types) or set(self.app.entry_types) | set(self.app.link_types)
        return [
            record
            for chain in self.ledger.chains()
            for record in chain
            if record.action.entry_type in wanted
            and (authors is None or record.action.author in authors)
        ]

    def get(self, action: ActionHash) -> Record | None:
        return self.ledger.held.get_record(action)

    def now(self) -> int:
        return self.ledger.clock

    def search(self, text: str, *entry_types: str, limit: int = 50) -> Sequence[Record]:
        for entry_type in entry_types:
            self._own(entry_type)
        for chain in self.ledger.chains():
            for record in chain:
                if record.hash not in self._indexed:
                    self._indexed.add(record.hash)
                    found = self.app.search_text(record)
                    if found is not None:
                        self.text_index.add(record.hash, record.action.entry_type or "", found)
        types = entry_types or self.app.searchable_types
        hits = self.text_index.search(text, types, limit)
        return [record for h in hits if (record := self.get(h)) is not None]

"""Records held in memory, lent to the engine as a ``ValidationContext`` (audits, tests)."""

from __future__ import annotations

from collections.abc import Iterable

from conode.chain import Record
from conode.hashes import ActionHash, AgentKey

__all__ = ["HeldRecords"]


class HeldRecords:
    """A plain index of records by action hash, and of genesis records by agent."""

    def __init__(self, records: Iterable[Record] = (), *, trusted: bool = False) -> None:
        """``trusted``: the records were already judged valid (as in an authority's store)."""
        self.trusted = trusted
        self._by_hash: dict[ActionHash, Record] = {}
        self._genesis: dict[AgentKey, Record] = {}
        self.add(records)

    def add(self, records: Iterable[Record]) -> None:
        """Hold these records too (the first genesis seen for an agent is kept)."""
        for record in records:
            self._by_hash[record.hash] = record
            if record.action.seq == 0:
                self._genesis.setdefault(record.action.author, record)

    def get_record(self, action: ActionHash) -> Record | None:
        return self._by_hash.get(action)

    def get_genesis(self, agent: AgentKey) -> Record | None:
        return self._genesis.get(agent)

    def validated(self, action: ActionHash) -> bool:
        return self.trusted and action in self._by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

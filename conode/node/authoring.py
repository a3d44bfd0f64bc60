"""Authoring on a node: records of hosted agents made, checked, stored and published.

Every record authored here goes in through ingest (the one door: every rule,
stored with its new activity state, queued for publishing in the same write)
and is refused while a payment session holds its chain (``ChainLocks``).
One author at a time: two records made from the same head would be a fork
of our own agent's chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import trio

from conode.chain import ActionKind, Record, author_record
from conode.errors import ValidationError
from conode.hashes import AgentKey
from conode.node.ingest import Ingest
from conode.node.settings import HostedAgent
from conode.store import NodeStore
from conode.validation.verdict import Invalid, Valid

__all__ = ["Authoring", "ChainLocks"]


class ChainLocks:
    """Which hosted chains a payment session holds (agent -> session key): nothing else may
    append there until the session lets go."""

    def __init__(self) -> None:
        self._held: dict[AgentKey, bytes] = {}

    def holder(self, agent: AgentKey) -> bytes | None:
        """The key of the session that holds ``agent``'s chain, if one does."""
        return self._held.get(agent)

    def take(self, agent: AgentKey, key: bytes) -> None:
        self._held[agent] = key

    def release(self, agent: AgentKey, key: bytes) -> None:
        """Let go of ``agent``'s chain if session ``key`` holds it (idempotent)."""
        if self._held.get(agent) == key:
            del self._held[agent]

    def holders(self) -> set[bytes]:
        """The sessions that hold a chain."""
        return set(self._held.values())

    def items(self) -> list[tuple[AgentKey, bytes]]:
        """Each held chain's agent and the key of the session that holds it."""
        return list(self._held.items())

    def __contains__(self, agent: object) -> bool:
        return agent in self._held

    def __len__(self) -> int:
        return len(self._held)


class Authoring:
    """Records authored for the hosted agents (``agents``, shared with the node)."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        locks: ChainLocks,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        published: Callable[[], None],
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.locks = locks
        self.agents = agents
        self.clock = clock
        self.published = published
        """Called once records are stored: publishing starts at once."""
        self._lock = trio.Lock()

    def hosted(self, agent: AgentKey) -> HostedAgent:
        """The hosted agent (``ValidationError`` if this node does not host it)."""
        hosted = self.agents.get(agent)
        if hosted is None:
            raise ValidationError("not-hosted", f"{agent.short()} is not hosted on this node")
        return hosted

    async def commit(self, agent: AgentKey, records: list[Record]) -> None:
        """Append records authored here (in order) after every rule passed; then publish them."""
        for record in records:
            if agent in self.locks:
                raise ValidationError("locked", "the chain is held by a payment session")
            verdict = await self.ingest.ingest(record, None)  # from no peer: ours, to publish
            if not isinstance(verdict, Valid):
                if isinstance(verdict, Invalid):
                    raise ValidationError(verdict.rule, verdict.reason)
                raise ValidationError("missing", str(verdict))
        self.published()

    async def create_entry(
        self,
        agent: AgentKey,
        entry_type: str,
        entry: Any,
        *,
        kind: ActionKind = ActionKind.CREATE,
        not_before: int = 0,
    ) -> Record:
        """Author, check, store and publish one record on a hosted agent's chain.

        ``not_before``: the earliest timestamp the record may carry (e.g. the
        time of the rules it names). ``entry`` may also be
        ``make(timestamp, activity)``, called under the author lock: an entry
        that depends on the record's time (a proposal's deadline) or on the
        chain as it stands (an app's credit move).
        """
        hosted = self.hosted(agent)
        async with self._lock:
            head = self.store.head(agent)
            timestamp = max(self.clock(), not_before, 0 if head is None else head.timestamp)
            if callable(entry):
                entry = entry(timestamp, self.store.activity(agent))
            record = author_record(
                hosted.signer, head, kind=kind, timestamp=timestamp, entry=entry, entry_type=entry_type
            )
            await self.commit(agent, [record])
        return record

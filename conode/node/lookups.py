"""Lookups: agents and chains this node does not hold, found and brought here for a name, a view
or an audit.

On a sharded network a node holds its share of the chains. A name no chain
held here gives is looked for among the agents whose host this node knows
(their signed claims, from hellos), each genesis fetched and held loose as a
dependency (evictable); a chain a view reads (balance, history, statement) is
fetched from its authorities and held a while, then shed as any chain off the
node's arc; an audit fetches what it finds missing and audits again. Every
record fetched goes in through ingest (``Pulls``): nothing is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import trio

from conode.chain import Record
from conode.errors import ValidationError
from conode.hashes import AgentKey
from conode.node.ingest import Ingest, Need
from conode.node.peer_client import tolerate
from conode.node.peers import Peers
from conode.node.pulls import Pulls
from conode.node.ring import Placement
from conode.node.settings import HostedAgent
from conode.node.views import Views
from conode.store import NodeStore
from conode.validation.admit import Needs
from conode.validation.audit import AuditReport, audit_chain
from conode.validation.charter import Charter
from conode.validation.engine import Engine

__all__ = ["AUDIT_FETCH_ROUNDS", "NAME_LOOKUPS", "NAME_LOOKUPS_AT_ONCE", "Lookups"]

AUDIT_FETCH_ROUNDS = 4
"""Rounds of fetching what an audit found missing, then auditing again (each record's
dependencies are a few: its counterparty's genesis and previous credit, fetched in one round or
two when one names another)."""

NAME_LOOKUPS = 64
"""Geneses fetched at most to look a name up that no chain held here gives (``find_named``)."""
NAME_LOOKUPS_AT_ONCE = 8


class Lookups:
    """Names, chains and audits of agents not held here, fetched from the peers through ``pulls``;
    ``hosts`` is who hosts each agent not hosted here (the peers' ``Claims.hosts``, read as it
    grows)."""

    def __init__(
        self,
        store: NodeStore,
        charter: Charter,
        engine: Engine,
        agents: Mapping[AgentKey, HostedAgent],
        peers: Peers,
        pulls: Pulls,
        ingestion: Ingest,
        placement: Placement,
        views: Views,
    ) -> None:
        self.store = store
        self.charter = charter
        self.engine = engine
        self.agents = agents
        self.hosts = peers.claims.hosts
        self.peers = peers
        self.pulls = pulls
        self.ingestion = ingestion
        self.placement = placement
        self.views = views

    async def fetch_chain(self, agent: AgentKey) -> int:
        """Bring ``agent``'s chain here from its host or any peer; how many records came.

        Peers connected a moment ago are greeted first: only greeted peers are asked, and a
        node that has just started (``recover``, a restored node catching up) has greeted none.
        """
        await self.peers.greet_new()
        return await self.pulls.fetch_chain(agent)

    def named(self, name: str) -> list[AgentKey]:
        """The agents called ``name``: hosted ones by their hosted name, if any, else the authors
        of held chains whose genesis gives that name."""
        hosted = [key for key, agent in self.agents.items() if agent.name == name]
        return hosted or self.views.named(name)

    async def find_named(self, name: str) -> list[AgentKey]:
        """The agents called ``name``: as ``named`` says, else among the agents whose host this
        node knows (their signed claims, from hellos) and whose genesis it lacks, each genesis
        fetched from its host and held loose as a dependency (evictable), ``NAME_LOOKUPS`` at
        most, a few at a time. On a sharded network a node holds its share of the chains, so a
        name it does not hold is looked for where the network told it who hosts whom."""
        found = self.named(name)
        if found:
            return found
        hosts = self.hosts
        await self.know_names(hosts)
        return sorted(a for a in hosts if self.views.name_of(a) == name)

    async def know_names(self, agents: Iterable[AgentKey]) -> None:
        """Bring here the geneses (the names) of ``agents`` this node lacks, each from its host
        if known, else its authorities, held loose as a dependency (evictable), ``NAME_LOOKUPS``
        at most, a few at a time; one that cannot be fetched stays unnamed (``?``)."""
        hosts = self.hosts
        lacking = [a for a in dict.fromkeys(agents) if self.views.genesis(a) is None]
        limit = trio.CapacityLimiter(NAME_LOOKUPS_AT_ONCE)

        async def fetch(agent: AgentKey) -> None:
            async with limit:
                with tolerate("fetching the genesis of %s for a name", agent.short()):
                    await self.pulls.must_get_genesis(agent, hosts.get(agent))

        async with trio.open_nursery() as nursery:
            for agent in lacking[:NAME_LOOKUPS]:
                nursery.start_soon(fetch, agent)

    async def chain_here(self, agent: AgentKey) -> None:
        """Bring ``agent``'s chain up to date here for a view of it (balance, history, statement):
        on a sharded network a node holds its share, so a chain it does not hold is fetched from
        its authorities and held a while (``Ingest.hold_chain``), then shed as any chain off its
        arc. ``ValidationError`` if no peer has it."""
        if self.placement.holds_chain(agent):
            return
        self.ingestion.hold_chain(agent)
        await self.fetch_chain(agent)
        if self.store.head(agent) is None:
            raise ValidationError("agent", f"no chain of {agent.short()} is held here or by its peers")

    async def audit(self, agent: AgentKey) -> AuditReport:
        """Fetch ``agent``'s chain and audit it and every chain it touches, as held here.

        A record judged ``Missing`` needs what a sharded node need not hold (a counterparty's
        genesis or previous credit): it is fetched as ingest fetches a dependency (``must_get``,
        from the authorities of the agents the record names) and the chain audited again, up to
        ``AUDIT_FETCH_ROUNDS`` times while something comes; what never comes stays a
        ``missing`` violation."""
        await self.fetch_chain(agent)
        store = self.store

        def at(position: tuple[AgentKey, int]) -> Record | None:
            held = store.hash_at(*position)
            return None if held is None else store.get(held)

        for _round in range(AUDIT_FETCH_ROUNDS):
            report = audit_chain(self.charter, agent, store, self.engine.apps, at=at)
            fetched = False
            for record, verdict in report.missing:
                fetched |= await self.pulls.fetch_needed(Need.of(Needs(verdict), record), None, 0)
            if not fetched:
                return report
        return audit_chain(self.charter, agent, store, self.engine.apps, at=at)

"""Status: what a node reports about itself (peers, chains, sessions, its ring arc, peers' clocks).

Read-only: each report reads the services' state as it is now, as JSON
values for the API (``status``, ``peers``) and the tests; nothing is decided
or written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conode.dht.transport import Transport
from conode.hashes import AgentKey
from conode.node.authoring import ChainLocks
from conode.node.gossip import Gossip
from conode.node.peer_client import PeerClient
from conode.node.peers import Peers
from conode.node.ring import Placement
from conode.node.rules_head import RulesHead
from conode.node.sessions import Sessions
from conode.node.settings import HostedAgent
from conode.node.views import Views
from conode.store import NodeStore
from conode.validation.charter import Charter

__all__ = ["StatusReport"]

_CLOCK_WARNING_US = 60_000_000
"""A peer's clock this far off this node's is worth a warning: NTP keeps them within a second."""


class StatusReport:
    """The node's report on itself, read from its services; ``hosts`` and ``peer_keys`` are who
    hosts each agent not hosted here and each greeted peer's node key (the peers', read as they
    grow)."""

    def __init__(
        self,
        store: NodeStore,
        transport: Transport,
        charter: Charter,
        client: PeerClient,
        agents: Mapping[AgentKey, HostedAgent],
        peers: Peers,
        placement: Placement,
        governance_head: RulesHead,
        sessions: Sessions,
        locks: ChainLocks,
        gossip: Gossip,
        views: Views,
    ) -> None:
        self.store = store
        self.transport = transport
        self.charter = charter
        self.client = client
        self.agents = agents
        self.hosts = peers.claims.hosts
        self.peer_keys = peers.peer_keys
        self.peers = peers
        self.placement = placement
        self.governance_head = governance_head
        self.sessions = sessions
        self.locks = locks
        self.gossip = gossip
        self.views = views

    def peer_listing(self) -> list[dict[str, Any]]:
        """Each connected peer: its id, addresses, node key (if greeted) and the agents it hosts."""
        hosted: dict[str, list[str]] = {}
        for agent, peer in self.hosts.items():
            hosted.setdefault(peer, []).append(self.views.name_of(agent))
        return [
            {
                "peer_id": peer,
                "addrs": self.transport.peer_addrs(peer),
                "node_key": str(self.peer_keys[peer]) if peer in self.peer_keys else None,
                "agents": sorted(hosted.get(peer, [])),
            }
            for peer in self.transport.connected_peers()
        ]

    def status(self) -> dict[str, Any]:
        """What the node is doing: peers, chains, pending, publishing, sessions, warrants."""
        return {
            "peer_id": self.transport.peer_id,
            "listen": self.transport.listen_addrs(),
            "network": str(self.charter.network_id),
            "peers": len(self.client.peers()),
            "agents": [{"name": a.name, "key": str(a.key)} for a in self.agents.values()],
            "chains": len(self.store.heads()),
            "pending": self.store.pending_count(),
            "publishing": self.store.publishing_count(),
            "sessions": self.sessions.open_count(),
            "locked_chains": len(self.locks),
            "warrants": len(self.store.warrants()),
            "heads_digest": self.gossip.heads_digest(),
            "clock_warnings": self.clock_warnings(),
            "ring": self.ring_status(),
        }

    def ring_status(self) -> dict[str, Any]:
        """Where this node stands on the location ring and the arc it holds (protocol section 11):
        ``placed`` (a new node holds only its agents' chains until it is), ``full_arc``, its
        ``location`` (8 hex digits; None if unplaced or full-arc), its arc's ``start`` and
        ``length`` (locations on a ring of 2**32) and ``fraction`` of the ring, and how many
        ordinary holders it knows of (itself included)."""
        placement = self.placement
        arc = placement.arc()
        loc = placement.place.loc
        return {
            "placed": placement.placed,
            "full_arc": placement.full_arc,
            "location": None if loc is None else f"{loc:08x}",
            "arc_start": arc.start,
            "arc_length": arc.length,
            "fraction": round(arc.fraction, 6),
            "holders_known": len(placement.view.ring().ordinary),
        }

    def clock_warnings(self) -> list[dict[str, Any]]:
        """Peers whose clock is off this node's by more than a minute (or half the network's
        tolerance, if that is less): a clock without NTP, which payments with it will not
        survive once past the tolerance (``docs/operator.md``)."""
        half = min(_CLOCK_WARNING_US, self.governance_head.params_now().clock_tolerance_us // 2)
        return [
            {"peer_id": peer, "offset_s": round(offset / 1e6, 1)}
            for peer, offset in sorted(self.peers.clock_offsets.items())
            if abs(offset) > half and peer in self.client.peers()
        ]

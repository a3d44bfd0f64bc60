"""Hosting claims: the signed claims this node makes for its agents and holds for others.

A *claim* is an agent's signed statement that a peer hosts it. This node
makes one for each agent it hosts (once per start) and believes another's
only when that agent signed it, and only the newest one, never on a peer's
word: a peer that says it hosts someone else's agent cannot divert payments
to itself. Claims come in hellos (``conode.node.peers``), with published
records (``Publishing``) and in answers to ``host`` (``conode.node.hosting``).

A hello says what its sender holds of the other's claims (``Hello.seen``, a
digest), so that a node tells each peer its agents' claims once: where the
peer's last hello showed it holds them all, neither a hello nor a publish to
it carries them. No I/O here: the rooms that talk to peers read and feed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from conode.crypto import SIG_MESSAGE, verify
from conode.dht import wire
from conode.dht.messages import Claim, claims_digest
from conode.dht.transport import PeerId, Transport
from conode.hashes import AgentKey
from conode.node.settings import HostedAgent

__all__ = ["Claims"]


class Claims:
    """The hosting claims this node holds: its own agents' (made here) and others' (believed
    only when signed by the agent, the newest); ``hosts`` says who hosts each agent not hosted
    here."""

    def __init__(
        self, transport: Transport, agents: Mapping[AgentKey, HostedAgent], clock: Callable[[], int]
    ) -> None:
        self.transport = transport
        self.agents = agents
        self.clock = clock
        self.hosts: dict[AgentKey, PeerId] = {}
        """Who hosts each agent not hosted here, as its newest signed claim says."""
        self._claims: dict[AgentKey, Claim] = {}
        self._hosted_by: dict[PeerId, set[AgentKey]] = {}  # the agents each peer's claims name
        self._they_hold: dict[PeerId, bytes] = {}
        """Each peer's digest of this node's claims, as its last hello said (``Hello.seen``)."""

    def claim_of(self, agent: AgentKey) -> Claim | None:
        """The claim held for ``agent``: its own (made here) if hosted here, else the newest
        signed one heard, if any (what ``host`` answers)."""
        if agent in self.agents:
            return self.own_claims([agent])[0]
        return self._claims.get(agent)

    def relayed(self) -> tuple[Claim, ...]:
        """The claims of agents not hosted here, as a hello relays them (at most ``MAX_ITEMS``)."""
        return tuple(c for a, c in self._claims.items() if a not in self.agents)[: wire.MAX_ITEMS]

    def heard_seen(self, peer: PeerId, seen: bytes | None) -> None:
        """Note what ``peer``'s hello says it holds of this node's claims (``Hello.seen``)."""
        if seen is None:  # an earlier version: it is told this node's claims every time
            self._they_hold.pop(peer, None)
        else:
            self._they_hold[peer] = seen

    def holds_our_claims(self, peer: PeerId) -> bool:
        """True if ``peer``'s last hello showed it holds every claim this node's agents made
        (neither a hello nor a publish to it need carry them)."""
        return self._they_hold.get(peer) == claims_digest(self.own_claims())

    def claims_seen(self, peer: PeerId) -> bytes:
        """The digest of ``peer``'s own agents' claims as this node holds them (``Hello.seen``)."""
        held = (self._claims.get(a) for a in self._hosted_by.get(peer, ()))
        return claims_digest(c for c in held if c is not None and c.peer == peer)

    def own_claims(self, agents: Iterable[AgentKey] | None = None) -> tuple[Claim, ...]:
        """Each hosted agent's (of ``agents``, or every one) signed statement that this peer
        hosts it (made once per start)."""
        own = self.transport.peer_id
        claims = []
        for key in self.agents if agents is None else agents:
            hosted = self.agents.get(key)
            if hosted is None:
                continue
            known = self._claims.get(key)
            if known is None or known.peer != own:
                unsigned = Claim(key, own, self.clock(), b"")
                signature = hosted.signer.sign(SIG_MESSAGE, unsigned.signed_bytes())
                known = self._claims[key] = Claim(key, own, unsigned.at, signature)
            claims.append(known)
        return tuple(claims)

    def learn_claim(self, claim: Claim) -> None:
        """Believe a hosting claim only if the agent signed it, and only the newest one."""
        known = self._claims.get(claim.agent)
        if claim.agent in self.agents or (known is not None and known.at >= claim.at):
            return
        if verify(claim.agent.raw, SIG_MESSAGE, claim.signed_bytes(), claim.signature):
            if known is not None:
                self._hosted_by.get(known.peer, set()).discard(claim.agent)
            self._hosted_by.setdefault(claim.peer, set()).add(claim.agent)
            self._claims[claim.agent] = claim
            self.hosts[claim.agent] = claim.peer

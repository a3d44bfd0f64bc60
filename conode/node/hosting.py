"""Who hosts an agent, and how a node learns it: the ``host`` protocol, asked and answered.

Who hosts an agent is learned only from that agent's own signed claim, the
newest one (``conode.node.claims``), never on a peer's word. Claims come in
hellos and with published records (``Publishing``), so an agent's
authorities know its host and answer ``host`` for it; a node that does not
know an agent's host asks them, then every peer once (``host_of``): known
peers not connected are dialled and every connected one asked, a few at a
time (``AT_ONCE``) and all within one request timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio

from conode.dht.messages import HostReply, HostRequest
from conode.dht.transport import Handler, PeerId
from conode.errors import NetworkError
from conode.hashes import AgentKey
from conode.node.claims import Claims
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.peers import AT_ONCE, Peers
from conode.node.ring import Placement

__all__ = ["Hosting"]


class Hosting:
    """Who hosts each agent: answered from the claims held, asked of the agent's authorities
    and peers when not known (``hosts``: the claims' map, the newest signed claim of each)."""

    def __init__(
        self, claims: Claims, peers: Peers, placement: Placement, client: PeerClient
    ) -> None:
        self.claims = claims
        self.peers = peers
        self.placement = placement
        self.client = client
        self.transport = client.transport
        self.hosts = claims.hosts
        """Who hosts each agent not hosted here, as its newest signed claim says (``Claims.hosts``)."""

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``host``."""
        return {HostRequest.protocol: serve(HostRequest.decode, self._on_host)}

    async def _on_host(self, peer: PeerId, request: HostRequest) -> HostReply:
        return HostReply(self.claims.claim_of(request.agent))

    async def learn_host_from(self, peer: PeerId, agent: AgentKey) -> None:
        """Ask ``peer`` itself for ``agent``'s hosting claim (a placed node's hello carries none):
        ``host``, then a hello, which an earlier version answers with its agents' claims."""
        with tolerate("asking %s for the claim of %s", peer, agent.short()):
            reply = await self.client.ask(peer, HostRequest(agent))
            if reply.claim is not None and reply.claim.agent == agent:
                self.claims.learn_claim(reply.claim)
        if self.hosts.get(agent) != peer:
            await self.peers.hello(peer)

    async def host_of(self, agent: AgentKey) -> PeerId:
        """The peer that hosts ``agent``: known, else asked of its authorities (which keep the
        hosting claims of the agents on their arc); then every peer once: known peers not
        connected are dialled, and every connected one asked for the claim (any that greeted
        the host, or the host itself, knows it), a few at a time and all within one request
        timeout (remembered peers that are gone cost one timeout, not one each).
        """
        if agent not in self.hosts:
            await self.placement.locate_agent(agent)
            for authority in self.placement.authorities_of(agent):
                with tolerate("asking %s who hosts %s", authority, agent.short()):
                    reply = await self.client.ask(authority, HostRequest(agent))
                    if reply.claim is not None and reply.claim.agent == agent:
                        self.claims.learn_claim(reply.claim)
                if agent in self.hosts:
                    break
        if agent not in self.hosts:
            dialer = self.peers.dialer
            await self._at_once(
                [partial(dialer.dial, addrs) for addrs in dialer.unconnected()], agent
            )
            # every connected peer, identified or not yet (a payment right after connecting), is
            # asked for the claim (``host``, then a hello: an earlier version's carries every
            # claim it knows); a foreign one refuses both, and is not greeted
            own = self.transport.peer_id
            peers = [p for p in self.transport.connected_peers() if p != own]
            await self._at_once(
                [partial(self.learn_host_from, peer, agent) for peer in peers], agent
            )
        host = self.hosts.get(agent)
        if host is None:
            raise NetworkError(f"no known node hosts {agent.short()}")
        return host

    async def _at_once(
        self, calls: Sequence[Callable[[], Awaitable[object]]], agent: AgentKey
    ) -> None:
        """Run ``calls`` side by side (at most ``AT_ONCE``), until the one ``agent`` is looked
        for has a known host, or one request timeout."""
        limit = trio.CapacityLimiter(AT_ONCE)

        async def one(call: Callable[[], Awaitable[object]]) -> None:
            async with limit:
                if agent not in self.hosts:
                    await call()

        with trio.move_on_after(self.client.request_timeout):
            async with trio.open_nursery() as nursery:
                for call in calls:
                    nursery.start_soon(one, call)

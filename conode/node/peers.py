"""Peers: hellos, hosting claims, dialling, routing, and who hosts an agent.

Nodes greet each other (``hello``) every ``hello_interval`` with their node
key, a signed claim by each hosted agent that this peer hosts it, the claims
of other hosts they know, their conode peers and their addresses. Who
hosts an agent is learned only from that agent's own signed claim, the
newest one, never on a peer's word: a peer that says it hosts someone else's
agent cannot divert payments to itself.

A *conode peer* is a connected peer of this network (``network_peers``) that
completed a hello with this node: only those are publishing targets, count
for receipts, are gossiped with, sent warrants, asked to witness, listed in
hellos and counted by ``status`` (``PeerClient.peers``). A foreign libp2p
peer is none of these. A hello lists at most ``HELLO_PEERS`` peers of at
most ``HELLO_ADDRS`` addresses, and only that many of a received hello are
read; the peers it names are dialled through a ``DialBook`` (bounded,
concurrent, backed off) and kept on disk only once they complete a hello
themselves. Remembered peers that stay unreachable are forgotten
(``conode.node.dialing``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Final

import trio

from conode.crypto import SIG_MESSAGE, Signer, verify
from conode.dht.messages import Claim, Hello
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import NetworkError
from conode.hashes import AgentKey
from conode.node.dialing import DialBook, stale
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.settings import HostedAgent
from conode.store import NodeStore

__all__ = ["HELLO_ADDRS", "HELLO_CLAIMS", "HELLO_PEERS", "PEER_SEEN_REFRESH_US", "Peers"]

log = logging.getLogger("conode.node")

PEER_SEEN_REFRESH_US: Final = 600_000_000
"""How often a peer's unchanged addresses are written again (hellos come every few seconds)."""
_AT_ONCE: Final = 16
"""How many peers ``host_of`` dials or greets side by side."""
_NEW_PEER_TICK: Final = 1.0
"""How soon (s) a newly connected peer of this network is greeted, whatever the hello interval."""
HELLO_PEERS: Final = 32
"""Most peers a hello lists, and most read from one received."""
HELLO_ADDRS: Final = 8
"""Most addresses a hello gives (or is read) for one peer."""
HELLO_CLAIMS: Final = 1024
"""Most hosting claims read from one hello (each costs a signature check, ~60 µs)."""


class Peers:
    """This node's peers: what they host, their node keys, their addresses."""

    def __init__(
        self,
        store: NodeStore,
        client: PeerClient,
        node_signer: Signer,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        interval: float,
    ) -> None:
        self.store = store
        self.client = client
        self.transport = client.transport
        self.key = AgentKey(node_signer.public_key)
        self.agents = agents
        self.clock = clock
        self.interval = interval
        self.hosts: dict[AgentKey, PeerId] = {}
        """Who hosts each agent not hosted here, as its newest signed claim says."""
        self.peer_keys: dict[PeerId, AgentKey] = {}
        """Each greeted peer's node key (its receipts are signed with it)."""
        self._claims: dict[AgentKey, Claim] = {}
        self._remembered: dict[str, tuple[list[str], int]] = {}
        self.dials = DialBook()
        """The dials this node owes (remembered peers, peers named in hellos), bounded."""
        self.clock_offsets: dict[PeerId, int] = {}
        """How far each greeted peer's clock is ahead of this node's (µs; negative: behind), as
        its last hello said (the message's time in flight counts as offset: a lower bound)."""

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``hello``."""
        return {Hello.protocol: serve(Hello.decode, self._on_hello)}

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Keep known peers connected and greeted (so hosts and peers lists stay fresh).

        Dials run in the background, a bounded number at once and backed off
        per peer: dead remembered peers never hold up the greeting of live ones.
        """
        task_status.started()
        last_round = -float("inf")
        while True:
            self.start_dials()
            if trio.current_time() - last_round >= self.interval:
                last_round = trio.current_time()
                await self._greet_all(new_only=False)
            else:
                await self._greet_all(new_only=True)
            await trio.sleep(min(self.interval, _NEW_PEER_TICK))

    def conode_peers(self) -> list[PeerId]:
        """Connected peers of this network that completed a hello with this node."""
        return self.client.peers()

    def start_dials(self) -> None:
        """Start the dials that are due (``DialBook.due``), each in the background."""
        own = self.transport.peer_id
        skip = {*self.transport.connected_peers(), own}
        now = self.clock()
        for peer, addrs, remembered in self.dials.due(self.store.known_peers(), skip, now):
            self.client.spawn(self._dial_one, peer, addrs, remembered)

    async def _dial_one(self, peer: PeerId, addrs: list[str], remembered: bool) -> None:
        answered = False
        try:
            with trio.move_on_after(2 * self.client.request_timeout):
                answered = await self.dial(addrs)
                if not answered and remembered:
                    await self.route_to(peer)
            answered = answered or peer in self.transport.connected_peers()
        finally:
            self.dials.done(peer, answered, self.clock(), remembered=remembered)
        if remembered and not answered:
            self._forget_if_stale(peer)

    def _forget_if_stale(self, peer: PeerId) -> None:
        """Forget a remembered peer unreachable for ``FORGET_AFTER_US`` (``conode.node.dialing``)."""
        for known, _addrs, seen in self.store.known_peers():
            if known == peer and stale(seen, self.dials.failures(peer), self.clock()):
                log.info("forgetting %s: not reachable since %d", peer, seen)
                self.store.forget_peer(peer)
                self._remembered.pop(peer, None)
                self.dials.forget(peer)

    async def greet_new(self) -> None:
        """Greet the connected peers of this network not greeted yet (within one timeout)."""
        await self._greet_all(new_only=True)

    async def _greet_all(self, *, new_only: bool) -> None:
        """Greet every connected peer of this network (``new_only``: those not greeted yet), a
        few at a time, within one timeout."""
        own = self.transport.peer_id
        greeted = self.peer_keys if new_only else {}
        peers = [p for p in self.transport.network_peers() if p != own and p not in greeted]
        limit = trio.CapacityLimiter(_AT_ONCE)

        async def one(peer: PeerId) -> None:
            async with limit:
                await self.hello(peer)

        with trio.move_on_after(2 * self.client.request_timeout):
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(one, peer)

    # -- hellos ------------------------------------------------------------------------------

    async def _on_hello(self, peer: PeerId, hello: Hello) -> Hello:
        self.learn_hello(peer, hello)
        return self.hello_message()

    async def hello(self, peer: PeerId) -> None:
        """Tell ``peer`` who this node hosts and whom it knows, and learn the same of it."""
        with tolerate("hello to %s", peer):
            self.learn_hello(peer, await self.client.ask(peer, self.hello_message()))

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer and greet it."""
        peer = await self.transport.connect(addr)
        await self.hello(peer)
        return peer

    def hello_message(self) -> Hello:
        """This node's hello: its key, its agents' claims, the hosts it knows, its conode peers
        (at most ``HELLO_PEERS``, of ``HELLO_ADDRS`` addresses each)."""
        peers = tuple(
            (p, tuple(self.transport.peer_addrs(p)[:HELLO_ADDRS]))
            for p in self.conode_peers()[:HELLO_PEERS]
        )
        hosts = tuple(c for agent, c in self._claims.items() if agent not in self.agents)
        addrs = tuple(self.transport.listen_addrs())
        return Hello(self.key, self._own_claims(), hosts, peers, addrs, self.clock())

    def _own_claims(self) -> tuple[Claim, ...]:
        """Each hosted agent's signed statement that this peer hosts it (made once per start)."""
        own = self.transport.peer_id
        claims = []
        for key, hosted in self.agents.items():
            known = self._claims.get(key)
            if known is None or known.peer != own:
                unsigned = Claim(key, own, self.clock(), b"")
                signature = hosted.signer.sign(SIG_MESSAGE, unsigned.signed_bytes())
                known = self._claims[key] = Claim(key, own, unsigned.at, signature)
            claims.append(known)
        return tuple(claims)

    def learn_hello(self, peer: PeerId, hello: Hello) -> None:
        """Learn a peer's node key, the agents it hosts, the hosts it knows, and its peers.

        The peer itself is remembered (it completed a hello); the first ``HELLO_PEERS`` peers
        it lists are offered to the dial book, and remembered only if they greet us too.
        """
        self.peer_keys[peer] = hello.node
        if hello.now is not None:
            self.clock_offsets[peer] = hello.now - self.clock()
        for claim in (*hello.agents, *hello.hosts)[:HELLO_CLAIMS]:
            self._learn_claim(claim)
        if hello.addrs is not None:
            self._remember_peer(peer, list(hello.addrs[:HELLO_ADDRS]))
        connected = set(self.transport.connected_peers())
        now = self.clock()
        for other, addrs in hello.peers[:HELLO_PEERS]:
            if other != self.transport.peer_id and other not in connected and addrs:
                self.dials.offer(other, addrs[:HELLO_ADDRS], now)
        if self.dials.waiting():
            self.start_dials()

    def _learn_claim(self, claim: Claim) -> None:
        """Believe a hosting claim only if the agent signed it, and only the newest one."""
        known = self._claims.get(claim.agent)
        if claim.agent in self.agents or (known is not None and known.at >= claim.at):
            return
        if verify(claim.agent.raw, SIG_MESSAGE, claim.signed_bytes(), claim.signature):
            self._claims[claim.agent] = claim
            self.hosts[claim.agent] = claim.peer

    def _remember_peer(self, peer: str, addrs: list[str]) -> None:
        """Keep a peer's addresses on disk, writing only when they change (hellos come often)."""
        now = self.clock()
        known = self._remembered.get(peer)
        if known is not None and known[0] == addrs and now - known[1] < PEER_SEEN_REFRESH_US:
            return
        self.store.remember_peer(peer, addrs, now)
        self._remembered[peer] = (list(addrs), now)

    # -- reaching peers --------------------------------------------------------------------------

    async def dial(self, addrs: list[str]) -> bool:
        """Connect to a peer at one of its addresses and greet it; False if none answered."""
        for addr in addrs:
            with tolerate("dialing %s", addr):
                await self.connect(addr)
                return True
        return False

    async def route_to(self, peer: PeerId) -> None:
        """A known peer that none of its old addresses reach: ask the routing table (Kademlia)."""
        find = getattr(self.transport, "find_peer", None)
        if find is None:
            return
        try:
            addrs = list(await find(peer))
        except NetworkError as exc:
            log.info("routing to %s: %s", peer, exc)
            return
        if addrs and await self.dial(addrs):
            self._remember_peer(peer, addrs)

    async def host_of(self, agent: AgentKey) -> PeerId:
        """The peer that hosts ``agent`` (asks every peer once if it is not known yet).

        Known peers not connected are dialled, and every connected one greeted, a few at a
        time and all within one request timeout: remembered peers that are gone cost one
        timeout, not one each.
        """
        if agent not in self.hosts:
            connected = set(self.transport.connected_peers())
            own = self.transport.peer_id
            gone = [
                addrs for peer_id, addrs, _seen in self.store.known_peers()
                if peer_id not in connected and peer_id != own and not self.dials.failures(peer_id)
            ]  # fmt: skip
            await self._at_once([partial(self.dial, addrs) for addrs in gone], agent)
            # every connected peer, identified or not yet (a payment right after connecting): a
            # foreign one refuses the hello protocol, and is not greeted
            peers = [p for p in self.transport.connected_peers() if p != own]
            await self._at_once([partial(self.hello, peer) for peer in peers], agent)
        host = self.hosts.get(agent)
        if host is None:
            raise NetworkError(f"no known node hosts {agent.short()}")
        return host

    async def _at_once(
        self, calls: Sequence[Callable[[], Awaitable[object]]], agent: AgentKey
    ) -> None:
        """Run ``calls`` side by side (at most ``_AT_ONCE``), until the one ``agent`` is looked
        for has a known host, or one request timeout."""
        limit = trio.CapacityLimiter(_AT_ONCE)

        async def one(call: Callable[[], Awaitable[object]]) -> None:
            async with limit:
                if agent not in self.hosts:
                    await call()

        with trio.move_on_after(self.client.request_timeout):
            async with trio.open_nursery() as nursery:
                for call in calls:
                    nursery.start_soon(one, call)

"""Peers: hellos, places on the ring, greeting rounds, and the conode peers.

Nodes greet each other (``hello``) with their node key, where they stand on
the ring (``place``) and where some others do (``places``, with ages), a
signed claim by each hosted agent that this peer hosts it (left out where
the peer showed it holds them: a hello says what it holds of the other's
claims, ``Hello.seen``; the claims themselves are ``conode.node.claims``'),
the claims of other agents they hold, a few peers' addresses and their own.
Every ``hello_interval`` a node greets one of its ring neighbours (the peers
whose arcs overlap its own) or its arc's bound (the holder its arc starts
after), in turn, and one other peer it knows of, chosen at random, so
that places spread through the network in a few rounds without every node
greeting every other; a node that is not placed yet, or sees few places,
greets every peer it is connected to. A newly connected peer of this network
is greeted within ``_NEW_PEER_TICK`` whatever the interval. A neighbour that
does not answer is forgotten by the ring (``Placement.forget``): its share
falls to the others.

A *conode peer* is a connected peer of this network (``network_peers``) that
completed a hello with this node: only those are publishing targets, count
for receipts, are gossiped with, sent warrants, asked to witness, listed in
hellos and counted by ``status`` (``PeerClient.peers``). A foreign libp2p
peer is none of these. A hello lists at most ``HELLO_PEERS`` peers of at
most ``HELLO_ADDRS`` addresses, and only that many of a received hello are
read; the addresses of the peers it names are noted in memory (so that a
peer known only by its place can be reached), and while the ring is small
they are dialled. A peer is kept on disk only once it completes a hello
itself. Where peers are reached and the dials that reach them are this
room's ``Dialer`` (``conode.node.dialer``); who hosts an agent is
``conode.node.hosting``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Final

import trio

from conode.crypto import Signer
from conode.dht.messages import MAX_PLACES, Claim, Hello
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import NetworkError, RemoteProtocolError
from conode.hashes import AgentKey
from conode.node.claims import Claims
from conode.node.dialer import Dialer
from conode.node.peer_client import PeerClient, serve
from conode.node.ring import PLACEMENT_WAIT_S, Placement
from conode.store import NodeStore

__all__ = ["AT_ONCE", "HELLO_ADDRS", "HELLO_CLAIMS", "HELLO_PEERS", "Peers"]

log = logging.getLogger("conode.node")

AT_ONCE: Final = 16
"""How many peers are greeted side by side (and dialled or asked by ``Hosting.host_of``)."""
_NEW_PEER_TICK: Final = 1.0
"""How soon (s) a newly connected peer of this network is greeted, whatever the hello interval."""
HELLO_PEERS: Final = 32
"""Most peers a hello lists, and most read from one received."""
HELLO_ADDRS: Final = 8
"""Most addresses a hello gives (or is read) for one peer."""
HELLO_CLAIMS: Final = 1024
"""Most hosting claims read from one hello (each costs a signature check, ~60 µs)."""
_FEW_PLACES: Final = 3
"""A node that knows fewer places than this many times R greets every connected peer."""
_PROBE_MAX_S: Final = 20.0
"""The longest wait between two greetings of a forgotten peer."""
_PLACES_SENT: Final = 8
"""The most places of other peers a placed node's hello passes on."""


class Peers:
    """This node's peers: their places, their node keys, their clocks; greeted in rounds."""

    def __init__(
        self,
        store: NodeStore,
        client: PeerClient,
        node_signer: Signer,
        claims: Claims,
        clock: Callable[[], int],
        interval: float,
        placement: Placement,
        rng: random.Random,
        ring_interval: float = 30.0,
    ) -> None:
        self.client = client
        self.transport = client.transport
        self.key = AgentKey(node_signer.public_key)
        self.claims = claims
        self.clock = clock
        self.interval = interval
        self.ring_interval = ring_interval
        self.placement = placement
        self.rng = rng
        self.peer_keys: dict[PeerId, AgentKey] = {}
        """Each greeted peer's node key (its receipts are signed with it)."""
        self.dialer = Dialer(store, client, clock, self.hello)
        """Where peers may be reached, and the dials this node owes them (each greeted)."""
        self.clock_offsets: dict[PeerId, int] = {}
        """How far each greeted peer's clock is ahead of this node's (µs; negative: behind), as
        its last hello said (the message's time in flight counts as offset: a lower bound)."""
        self._turn = -1
        self._probes: dict[PeerId, tuple[float, float]] = {}  # gone peer -> (next probe, backoff)

    @property
    def store(self) -> NodeStore:
        """The store the dialer keeps peers in (replaced with the node's: ``Node.store``)."""
        return self.dialer.store

    @store.setter
    def store(self, store: NodeStore) -> None:
        self.dialer.store = store

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``hello``."""
        return {Hello.protocol: serve(Hello.decode, self._on_hello)}

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Keep known peers connected and greeted; place this node when it can.

        Every interval (``hello_interval`` while few places are known, ``ring_interval`` after)
        it greets ``targets()``; in between, every second, the newly connected peers of this
        network. Dials run in the background, a bounded number at once and backed off per
        peer: dead remembered peers never hold up the greeting of live ones.
        """
        task_status.started()
        self.client.spawn(self._place_alone_later)
        self.client.spawn(self._probe_gone)
        last_round = -float("inf")
        while True:
            self.dialer.start_dials()
            self.placement.expire()
            interval = self.interval if self._few_places() else self.ring_interval
            if trio.current_time() - last_round >= interval:
                last_round = trio.current_time()
                await self._greet(self.targets())
            else:
                await self._greet_all(new_only=True)
            await trio.sleep(min(self.interval, _NEW_PEER_TICK))

    def conode_peers(self) -> list[PeerId]:
        """Connected peers of this network that completed a hello with this node."""
        return self.client.peers()

    async def greet_new(self) -> None:
        """Greet the connected peers of this network not greeted yet (within one timeout)."""
        await self._greet_all(new_only=True)

    async def _greet_all(self, *, new_only: bool) -> None:
        """Greet every connected peer of this network (``new_only``: those not greeted yet), a
        few at a time, within one timeout."""
        own = self.transport.peer_id
        greeted = self.peer_keys if new_only else {}
        await self._greet([p for p in self.transport.network_peers() if p != own and p not in greeted])

    async def _greet(self, peers: Sequence[PeerId]) -> None:
        """Greet ``peers``, a few at a time, within one timeout (a peer that is gone costs its
        timeout once)."""
        limit = trio.CapacityLimiter(AT_ONCE)

        async def one(peer: PeerId) -> None:
            async with limit:
                await self.hello(peer)

        with trio.move_on_after(2 * self.client.request_timeout):
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(one, peer)

    async def _place_alone_later(self) -> None:
        """A node that hears of no placed peer for a while is the first: it places itself."""
        await trio.sleep(PLACEMENT_WAIT_S)
        if not self.placement.placed:
            self.placement.choose()
            await self._announce()

    async def _probe_gone(self) -> None:
        """Greet peers the ring forgot (they did not answer) now and then, each less and less
        often (``hello_interval`` doubling up to ``_PROBE_MAX_S``): one that answers again is
        back, after a partition healed, and so may be every other forgotten peer."""
        while True:
            await trio.sleep(self.interval)
            now = trio.current_time()
            gone = [PeerId(p) for p in self.placement.view.gone()]
            self._probes = {p: self._probes.get(p, (now + self.interval, self.interval)) for p in gone}
            due = [p for p in gone if self._probes[p][0] <= now]
            for peer in self.rng.sample(due, min(len(due), 2)):
                backoff = min(self._probes[peer][1] * 2, _PROBE_MAX_S)
                self._probes[peer] = (now + backoff, backoff)
                self.client.spawn(self.hello, peer)

    async def _greet_gone(self) -> None:
        """A forgotten peer answered: greet every forgotten peer now."""
        await self._greet([PeerId(p) for p in self.placement.view.gone()])

    async def _announce(self) -> None:
        """Tell every connected peer of this network where this node now stands."""
        own = self.transport.peer_id
        await self._greet([p for p in self.transport.network_peers() if p != own])

    def targets(self) -> list[PeerId]:
        """Whom to greet this round: one of the peers whose leaving moves this node's arc (its
        ring neighbours and its arc's bound, ``Placement.watched``; in turn, so that one gone
        is forgotten within a few rounds rather than when its place expires) and one other
        known peer at random; every connected peer of this network while this node is not
        placed or knows few places."""
        own = self.transport.peer_id
        view = self.placement.view
        known = [PeerId(p) for p, _place, _age in view.known(self.clock())]
        watched = self.placement.watched()
        chosen: list[PeerId] = []
        if self._few_places():
            connected = self.transport.network_peers()
            chosen = [*watched, *(p for p in connected if p not in watched)]
        elif watched:
            self._turn = (self._turn + 1) % len(watched)
            chosen = [watched[self._turn]]
        others = [p for p in known if p not in chosen]
        if others:
            chosen.append(self.rng.choice(others))
        return [p for p in dict.fromkeys(chosen) if p != own]

    def _few_places(self) -> bool:
        """True while this node is not placed or knows few places (or is of an earlier version):
        it greets every connected peer and relays every hosting claim it knows, as every node
        did before sharding."""
        known = len(self.placement.view.known(self.clock()))
        few = known < _FEW_PLACES * self.placement.view.replication
        return not self.placement.placed or few or self.placement.legacy

    # -- hellos ------------------------------------------------------------------------------

    async def _on_hello(self, peer: PeerId, hello: Hello) -> Hello:
        self.learn_hello(peer, hello)
        return self.hello_message(peer)

    async def hello(self, peer: PeerId) -> None:
        """Tell ``peer`` who this node is, hosts and knows, and learn the same of it; a peer that
        cannot be reached is forgotten by the ring."""
        was_gone = peer in self._probes
        try:
            sent = self.hello_message(peer)
            self.learn_hello(peer, await self.client.ask(peer, sent))
            if not sent.agents and self.claims.agents and not self.claims.holds_our_claims(peer):
                # it no longer holds them (it restarted): say them again now
                self.learn_hello(peer, await self.client.ask(peer, self.hello_message(peer)))
            if was_gone:
                self._probes.pop(peer, None)
                self.client.spawn(self._greet_gone)
        except NetworkError as exc:  # the ring forgets it (``PeerClient.on_unreachable``)
            log.info("hello to %s: %s", peer, exc)
        except RemoteProtocolError as exc:
            log.info("hello to %s: %s", peer, exc)

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer and greet it (``Dialer.connect``)."""
        return await self.dialer.connect(addr)

    def hello_message(self, peer: PeerId | None = None) -> Hello:
        """This node's hello (to ``peer``, or to anyone): its key and place, its agents' claims
        (left out where ``peer``'s last hello showed it holds them all, ``Hello.seen``), what
        it holds of ``peer``'s claims (``seen``), and a few others' places with their
        addresses; while it knows few places (a small network) also every claim it knows, and
        its conode peers (at most ``HELLO_PEERS``, of ``HELLO_ADDRS`` addresses each), as every
        node did before sharding. A placed node's agents' claims also go with its published
        records to their authorities."""
        now = self.clock()
        known = self.placement.view.known(now)
        few = self._few_places()
        near = set(self.placement.neighbours())
        places = [item for item in known if item[0] in near]
        rest = [item for item in known if item[0] not in near]
        count = MAX_PLACES if few else _PLACES_SENT
        places = (places + self.rng.sample(rest, min(len(rest), max(0, count - len(places)))))[:count]
        if few:
            shown = [*self.conode_peers(), *(PeerId(p) for p, _pl, _a in places)]
        else:
            shown = [PeerId(p) for p, _pl, _a in places]
        peers = tuple(
            (p, tuple(self.dialer.addresses(p)[:HELLO_ADDRS])) for p in list(dict.fromkeys(shown))[:HELLO_PEERS]
        )
        # who greets this node learns whom it hosts (a few claims), once
        claims = self.claims
        agents = () if peer is not None and claims.holds_our_claims(peer) else claims.own_claims()
        hosts: tuple[Claim, ...] = claims.relayed() if few else ()
        addrs = tuple(self.transport.listen_addrs())
        return Hello(
            self.key, agents, hosts, peers, addrs, self.clock(),
            self.placement.place, tuple((PeerId(p), place, age) for p, place, age in places),
            None if peer is None else claims.claims_seen(peer),
        )  # fmt: skip

    def learn_hello(self, peer: PeerId, hello: Hello) -> None:
        """Learn a peer's node key, place, the agents it hosts, the hosts and places it knows,
        and its peers.

        The peer itself is remembered (it completed a hello); the addresses of the first
        ``HELLO_PEERS`` peers it lists are noted in memory, and while this node knows few
        places (or is of an earlier version, which meshed) they are offered to the dial book;
        they are remembered on disk only if they greet us too.
        """
        self.peer_keys[peer] = hello.node
        self.claims.heard_seen(peer, hello.seen)
        if hello.now is not None:
            self.clock_offsets[peer] = hello.now - self.clock()
        for claim in (*hello.agents, *hello.hosts)[:HELLO_CLAIMS]:
            self.claims.learn_claim(claim)
        if hello.addrs is not None:
            self.dialer.remember(peer, list(hello.addrs[:HELLO_ADDRS]))
        self.placement.hear(peer, hello.place)
        for other, place, age in hello.places:
            self.placement.hear(other, place, age)
        connected = set(self.transport.connected_peers())
        mesh = self._few_places()
        now = self.clock()
        for other, addrs in hello.peers[:HELLO_PEERS]:
            if other != self.transport.peer_id and other not in connected and addrs:
                self.dialer.heard(other, list(addrs[:HELLO_ADDRS]))
                if mesh:
                    self.dialer.dials.offer(other, addrs[:HELLO_ADDRS], now)
        if self.dialer.dials.waiting():
            self.dialer.start_dials()
        if not self.placement.placed and self.placement.knows_a_placed_peer():
            self.placement.choose()
            self.client.spawn(self._announce)

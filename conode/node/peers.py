"""Peers: hellos, places on the ring, hosting claims, dialling, routing, and who hosts an agent.

Nodes greet each other (``hello``) with their node key, where they stand on
the ring (``place``) and where some others do (``places``, with ages), a
signed claim by each hosted agent that this peer hosts it (left out where
the peer showed it holds them: a hello says what it holds of the other's
claims, ``Hello.seen``), the claims of other agents they hold, a few peers'
addresses and their own. Every ``hello_interval`` a node greets its ring
neighbours (the peers whose arcs overlap its own) and one other peer it knows
of, chosen at random, so that places spread through the network in a few
rounds without every node greeting every other; a node that is not placed
yet, or sees few places, greets every peer it is connected to. A newly
connected peer of this network is greeted within ``_NEW_PEER_TICK`` whatever
the interval. A neighbour that
does not answer is forgotten by the ring (``Placement.forget``): its share
falls to the others.

Who hosts an agent is learned only from that agent's own signed claim, the
newest one, never on a peer's word: a peer that says it hosts someone else's
agent cannot divert payments to itself. Claims come in hellos and with
published records (``Publishing``), so an agent's authorities know its
host and answer ``host`` for it; a node that does not know an agent's host
asks them.

A *conode peer* is a connected peer of this network (``network_peers``) that
completed a hello with this node: only those are publishing targets, count
for receipts, are gossiped with, sent warrants, asked to witness, listed in
hellos and counted by ``status`` (``PeerClient.peers``). A foreign libp2p
peer is none of these. A hello lists at most ``HELLO_PEERS`` peers of at
most ``HELLO_ADDRS`` addresses, and only that many of a received hello are
read; the addresses of the peers it names are noted in memory (at most
``_HEARD_MAX``, so that a peer known only by its place can be reached), and
while the ring is small they are dialled through a ``DialBook`` (bounded,
concurrent, backed off). A peer is kept on disk only once it completes a
hello itself. Remembered peers that stay unreachable are forgotten
(``conode.node.dialing``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Final

import trio

from conode.crypto import SIG_MESSAGE, Signer, verify
from conode.dht import wire
from conode.dht.messages import MAX_PLACES, Claim, Hello, HostReply, HostRequest, claims_digest
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import NetworkError, RemoteProtocolError
from conode.hashes import AgentKey
from conode.node.dialing import DialBook, stale
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.ring import PLACEMENT_WAIT_S, Placement
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
_FEW_PLACES: Final = 3
"""A node that knows fewer places than this many times R greets every connected peer."""
_PROBE_MAX_S: Final = 20.0
"""The longest wait between two greetings of a forgotten peer."""
_PLACES_SENT: Final = 8
"""The most places of other peers a placed node's hello passes on."""
_HEARD_MAX: Final = 4096
"""Most peers whose addresses, heard in hellos, are kept in memory (the oldest go first)."""


class Peers:
    """This node's peers: their places, what they host, their node keys, their addresses."""

    def __init__(
        self,
        store: NodeStore,
        client: PeerClient,
        node_signer: Signer,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        interval: float,
        placement: Placement,
        rng: random.Random,
        ring_interval: float = 30.0,
    ) -> None:
        self.store = store
        self.client = client
        self.transport = client.transport
        self.key = AgentKey(node_signer.public_key)
        self.agents = agents
        self.clock = clock
        self.interval = interval
        self.ring_interval = ring_interval
        self.placement = placement
        self.rng = rng
        self.hosts: dict[AgentKey, PeerId] = {}
        """Who hosts each agent not hosted here, as its newest signed claim says."""
        self.peer_keys: dict[PeerId, AgentKey] = {}
        """Each greeted peer's node key (its receipts are signed with it)."""
        self._claims: dict[AgentKey, Claim] = {}
        self._hosted_by: dict[PeerId, set[AgentKey]] = {}  # the agents each peer's claims name
        self._they_hold: dict[PeerId, bytes] = {}
        """Each peer's digest of this node's claims, as its last hello said (``Hello.seen``)."""
        self._remembered: dict[str, tuple[list[str], int]] = {}
        self.dials = DialBook()
        """The dials this node owes (remembered peers, peers named in hellos), bounded."""
        self.clock_offsets: dict[PeerId, int] = {}
        """How far each greeted peer's clock is ahead of this node's (µs; negative: behind), as
        its last hello said (the message's time in flight counts as offset: a lower bound)."""
        self._turn = -1
        self._probes: dict[PeerId, tuple[float, float]] = {}  # gone peer -> (next probe, backoff)
        self._heard: dict[PeerId, list[str]] = {}  # addresses named in hellos, oldest first
        client.addresses = self.addresses

    def handlers(self) -> dict[str, Handler]:
        """The protocols it answers: ``hello`` and ``host``."""
        return {
            Hello.protocol: serve(Hello.decode, self._on_hello),
            HostRequest.protocol: serve(HostRequest.decode, self._on_host),
        }

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
            self.start_dials()
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
        await self._greet([p for p in self.transport.network_peers() if p != own and p not in greeted])

    async def _greet(self, peers: Sequence[PeerId]) -> None:
        """Greet ``peers``, a few at a time, within one timeout (a peer that is gone costs its
        timeout once)."""
        limit = trio.CapacityLimiter(_AT_ONCE)

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
        """Whom to greet this round: one ring neighbour (in turn) and one other known peer at
        random; every connected peer of this network while this node is not placed or knows
        few places."""
        own = self.transport.peer_id
        view = self.placement.view
        known = [PeerId(p) for p, _place, _age in view.known(self.clock())]
        neighbours = self.placement.neighbours()
        chosen: list[PeerId] = []
        if self._few_places():
            connected = self.transport.network_peers()
            chosen = [*neighbours, *(p for p in connected if p not in neighbours)]
        elif neighbours:
            self._turn = (self._turn + 1) % len(neighbours)
            chosen = [neighbours[self._turn]]
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
            if not sent.agents and self.agents and not self.holds_our_claims(peer):
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
        """Connect to a peer and greet it."""
        peer = await self.transport.connect(addr)
        await self.hello(peer)
        return peer

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
            (p, tuple(self.addresses(p)[:HELLO_ADDRS])) for p in list(dict.fromkeys(shown))[:HELLO_PEERS]
        )
        # who greets this node learns whom it hosts (a few claims), once
        agents = () if peer is not None and self.holds_our_claims(peer) else self.own_claims()
        hosts: tuple[Claim, ...] = ()
        if few:
            hosts = tuple(c for a, c in self._claims.items() if a not in self.agents)[: wire.MAX_ITEMS]
        addrs = tuple(self.transport.listen_addrs())
        return Hello(
            self.key, agents, hosts, peers, addrs, self.clock(),
            self.placement.place, tuple((PeerId(p), place, age) for p, place, age in places),
            None if peer is None else self.claims_seen(peer),
        )  # fmt: skip

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

    def learn_hello(self, peer: PeerId, hello: Hello) -> None:
        """Learn a peer's node key, place, the agents it hosts, the hosts and places it knows,
        and its peers.

        The peer itself is remembered (it completed a hello); the addresses of the first
        ``HELLO_PEERS`` peers it lists are noted in memory, and while this node knows few
        places (or is of an earlier version, which meshed) they are offered to the dial book;
        they are remembered on disk only if they greet us too.
        """
        self.peer_keys[peer] = hello.node
        if hello.seen is None:  # an earlier version: it is told this node's claims every time
            self._they_hold.pop(peer, None)
        else:
            self._they_hold[peer] = hello.seen
        if hello.now is not None:
            self.clock_offsets[peer] = hello.now - self.clock()
        for claim in (*hello.agents, *hello.hosts)[:HELLO_CLAIMS]:
            self.learn_claim(claim)
        if hello.addrs is not None:
            self._remember_peer(peer, list(hello.addrs[:HELLO_ADDRS]))
        self.placement.hear(peer, hello.place)
        for other, place, age in hello.places:
            self.placement.hear(other, place, age)
        connected = set(self.transport.connected_peers())
        mesh = self._few_places()
        now = self.clock()
        for other, addrs in hello.peers[:HELLO_PEERS]:
            if other != self.transport.peer_id and other not in connected and addrs:
                self._heard_addresses(other, list(addrs[:HELLO_ADDRS]))
                if mesh:
                    self.dials.offer(other, addrs[:HELLO_ADDRS], now)
        if self.dials.waiting():
            self.start_dials()
        if not self.placement.placed and self.placement.knows_a_placed_peer():
            self.placement.choose()
            self.client.spawn(self._announce)

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

    def _remember_peer(self, peer: str, addrs: list[str]) -> None:
        """Keep a peer's addresses on disk, writing only when they change (hellos come often)."""
        now = self.clock()
        known = self._remembered.get(peer)
        if known is not None and known[0] == addrs and now - known[1] < PEER_SEEN_REFRESH_US:
            return
        self.store.remember_peer(peer, addrs, now)
        self._remembered[peer] = (list(addrs), now)

    def _heard_addresses(self, peer: PeerId, addrs: list[str]) -> None:
        """Note where a peer named in a hello may be reached (in memory, at most ``_HEARD_MAX``
        peers, the oldest forgotten first)."""
        self._heard.pop(peer, None)
        self._heard[peer] = addrs
        while len(self._heard) > _HEARD_MAX:
            del self._heard[next(iter(self._heard))]

    def addresses(self, peer: PeerId) -> list[str]:
        """Where ``peer`` may be reached: what the transport knows, else what it last said, else
        what a hello said."""
        found = self.transport.peer_addrs(peer)
        if found:
            return found
        known = self._remembered.get(peer)
        if known is not None:
            return list(known[0])
        return list(self._heard.get(peer, ()))

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

    # -- who hosts an agent -------------------------------------------------------------------------

    async def _on_host(self, peer: PeerId, request: HostRequest) -> HostReply:
        if request.agent in self.agents:
            return HostReply(self.own_claims([request.agent])[0])
        return HostReply(self._claims.get(request.agent))

    async def learn_host_from(self, peer: PeerId, agent: AgentKey) -> None:
        """Ask ``peer`` itself for ``agent``'s hosting claim (a placed node's hello carries none):
        ``host``, then a hello, which an earlier version answers with its agents' claims."""
        with tolerate("asking %s for the claim of %s", peer, agent.short()):
            reply = await self.client.ask(peer, HostRequest(agent))
            if reply.claim is not None and reply.claim.agent == agent:
                self.learn_claim(reply.claim)
        if self.hosts.get(agent) != peer:
            await self.hello(peer)

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
                        self.learn_claim(reply.claim)
                if agent in self.hosts:
                    break
        if agent not in self.hosts:
            connected = set(self.transport.connected_peers())
            own = self.transport.peer_id
            gone = [
                addrs for peer_id, addrs, _seen in self.store.known_peers()
                if peer_id not in connected and peer_id != own and not self.dials.failures(peer_id)
            ]  # fmt: skip
            await self._at_once([partial(self.dial, addrs) for addrs in gone], agent)
            # every connected peer, identified or not yet (a payment right after connecting), is
            # asked for the claim (``host``, then a hello: an earlier version's carries every
            # claim it knows); a foreign one refuses both, and is not greeted
            peers = [p for p in self.transport.connected_peers() if p != own]
            await self._at_once([partial(self.learn_host_from, peer, agent) for peer in peers], agent)
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

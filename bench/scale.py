"""Simulation of a network of N real nodes in one process: what each stores, what it sends,
how fast records reach their holders, under payments, a partition and churn.

Every node is the real ``Node`` (its own SQLite store on tmpfs, opened without fsync) on the
in-memory transport, under trio's ``MockClock(autojump_threshold=0)``: time is simulated (a
node's timers fire in simulated seconds, whatever the CPU), every figure below is simulated
time except the CPU seconds. Each node hosts a co-op and 9 members (10 agents). The run:

1. **setup**: N nodes start, commit their agents' geneses, and connect (each to node 0 and to
   two random earlier nodes); then the network settles until every record is where it belongs;
2. **steady**: payments between random agents (``--rate`` a node a simulated minute) for
   ``--minutes``; bytes are counted over this window, per node and protocol, by wrapping each
   node's transport (request and response payloads, framing left out);
3. **partition**: the nodes split in two halves for 60 s, paying within each half, then heal;
4. **churn**: 10 % of the nodes leave for good and 10 % new nodes (co-ops the charter named
   from the start) join and commit their geneses, while payments go on;
5. **settle**, then the checks.

Figures, for each N:

- records stored per node, mean and max, as a fraction of every record committed, the node's
  own agents' chains left out (target 3·R/N);
- bytes sent per node per simulated minute in the steady window, mean and max, and
  ``bytes_ratio``: that over the bytes of the records the node must hold that were made in the
  window (max over nodes; target 2);
- time until a record authored in the steady window holds R receipts, p50 and p99 (target p50
  1 s);
- heal: time after the partition heals until every record made during it is held by every
  node that must hold it (target 30 s);
- join: time until a joined node holds everything it must hold of what existed when it joined;
- records lost: records committed (found in any store, the leavers' included) that no live
  node holds at the end (must be 0);
- CPU seconds of the whole simulation, and where it went (``--profile``).

What "must hold" means is the network's own rule: a record's holders are the R authorities of
its author's location on the ring of the live nodes' places (plus any full-arc node), and its
author's home node; with ``--legacy`` (every node as before sharding: full replication, heads
gossip) every live node.

Usage: ``python bench/scale.py [--quick] [--nodes 100,300] [--minutes 3] [--rate 1]
[--baseline 30] [--profile]``; ``--quick`` runs N = 100 only; ``--baseline N`` also runs N
nodes as before sharding in the same run, the reference (``baseline_n<N>_...``). The last
line is one JSON object with every
figure, named for the largest N run as the issue asks (``scale_nodes``, ...) and with each
N's figures under ``n<N>_...``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from conode.chain import Record
from conode.chain.ops import location
from conode.dht.arcs import Ring
from conode.dht.memnet import Faults, MemoryNetwork, MemoryTransport
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.hashes import ActionHash, AgentKey
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore, Receipt
from conode.testing.network import START_US, TestNetwork, derive_signer, make_charter
from conode.validation.charter import Limits

MEMBERS = 9
"""Members per co-op: with the co-op, 10 agents a node."""
SEED = "scale"
PARTITION_S = 60.0
CHURN = 0.10
POLL_S = 0.25
"""Simulated seconds between two checks of who holds what: the resolution of heal and join."""
SETTLE_LIMIT_S = 600.0
RECHECK_S = 5.0
"""Simulated seconds between two checks against the ring as it is now (holders move with churn)."""
DELAY_S = (0.01, 0.05)
"""Simulated seconds each request takes to arrive (uniform): the answer comes back at once."""


def virtual_us() -> int:
    """The nodes' clock: microseconds that move with trio's (mock) clock."""
    return START_US + int(trio.current_time() * 1_000_000)


# -- counting what each node sends ----------------------------------------------------------------


@dataclass(slots=True)
class Meter:
    """Bytes one node sent, by protocol: requests it made and responses it gave."""

    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    asked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Requests made, by protocol (how many messages, beside how many bytes)."""

    def total(self) -> int:
        return sum(self.sent.values())


class CountingTransport:
    """A ``MemoryTransport`` that counts the payload bytes its node sends, by protocol name."""

    def __init__(self, inner: MemoryTransport, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter

    @property
    def peer_id(self) -> PeerId:
        return self.inner.peer_id

    def listen_addrs(self) -> list[str]:
        return self.inner.listen_addrs()

    def set_handler(self, protocol: str, handler: Handler) -> None:
        name = protocol.split("/")[3]
        sent = self.meter.sent

        async def counted(peer: PeerId, payload: bytes) -> bytes:
            response = await handler(peer, payload)
            sent[name] += len(response)
            return response

        self.inner.set_handler(protocol, counted)

    async def request(self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float) -> bytes:
        self.meter.sent[protocol.split("/")[3]] += len(payload)
        self.meter.asked[protocol.split("/")[3]] += 1
        return await self.inner.request(peer, protocol, payload, timeout=timeout)

    async def connect(self, addr: str) -> PeerId:
        return await self.inner.connect(addr)

    def connected_peers(self) -> list[PeerId]:
        return self.inner.connected_peers()

    def network_peers(self) -> list[PeerId]:
        return self.inner.network_peers()

    def peer_addrs(self, peer: PeerId) -> list[str]:
        return self.inner.peer_addrs(peer)

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        await self.inner.run(task_status=task_status)


# -- timing receipts --------------------------------------------------------------------------------


class TimedStore(NodeStore):
    """A node store that notes when each record authored here was stored (``made``) and when it
    first held the receipts its node asks for (``reached``: R, or as many authorities as its
    author's chain has besides its host; ``needed_for`` is the node's own count)."""

    reached: dict[ActionHash, int]
    made: dict[ActionHash, int]
    needed_for: Callable[[AgentKey], int]

    def append(self, records: Sequence[Record], **kwargs: Any) -> None:
        super().append(records, **kwargs)
        if kwargs.get("publish"):  # authored here (a session's commit too)
            made = self.__dict__.setdefault("made", {})
            for record in records:
                made.setdefault(record.hash, virtual_us())

    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        super().add_receipts(receipts)
        reached = self.__dict__.setdefault("reached", {})
        for record in {r.record for r in receipts} - reached.keys():
            held = self.get(record)
            needed = self.needed_for(held.action.author) if held is not None else 1
            if len({r.authority for r in self.receipts(record)}) >= needed:
                reached[record] = virtual_us()


# -- the simulated network --------------------------------------------------------------------------


@dataclass(slots=True)
class Member:
    """One node of the simulation: the node, its meter, its agents, whether it is up."""

    index: int
    node: Node
    meter: Meter
    agents: list[HostedAgent]
    up: bool = False

    @property
    def store(self) -> TimedStore:
        store = self.node.store
        assert isinstance(store, TimedStore)
        return store


@dataclass(slots=True)
class Payments:
    """Payments tried and made, and the payer's records made in the steady window."""

    tried: int = 0
    committed: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    watched: list[tuple[TimedStore, ActionHash, int]] = field(default_factory=list)
    watching: bool = False


class Simulation:
    """N nodes, their co-ops and members, on one in-memory network (see the module docstring)."""

    def __init__(self, directory: Path, nodes: int, *, seed: int, settings: NodeSettings) -> None:
        self.directory = directory
        self.size = nodes
        self.joiners = max(1, round(nodes * CHURN))
        self.rng = random.Random(seed)
        self.settings = settings
        coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(nodes + self.joiners)]
        # generous limits: a random walk of payments should not hit them
        self.charter = make_charter(
            coops,
            replication=settings.replication,
            member_limits=Limits(100_000, 10_000_000),
            coop_limits=Limits(1_000_000, 100_000_000),
        )
        # a wide-area network's latency on every request, so that times are not all zero
        self.memnet = MemoryNetwork(seed=seed, faults=Faults(delay_min=DELAY_S[0], delay_max=DELAY_S[1]))
        self.net = TestNetwork(self.memnet, self.charter, [])
        self.members: list[Member] = []
        self.homes: dict[AgentKey, Member] = {}
        self.payments = Payments()

    # -- nodes ------------------------------------------------------------------------------------

    def build(self, index: int) -> Member:
        coop = HostedAgent(f"coop{index}", derive_signer(SEED, f"coop{index}"))
        agents = [coop] + [
            HostedAgent(f"coop{index}-m{j}", derive_signer(SEED, f"coop{index}-m{j}"))
            for j in range(MEMBERS)
        ]
        meter = Meter()
        store = TimedStore.open(self.directory / f"node{index}.db", durable=False)
        node = Node(
            store=store,
            charter=self.charter,
            transport=CountingTransport(self.memnet.transport(f"node{index}"), meter),
            node_signer=derive_signer(SEED, f"node{index}"),
            agents=agents,
            settings=self.settings,
            clock=virtual_us,
        )
        store.needed_for = node.publishing.receipts_needed
        member = Member(index, node, meter, agents)
        self.members.append(member)
        for agent in agents:
            self.homes[agent.key] = member
        self.net.nodes.append(node)
        for agent in agents:
            self.net.agents[agent.name] = agent.key
            self.net.home[agent.name] = node
        return member

    async def start(self, nursery: trio.Nursery, member: Member) -> None:
        await self.net.start_node(nursery, member.node)
        member.up = True
        await self.net.genesis(member.node, member.agents[0], member.agents[1:])
        ups = [m for m in self.members if m.up and m is not member]
        targets = {ups[0].index} if ups else set()
        targets |= {m.index for m in self.rng.sample(ups, min(2, len(ups)))}
        for index in sorted(targets):
            await member.node.connect(self.members[index].node.transport.listen_addrs()[0])

    def stop(self, member: Member) -> None:
        member.node.scope.cancel()  # type: ignore[attr-defined]
        member.up = False

    def live(self) -> list[Member]:
        return [m for m in self.members if m.up]

    # -- payments ---------------------------------------------------------------------------------

    async def pay_loop(self, member: Member, rate_per_minute: float) -> None:
        """Pay from a random agent of ``member`` to a random agent of another live node, at random times."""
        rng = random.Random(self.rng.random())
        while member.up:
            await trio.sleep(rng.expovariate(rate_per_minute / 60.0))
            me = member.node.transport.peer_id
            others = [  # within its side of a partition: a payee it can reach
                m for m in self.live()
                if m is not member and self.memnet.reachable(me, m.node.transport.peer_id)
            ]
            if not member.up or not others:
                continue
            payer = rng.choice(member.agents)
            payee = rng.choice(rng.choice(others).agents)
            self.payments.tried += 1
            result = await member.node.pay(payer.key, payee.key, rng.randint(1, 20))
            if result.committed and result.record is not None:
                self.payments.committed += 1
                if self.payments.watching:
                    made = member.store.__dict__.get("made", {}).get(result.record)
                    assert made is not None
                    self.payments.watched.append((member.store, result.record, made))
            else:
                self.payments.refused[result.reason[:72]] += 1

    # -- who holds what -----------------------------------------------------------------------------

    def ring(self) -> Ring:
        """The ring of the live nodes' places, as a node that saw them all would see it."""
        holders = []
        for member in self.live():
            holder = member.node.placement.place.holder(member.node.transport.peer_id)
            if holder is not None:
                holders.append(holder)
        return Ring.of(holders, self.settings.replication)

    def holders(self, record: Record, ring: Ring | None = None) -> list[Member]:
        """The live nodes that must hold ``record``: its author's authorities and home node."""
        ring = ring or self.ring()
        author = record.action.author
        peers = set(ring.authorities(location(author.raw))) if ring.ordinary or ring.full else set()
        by_peer = {m.node.transport.peer_id: m for m in self.live()}
        found = [by_peer[p] for p in sorted(peers) if p in by_peer]
        home = self.homes.get(author)
        if home is not None and home.up and home not in found:
            found.append(home)
        return found

    def every_record(self) -> dict[ActionHash, Record]:
        """Every record committed: found in any node's store, the stopped nodes' included."""
        found: dict[ActionHash, Record] = {}
        for member in self.members:
            store = member.store
            for agent in member.agents:
                for record in store.records(agent.key):
                    found[record.hash] = record
        return found

    def missing(self, records: Iterable[Record]) -> list[tuple[Record, Member]]:
        """Each (record, node) where a node that must hold the record does not."""
        ring = self.ring()
        return [
            (record, member)
            for record in records
            for member in self.holders(record, ring)
            if member.store.hash_at(record.action.author, record.action.seq) != record.hash
        ]

    async def until_held(self, records: Iterable[Record], limit: float = SETTLE_LIMIT_S) -> float:
        """Wait until every record is held by all its holders (as the ring of the live nodes
        says now: it moves with churn); the simulated seconds it took."""
        records = list(records)
        start = trio.current_time()
        pending = self.missing(records)
        checked = start
        while pending:
            if trio.current_time() - start > limit:
                return math.inf
            await trio.sleep(POLL_S)
            if trio.current_time() - checked >= RECHECK_S:
                pending, checked = self.missing(records), trio.current_time()
                continue
            pending = [
                (record, member)
                for record, member in pending
                if member.up
                and member.store.hash_at(record.action.author, record.action.seq) != record.hash
            ]
            if not pending:
                pending, checked = self.missing(records), trio.current_time()
        return trio.current_time() - start

    def stored_fractions(self, records: dict[ActionHash, Record]) -> list[float]:
        """Each live node's records held (in chains and loose), its own agents' chains left out,
        over all records."""
        fractions = []
        for member in self.live():
            own = sum(member.store.count(a.key) for a in member.agents)
            fractions.append((member.store.record_total() - own) / len(records))
        return fractions

    def stored_breakdown(self, member: Member) -> dict[str, int]:
        """What ``member`` holds besides its own agents' chains, by why: records of chains on
        its arc (as the ring of the live nodes says), of chains off it (held for a while on
        purpose, or not shed yet), and loose records by reason."""
        ring = self.ring()
        peer = member.node.transport.peer_id
        own = {a.key for a in member.agents}
        found: dict[str, int] = defaultdict(int)
        held_for_now = member.node.ingestion.held_for_now
        for author in member.store.authors():
            if author in own:
                continue
            count = member.store.count(author)
            if peer in ring.authorities(location(author.raw)):
                found["chains_on_arc"] += count
            elif author in held_for_now:
                found["chains_off_arc_held_for_a_while"] += count
                found["chains_off_arc_held_for_a_while_n"] += 1
            else:
                found["chains_off_arc_not_shed"] += count
                found["chains_off_arc_not_shed_n"] += 1
        for why, count in member.store.loose_counts().items():
            found[f"loose_{why.name.lower()}"] += count
        arc = member.node.placement.arc()
        found["own_arc_ppm"] = round(arc.fraction * 1e6)
        found["ring_arc_ppm"] = round(ring.arc(peer).fraction * 1e6) if member.node.placement.placed else 0
        return dict(found)


# -- the run --------------------------------------------------------------------------------------


async def wait_placed(member: Member) -> None:
    """Until the node has taken its place on the ring."""
    while not member.node.placement.placed:
        await trio.sleep(POLL_S)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each phase runs (simulated seconds), and whether churn runs at all."""

    minutes: float = 3.0
    rate: float = 1.0
    warmup_s: float = 30.0
    partition_s: float = PARTITION_S
    churn: bool = True


async def churn(
    sim: Simulation,
    nursery: trio.Nursery,
    pay_nursery: trio.Nursery,
    plan: Plan,
    figures: dict[str, Any],
    log: Callable[[str], None],
) -> None:
    """10 % of the nodes leave for good and as many new ones join; how long a joiner takes."""
    rate = plan.rate
    leaving = sim.rng.sample(sim.live(), sim.joiners)
    for member in leaving:
        sim.stop(member)
    existing = list(sim.every_record().values())
    started: dict[int, float] = {}
    for index in range(sim.size, sim.size + sim.joiners):
        member = sim.build(index)
        started[index] = trio.current_time()
        await sim.start(nursery, member)
        pay_nursery.start_soon(sim.pay_loop, member, rate)
    join_times: list[float] = []

    async def joined(member: Member) -> None:
        await wait_placed(member)
        ring = sim.ring()
        want = [r for r in existing if member in sim.holders(r, ring)]
        waited = await sim.until_held(want)
        join_times.append(trio.current_time() - started[member.index] if waited < math.inf else math.inf)

    async with trio.open_nursery() as measuring:
        for member in sim.members[sim.size :]:
            measuring.start_soon(joined, member)
    figures["join_s"] = round(max(join_times), 2)
    figures["join_s_mean"] = round(statistics.mean(join_times), 2)
    log(f"churn: {len(leaving)} left, {sim.joiners} joined; a joiner held its share "
        f"{figures['join_s']:.1f} s after starting (the slowest)")
    await trio.sleep(30.0)


async def scenario(sim: Simulation, plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    minutes, rate = plan.minutes, plan.rate
    figures: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        for index in range(sim.size):
            await sim.start(nursery, sim.build(index))
        setup = await sim.until_held(sim.every_record().values())
        log(f"setup: {sim.size} nodes up, geneses held everywhere {setup:.1f} s after the last start "
            f"({trio.current_time() - t0:.0f} s simulated)")

        async with trio.open_nursery() as pay_nursery:
            for member in sim.live():
                pay_nursery.start_soon(sim.pay_loop, member, rate)
            # steady window
            await trio.sleep(plan.warmup_s)  # the first payments' hellos and chains
            before_records = set(sim.every_record())
            before = {m.index: m.meter.total() for m in sim.members}
            before_by = {m.index: dict(m.meter.sent) for m in sim.members}
            before_asked = {m.index: dict(m.meter.asked) for m in sim.members}
            sim.payments.watching = True
            start = trio.current_time()
            await trio.sleep(minutes * 60.0)
            window = (trio.current_time() - start) / 60.0
            sim.payments.watching = False
            sent = {m.index: (m.meter.total() - before[m.index]) / window for m in sim.live()}
            by_protocol: dict[str, int] = defaultdict(int)  # in the window, a node a minute
            for m in sim.live():
                for name, count in m.meter.sent.items():
                    by_protocol[name] += count - before_by[m.index].get(name, 0)
            by_protocol = {k: round(v / window / len(sim.live())) for k, v in by_protocol.items()}
            made = [r for h, r in sim.every_record().items() if h not in before_records]
            log(f"steady: {len(made)} records made in {window:.1f} simulated minutes; "
                f"payments {sim.payments.committed}/{sim.payments.tried} committed")
            ratios = []
            ratio_of: dict[int, tuple[float, float, float]] = {}
            floors: list[float] = []  # R times the bytes of its own records: publishing them
            ring = sim.ring()
            for member in sim.live():
                own = {a.key for a in member.agents}
                must = sum(
                    len(r.to_bytes())
                    for r in made
                    if r.action.author not in own and member in sim.holders(r, ring)
                ) / window
                authored = sum(len(r.to_bytes()) for r in made if r.action.author in own) / window
                floors.append(authored * sim.settings.replication)
                if must:
                    ratios.append(sent[member.index] / must)
                    ratio_of[member.index] = (sent[member.index] / must, must, authored)
            if ratio_of:
                worst = max(ratio_of, key=lambda i: ratio_of[i][0])
                node = sim.members[worst]
                figures["bytes_ratio_max_node"] = {
                    "must_receive_per_minute": round(ratio_of[worst][1]),
                    "authored_per_minute": round(ratio_of[worst][2]),
                    "sent_by_protocol": {
                        k: round((v - before_by[worst].get(k, 0)) / window)
                        for k, v in sorted(node.meter.sent.items())
                    },
                }
            figures["publish_floor_per_node_minute_mean"] = round(statistics.mean(floors))
            asked: dict[str, int] = defaultdict(int)
            for m in sim.live():
                for name, count in m.meter.asked.items():
                    asked[name] += count - before_asked[m.index].get(name, 0)
            figures["requests_by_protocol_node_minute"] = {
                k: round(v / window / len(sim.live()), 1) for k, v in sorted(asked.items())
            }
            figures.update({
                "bytes_per_node_minute_mean": round(statistics.mean(sent.values())),
                "bytes_per_node_minute_max": round(max(sent.values())),
                "bytes_ratio": round(max(ratios), 2) if ratios else None,
                "bytes_ratio_mean": round(statistics.mean(ratios), 2) if ratios else None,
                "nodes_with_nothing_to_receive": len(sent) - len(ratios),
                "bytes_by_protocol_node_minute": dict(sorted(by_protocol.items())),
            })
            log(f"steady: {figures['bytes_per_node_minute_mean']:,} bytes a node a minute (mean), "
                f"bytes_ratio {figures['bytes_ratio']} max, {figures['bytes_ratio_mean']} mean; "
                f"by protocol {figures['bytes_by_protocol_node_minute']}")
            # partition
            live = sim.live()
            half = {m.node.transport.peer_id for m in live[: len(live) // 2]}
            other = {m.node.transport.peer_id for m in live[len(live) // 2 :]}
            before_records = set(sim.every_record())
            sim.memnet.partition(half, other)
            await trio.sleep(plan.partition_s)
            sim.memnet.heal()
            during = [r for h, r in sim.every_record().items() if h not in before_records]
            heal = await sim.until_held(during)
            figures["heal_s"] = round(heal, 2)
            figures["heal_records"] = len(during)
            log(f"partition: {len(during)} records made during {plan.partition_s:.0f} s apart, "
                f"held by all their holders {heal:.2f} s after healing")

            if plan.churn:
                await churn(sim, nursery, pay_nursery, plan, figures, log)
            pay_nursery.cancel_scope.cancel()

        # settle and check
        records = sim.every_record()
        settle = await sim.until_held(records.values())
        delays = [  # a record of the steady window, from when it was stored to its R receipts
            (store.__dict__.get("reached", {}).get(record, math.inf) - made_at) / 1e6
            for store, record, made_at in sim.payments.watched
        ]
        figures["receipts_p50_s"] = round(percentile(delays, 50), 3)
        figures["receipts_p99_s"] = round(percentile(delays, 99), 3)
        figures["receipts_counted"] = len(delays)
        ring = sim.ring()

        def held_by(r: Record, members: Iterable[Member]) -> bool:
            return any(m.store.hash_at(r.action.author, r.action.seq) == r.hash for m in members)

        lost = [  # held by none of its holders, then by no live node at all
            h for h, r in records.items()
            if not held_by(r, sim.holders(r, ring)) and not held_by(r, sim.live())
        ]
        fractions = sim.stored_fractions(records)
        busiest = max(zip(fractions, sim.live(), strict=True), key=lambda pair: pair[0])[1]
        figures["stored_max_node"] = sim.stored_breakdown(busiest)
        every: dict[str, int] = defaultdict(int)
        for member in sim.live():
            for key, count in sim.stored_breakdown(member).items():
                every[key] += count
        figures["stored_all_nodes"] = dict(sorted(every.items()))
        figures.update({
            "settle_s": round(settle, 2),
            "records": len(records),
            "records_lost": len(lost),
            "stored_per_node_mean_fraction": round(statistics.mean(fractions), 4),
            "stored_per_node_max_fraction": round(max(fractions), 4),
            "stored_target_fraction": round(3 * sim.settings.replication / sim.size, 4),
            "payments_tried": sim.payments.tried,
            "payments_committed": sim.payments.committed,
            "payments_refused": dict(sim.payments.refused),
            "simulated_s": round(trio.current_time() - t0, 1),
        })
        for member in sim.live():
            sim.stop(member)
    return figures


def run(nodes: int, plan: Plan, seed: int, profile: bool, legacy: bool) -> dict[str, Any]:
    settings = NodeSettings(replication=3, legacy=legacy)
    where = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="conode-scale-", dir=where) as tmp:
        sim = Simulation(Path(tmp), nodes, seed=seed, settings=settings)

        def log(line: str) -> None:
            print(f"  N={nodes} {line}", flush=True)

        profiler = cProfile.Profile() if profile else None
        cpu = time.process_time()
        wall = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        try:
            figures = trio.run(
                scenario, sim, plan, log, clock=trio.testing.MockClock(autojump_threshold=0)
            )
        finally:
            if profiler is not None:
                profiler.disable()
            for member in sim.members:
                member.store.close()
        figures["cpu_s"] = round(time.process_time() - cpu, 1)
        figures["wall_s"] = round(time.perf_counter() - wall, 1)
        if profiler is not None:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
            print(text.getvalue())
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 only")
    parser.add_argument("--nodes", default="100,300,1000", help="comma-separated N to run")
    parser.add_argument("--minutes", type=float, default=3.0, help="simulated minutes of steady payments")
    parser.add_argument("--rate", type=float, default=1.0, help="payments a node makes a simulated minute")
    parser.add_argument("--warmup", type=float, default=30.0, help="simulated seconds before the window")
    parser.add_argument("--partition", type=float, default=PARTITION_S, help="simulated seconds apart")
    parser.add_argument("--no-churn", action="store_true", help="skip the churn phase")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--legacy", action="store_true", help="every node as before sharding (full replication)"
    )
    parser.add_argument("--profile", action="store_true", help="print where the CPU went")
    parser.add_argument(
        "--baseline", type=int, default=0, metavar="N",
        help="also run N nodes as before sharding (full replication), the reference of this run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [100] if args.quick else [int(n) for n in args.nodes.split(",")]
    mode = "full replication (--legacy)" if args.legacy else "sharded"
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"load average {load}; N = {sizes}; {args.minutes} simulated minutes of payments at "
          f"{args.rate} a node a minute; R = 3; {mode}")
    figures: dict[str, Any] = {"quick": args.quick, "loadavg_before": load, "mode": mode}
    for n in sizes:
        plan = Plan(args.minutes, args.rate, args.warmup, args.partition, not args.no_churn)
        found = run(n, plan, args.seed, args.profile, args.legacy)
        for key, value in found.items():
            figures[f"n{n}_{key}"] = value
        print(f"N = {n}: stored per node {found['stored_per_node_mean_fraction']:.3f} mean, "
              f"{found['stored_per_node_max_fraction']:.3f} max of all records "
              f"(target {found['stored_target_fraction']:.3f}); bytes per node a minute "
              f"{found['bytes_per_node_minute_mean']:,} mean, {found['bytes_per_node_minute_max']:,} max, "
              f"{found['bytes_ratio']} x what it must receive (target 2); R receipts p50 "
              f"{found['receipts_p50_s']} s, p99 {found['receipts_p99_s']} s (target p50 1 s); "
              f"heal {found['heal_s']} s (target 30); join {found.get('join_s')} s; "
              f"lost {found['records_lost']} (must be 0); CPU {found['cpu_s']} s")
    if args.baseline:  # the reference, measured in the same run: full replication
        plan = Plan(args.minutes, args.rate, args.warmup, args.partition, not args.no_churn)
        found = run(args.baseline, plan, args.seed, args.profile, True)
        for key, value in found.items():
            figures[f"baseline_n{args.baseline}_{key}"] = value
        print(f"reference, full replication at N = {args.baseline}: stored per node "
              f"{found['stored_per_node_max_fraction']:.3f} max of all records; bytes per node "
              f"a minute {found['bytes_per_node_minute_mean']:,} mean, "
              f"{found['bytes_per_node_minute_max']:,} max, {found['bytes_ratio']} x what it must "
              f"receive; R receipts p50 {found['receipts_p50_s']} s; heal {found['heal_s']} s; "
              f"lost {found['records_lost']}; CPU {found['cpu_s']} s")
    largest = max(sizes)
    for key in ("stored_per_node_max_fraction", "stored_target_fraction", "bytes_ratio",
                "receipts_p50_s", "heal_s", "join_s", "records_lost"):
        figures[key] = figures.get(f"n{largest}_{key}")
    figures["scale_nodes"] = largest
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())

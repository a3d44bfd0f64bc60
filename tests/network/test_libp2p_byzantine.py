"""A Byzantine node on real libp2p (127.0.0.1) among honest ones that keep paying.

Four in-process ``Node``s, each on its own libp2p host: nodes 0 to 2 are
honest, node 3 is the test build of a node that breaks the rules. It is a
real ``Node`` (it greets, gossips and countersigns like any other), but the
test signs records outside the rules with its agents' keys and sends them,
and raw frames and floods, from its libp2p host. Each offence is made by an
agent of its own, so that no case depends on another having run first.

All the while an honest loop pays back and forth between an agent of node 0
and one of node 1. After each case the loop must have committed at least two
more payments and none may have failed, and no honest agent may be
warranted anywhere.

The network is built once for the module (it takes seconds): it runs in a
trio loop on a thread of its own, and each test runs its case in that loop.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from netkit import (
    ask,
    assert_warranted_everywhere,
    bill_record,
    countersigned,
    push,
    signer_of,
    wait_until,
    warrants_against,
)

from conode import encoding
from conode.chain import ActionKind, Record, author_record
from conode.crypto import SIG_ACTION
from conode.dht import wire
from conode.dht.libp2p_transport import Libp2pTransport
from conode.dht.memnet import MemoryNetwork
from conode.dht.transport import MAX_MESSAGE, MAX_STREAMS_PER_PEER, protocol_id
from conode.errors import NetworkError
from conode.hashes import AgentKey
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore
from conode.testing.network import TestNetwork, derive_signer, make_charter

SEED = "byzantine-libp2p"
MEMBERS = (2, 2, 1, 6)  # members hosted by nodes 0..3; node 3's six offend one case each
BYZANTINE = 3
LOOP = ("coop0-m0", "coop1-m0")  # the honest loop, between nodes 0 and 1
SETTINGS = NodeSettings(
    replication=3,
    request_timeout=10.0,  # generous: the machine may be busy, and a late answer is no offence
    gossip_interval=0.3,
    publish_interval=0.3,
    hello_interval=0.3,
    full_arc=True,  # every node holds every chain: each honest node judges every record it is sent
)
REQUEST_TIMEOUT = 30.0  # the Byzantine node's own requests
START_TIMEOUT = 90.0
CASE_TIMEOUT = 120.0
SERVE_TIMEOUT = 4 * CASE_TIMEOUT
"""How long a node waits for a request's bytes: longer than any case, so a stream the flood case
holds open keeps its slot until the case lets go of it (the default 30 s raced a busy machine)."""
LOOP_PROGRESS = 2  # honest payments that must commit during and after each case


@asynccontextmanager
async def libp2p_network(directory: Path) -> AsyncIterator[TestNetwork]:
    """Four nodes on libp2p, meshed, every genesis everywhere; TestNetwork keeps the books.

    (Its in-memory network is unused: every node here has a ``Libp2pTransport``.)
    """
    coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(len(MEMBERS))]
    net = TestNetwork(MemoryNetwork(), make_charter(coops), [])
    try:
        async with trio.open_nursery() as nursery:
            for i, (coop, coop_signer) in enumerate(coops):
                hosted = [HostedAgent(coop, coop_signer)]
                hosted += [
                    HostedAgent(f"{coop}-m{j}", derive_signer(SEED, f"{coop}-m{j}"))
                    for j in range(MEMBERS[i])
                ]
                bootstrap = net.nodes[0].transport.listen_addrs()[:1] if net.nodes else []
                node = Node(
                    store=NodeStore.open(directory / f"node{i}.db"),
                    charter=net.charter,
                    transport=Libp2pTransport(
                        derive_signer(SEED, f"node{i}").seed,
                        bootstrap=bootstrap,
                        gossip=False,
                        serve_timeout=SERVE_TIMEOUT,
                    ),
                    node_signer=derive_signer(SEED, f"node{i}"),
                    agents=hosted,
                    settings=SETTINGS,
                )
                net.nodes.append(node)
                for agent in hosted:
                    net.agents[agent.name] = agent.key
                    net.home[agent.name] = node
                await net.start_node(nursery, node)
                await net.genesis(node, hosted[0], hosted[1:])
            await wait_until(lambda: meshed(net), START_TIMEOUT)
            try:
                yield net
            finally:
                for scope in net.scopes:
                    scope.cancel()
    finally:
        for node in net.nodes:
            node.store.close()


def meshed(net: TestNetwork) -> bool:
    """Every node is connected to every other, knows who hosts each agent, holds every chain."""
    others = len(net.nodes) - 1
    return all(
        len(node.transport.connected_peers()) == others
        and len(node.hosts) >= len(net.agents) - len(node.agents)
        and all(node.store.head(key) is not None for key in net.agents.values())
        for node in net.nodes
    )


class HonestLoop:
    """Pays 1 back and forth between the two ``LOOP`` agents for as long as it runs."""

    def __init__(self) -> None:
        self.committed = 0
        self.failures: list[str] = []

    async def run(self, net: TestNetwork) -> None:
        a, b = LOOP
        while True:
            for payer, payee in ((a, b), (b, a)):
                result = await net.pay(payer, payee, 1, memo="honest loop")
                if result.committed:
                    self.committed += 1
                else:
                    self.failures.append(f"{payer} -> {payee}: {result.reason}")


class SharedNetwork:
    """The module's network and honest loop, in a trio loop on a thread of their own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.loop = HonestLoop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._net: TestNetwork | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None

    def serve(self) -> None:
        """The thread's body: build the network, run the loop until ``stop``."""
        try:
            trio.run(self._main)
        except Exception as exc:  # the thread's end: handed to the tests, which raise it
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with libp2p_network(self.directory) as net, trio.open_nursery() as nursery:
            self._net = net
            nursery.start_soon(self.loop.run, net)
            self._token = trio.lowlevel.current_trio_token()
            self.ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def run(self, case: Callable[[TestNetwork], Awaitable[None]]) -> None:
        """Run one case in the network's loop, then check the honest loop and honest agents."""
        assert self.ready.wait(START_TIMEOUT + 30), "the network did not start"
        if self._token is None:
            raise AssertionError(f"the network failed: {self.error!r}") from self.error
        trio.from_thread.run(self._checked, case, trio_token=self._token)

    async def _checked(self, case: Callable[[TestNetwork], Awaitable[None]]) -> None:
        assert self._net is not None
        net, loop = self._net, self.loop
        before = loop.committed
        with trio.fail_after(CASE_TIMEOUT):
            await case(net)
        await wait_until(lambda: loop.committed >= before + LOOP_PROGRESS or loop.failures)
        assert loop.failures == [], loop.failures
        honest = {key for name, key in net.agents.items() if net.home[name] is not byzantine(net)}
        for node in honest_nodes(net):
            assert not {offender for _h, offender, _w in node.store.warrants()} & honest

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedNetwork]:
    network = SharedNetwork(tmp_path_factory.mktemp("byzantine"))
    thread = threading.Thread(target=network.serve, name="byzantine-network", daemon=True)
    thread.start()
    try:
        yield network
    finally:
        network.stop()
        thread.join(60)
    assert not thread.is_alive(), "the network did not stop"
    if network.error is not None:
        raise network.error


def case(
    body: Callable[[TestNetwork], Awaitable[None]],
) -> Callable[[SharedNetwork], None]:
    """A test that runs ``body`` in the shared network (and checks the honest loop after it)."""

    def test(shared: SharedNetwork) -> None:
        shared.run(body)

    test.__name__ = test.__qualname__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def byzantine(net: TestNetwork) -> Node:
    return net.nodes[BYZANTINE]


def honest_nodes(net: TestNetwork) -> list[Node]:
    return [node for node in net.nodes if node is not byzantine(net)]


def sender(net: TestNetwork) -> Libp2pTransport:
    """The Byzantine node's libp2p host: what it sends comes from its own peer id."""
    transport = byzantine(net).transport
    assert isinstance(transport, Libp2pTransport)
    return transport


async def publish(net: TestNetwork, node: Node, *records: Record) -> dict[bytes, bool]:
    """The Byzantine node publishes records to ``node``; its receipts, record hash -> valid."""
    return await push(sender(net), node, *records, timeout=REQUEST_TIMEOUT)


async def warranted_on_every_honest_node(net: TestNetwork, agent: AgentKey, kind: str) -> None:
    """Wait until every honest node holds a warrant against ``agent``; each is of ``kind``, valid."""
    await wait_until(lambda: all(node.store.warranted(agent) for node in honest_nodes(net)))
    assert_warranted_everywhere(honest_nodes(net), agent, kind)


# -- records outside the rules --------------------------------------------------------------------


@case
async def test_a_fork_of_its_chain_is_warranted_on_every_honest_node(net: TestNetwork) -> None:
    x = net.agents["coop3-m0"]
    signer = signer_of(net, "coop3-m0")
    left = bill_record(net, signer, byzantine(net), "coop2-m0", "left")
    right = bill_record(net, signer, byzantine(net), "coop2-m0", "right")
    assert left.action.seq == right.action.seq and left.hash != right.hash
    first = net.nodes[0]
    assert await publish(net, first, left) == {left.hash.to_bytes(): True}
    assert await publish(net, first, right) == {right.hash.to_bytes(): False}
    await warranted_on_every_honest_node(net, x, "fork")
    evidence = warrants_against(net.nodes[2], x)[0].evidence
    assert {r.hash for r in evidence} == {left.hash, right.hash}
    for node in honest_nodes(net):
        assert node.store.get(right.hash) is None
    # from now on the forker is refused: a payment to it, and its next record
    refused = await net.pay("coop0-m1", "coop3-m0", 5)
    assert not refused.committed and "warranted" in refused.reason, refused.reason
    after = bill_record(net, signer, first, "coop2-m0", "after the fork")
    assert await publish(net, net.nodes[1], after) == {after.hash.to_bytes(): False}


@case
async def test_a_record_with_a_forged_signature_is_refused_and_its_named_author_not_warranted(
    net: TestNetwork,
) -> None:
    honest, x = net.agents["coop2-m0"], net.agents["coop3-m5"]
    genuine = bill_record(net, signer_of(net, "coop2-m0"), net.nodes[2], "coop0-m1", "genuine")
    # the honest agent's action and entry, under a signature the Byzantine agent made
    stolen = signer_of(net, "coop3-m5").sign(SIG_ACTION, genuine.action_bytes)
    forged = Record.make(genuine.action, stolen, genuine.entry)
    for node in honest_nodes(net):
        assert await publish(net, node, forged) == {forged.hash.to_bytes(): False}
    await trio.sleep(1.0)  # a few gossip rounds: nobody passes it on, nobody is warranted for it
    for node in honest_nodes(net):
        assert node.store.get(forged.hash) is None
        assert not node.store.warranted(honest)
        assert not node.store.warranted(x)  # a signature over another's action proves no act


@case
async def test_a_payment_with_a_forged_countersignature_is_refused_and_warranted(
    net: TestNetwork,
) -> None:
    x, victim = net.agents["coop3-m1"], net.agents["coop2-m0"]
    view = net.nodes[2].store
    # X claims the honest agent paid it 300, "signing" for the payer with its own key
    _payer_side, claim = countersigned(
        net,
        "coop2-m0",
        "coop3-m1",
        300,
        at=(view.activity(victim), view.activity(x)),
        forged_by="coop3-m1",
    )
    for node in honest_nodes(net):
        assert await publish(net, node, claim) == {claim.hash.to_bytes(): False}
    await warranted_on_every_honest_node(net, x, "invalid")
    for node in honest_nodes(net):
        assert node.store.get(claim.hash) is None
        assert node.store.activity(victim).balance == 0
        assert node.store.activity(x).balance == 0


@case
async def test_an_over_limit_payment_between_two_byzantine_agents_warrants_both(
    net: TestNetwork,
) -> None:
    x, y = net.agents["coop3-m2"], net.agents["coop3-m3"]
    view = net.nodes[0].store
    x_side, y_side = countersigned(  # the member credit limit is 500
        net, "coop3-m2", "coop3-m3", 5_000, at=(view.activity(x), view.activity(y))
    )
    for node in honest_nodes(net):
        receipts = await publish(net, node, x_side, y_side)
        assert receipts == {x_side.hash.to_bytes(): False, y_side.hash.to_bytes(): False}
    await warranted_on_every_honest_node(net, x, "invalid")
    await warranted_on_every_honest_node(net, y, "invalid")
    for node in honest_nodes(net):
        assert node.store.get(x_side.hash) is None and node.store.get(y_side.hash) is None
        assert node.store.activity(x).balance == node.store.activity(y).balance == 0


@case
async def test_a_replayed_payment_is_refused_and_warranted_while_a_plain_copy_is_harmless(
    net: TestNetwork,
) -> None:
    x, payer = net.agents["coop3-m4"], net.agents["coop2-m0"]
    paid = await net.pay("coop2-m0", "coop3-m4", 40)  # an honest payment to X
    assert paid.committed, paid.reason
    home = byzantine(net)
    head = home.store.head(x)
    assert head is not None
    old = home.store.get(head.hash)
    assert old is not None and old.entry is not None
    await wait_until(lambda: all(n.store.head(x) == head for n in honest_nodes(net)))
    # the very same record again: a copy of what every node holds, nothing more
    for node in honest_nodes(net):
        assert await publish(net, node, old) == {old.hash.to_bytes(): True}
    # X commits the same payment entry again, one seq on: paid twice for one payment
    replay = author_record(
        signer_of(net, "coop3-m4"),
        head,
        kind=ActionKind.CREATE,
        timestamp=home.clock(),
        entry=encoding.decode(old.entry),
        entry_type=old.action.entry_type,
    )
    assert replay.entry == old.entry and replay.action.seq == head.seq + 1
    for node in honest_nodes(net):
        assert await publish(net, node, replay) == {replay.hash.to_bytes(): False}
    await warranted_on_every_honest_node(net, x, "activity")  # the chain as a whole breaks a rule
    for node in honest_nodes(net):
        assert node.store.get(replay.hash) is None
        assert node.store.activity(x).balance == 40
        assert node.store.activity(payer).balance == -40


# -- frames and floods on the conode protocols ----------------------------------------------------


async def raw_stream(net: TestNetwork, node: Node, protocol: str) -> Any:
    """A libp2p stream from the Byzantine host to ``node`` on a conode protocol, nothing sent yet."""
    return await sender(net).host.new_stream(
        ID.from_base58(node.transport.peer_id), [protocol_id(node.network_short, protocol)]
    )


async def refused_without_answer(stream: Any) -> None:
    """The server resets or ends the stream: reading it never yields a frame."""
    with trio.fail_after(10):
        try:
            data = await stream.read(4)
        except StreamError:  # reset, or ended: no answer
            return
    assert data == b"", data


@case
async def test_oversized_and_malformed_frames_are_refused_without_an_answer(
    net: TestNetwork,
) -> None:
    target = net.nodes[0]
    for protocol in wire.PROTOCOLS:
        oversized = await raw_stream(net, target, protocol)
        await oversized.write(struct.pack(">I", MAX_MESSAGE + 1))  # a header, no body
        await refused_without_answer(oversized)
        for junk in (b"\xc1", msgpack.packb([1]), wire.dumps({"nothing": 1}), b"\x00" * 100):
            with pytest.raises(NetworkError):
                await sender(net).request(
                    target.transport.peer_id,
                    protocol_id(target.network_short, protocol),
                    junk,
                    timeout=REQUEST_TIMEOUT,
                )
    truncated = await raw_stream(net, target, wire.PUBLISH)
    await truncated.write(struct.pack(">I", 1_000) + b"\x81")  # 1 of 1 000 bytes, then closed
    await truncated.close()
    await refused_without_answer(truncated)
    # the node is unharmed and still answers the same peer's well-formed requests
    answer = await ask(sender(net), target, wire.FETCH, {"hashes": []}, REQUEST_TIMEOUT)
    assert answer == {"records": []}


@asynccontextmanager
async def flooder(target: Node) -> AsyncIterator[Libp2pTransport]:
    """A libp2p host of the Byzantine's that runs no node, connected to ``target``: every slot of its
    per-peer budget is the test's (the Byzantine node's own gossip and pulls, made from its
    peer id, would take and free slots in the middle of the flood on a busy machine)."""
    host = Libp2pTransport(derive_signer(SEED, "flooder").seed, gossip=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(host.run)
        await host.connect(target.transport.listen_addrs()[0])
        yield host
        nursery.cancel_scope.cancel()


@case
async def test_a_flood_of_requests_is_cut_by_the_peer_limiter_and_other_peers_are_served(
    net: TestNetwork,
) -> None:
    target = net.nodes[0]
    fetch = protocol_id(target.network_short, wire.FETCH)
    empty = wire.dumps({"hashes": []})
    async with flooder(target) as host:

        async def served() -> bool:
            try:
                await host.request(target.transport.peer_id, fetch, empty, timeout=REQUEST_TIMEOUT)
            except NetworkError:
                return False
            return True

        # requests that declare 100 bytes and never send them: each holds one of the peer's slots
        held = [
            await host.host.new_stream(ID.from_base58(target.transport.peer_id), [fetch])
            for _ in range(MAX_STREAMS_PER_PEER)
        ]
        for stream in held:
            await stream.write(struct.pack(">I", 100))
        with trio.fail_after(30):
            while await served():  # until the node has admitted every held stream
                await trio.sleep(0.05)
        outcomes: list[bool] = []

        async def one() -> None:
            outcomes.append(await served())

        async with trio.open_nursery() as flood:
            for _ in range(3 * MAX_STREAMS_PER_PEER):
                flood.start_soon(one)
            # meanwhile an honest peer is served as usual
            other = net.nodes[1]
            timeout = other.settings.request_timeout
            reply = await ask(other.transport, target, wire.FETCH, {"hashes": []}, timeout)
            assert reply == {"records": []}
        assert outcomes == [False] * (3 * MAX_STREAMS_PER_PEER)
        for stream in held:
            await stream.reset()
        with trio.fail_after(30):  # the slots come back: the same peer is served again
            while not await served():
                await trio.sleep(0.05)

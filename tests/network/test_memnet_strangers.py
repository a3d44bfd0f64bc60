"""Among strangers (issue 12, items 2 and 3) on the in-memory network: whom a node dials and keeps.

- A hello naming thousands of made-up peers stores none of them, reads at most
  ``HELLO_PEERS``, dials at most ``MAX_DIALS`` at once, and the node keeps
  serving honest payments.
- 200 remembered peers whose dials hang (a tarpit: every dial to them waits
  for the connect timeout, as a TCP connect to a black-holed address does)
  do not hold up the greeting of a new peer: before, the hello loop dialled
  them one after another (200 times the timeout).
- A remembered peer that stops answering is dialled again with backoff
  (doubling), and forgotten after ``FORGET_AFTER_US``.
- A hello lists only conode peers (greeted), at most ``HELLO_PEERS``.
- A hello naming peers that refuse every dial, sent again and again, has each
  of them dialled once, not once a hello.
- A conode peer that greets but never answers a witness request, among a
  payer's witnesses, holds up one payment by the request timeout, not every
  payment; it is asked again once its wait is over.

The tarpit is the one stand-in here: ``MemoryTransport.connect`` fails at
once for an unknown peer, so the test gives the node's transport a
``connect`` that waits ``CONNECT_TIMEOUT`` first for made-up addresses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
import trio.testing
from netkit import JumpClock, ask, greet, network_with_rogue, start_rogue, trio_clock, wait_until

from conode.crypto import Signer
from conode.dht import wire
from conode.dht.libp2p_transport import CONNECT_TIMEOUT
from conode.dht.messages import Hello
from conode.dht.transport import PeerId, protocol_id
from conode.errors import NetworkError
from conode.hashes import AgentKey
from conode.node import Node
from conode.node.dialing import FORGET_AFTER_US, MAX_DIALS, backoff_us
from conode.node.peers import HELLO_PEERS
from conode.testing.network import FAST, TestNetwork

MADE_UP = 5_000


@dataclasses.dataclass
class Tarpit:
    """Counts a node's dials; dials to ``/memory/dead-*`` hang for the connect timeout, then fail."""

    node: Node
    dials: dict[str, int] = dataclasses.field(default_factory=dict)
    at_once: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        real: Callable[[str], Awaitable[PeerId]] = self.node.transport.connect

        async def connect(addr: str) -> PeerId:
            self.dials[addr] = self.dials.get(addr, 0) + 1
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
            try:
                if addr.startswith("/memory/dead-"):
                    await trio.sleep(CONNECT_TIMEOUT)
                    raise NetworkError(f"could not connect to {addr} within {CONNECT_TIMEOUT:g} s")
                return await real(addr)
            finally:
                self.at_once -= 1

        self.node.transport.connect = connect  # type: ignore[method-assign]


def made_up_hello(count: int) -> Hello:
    liar = AgentKey(Signer.generate().public_key)
    peers = tuple((PeerId(f"dead-{i}"), (f"/memory/dead-{i}",)) for i in range(count))
    return Hello(liar, (), (), peers, ("/memory/liar",), None)


async def test_a_hello_naming_thousands_of_made_up_peers_stores_none_and_dials_a_bounded_few(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        a = net.nodes[0]
        tarpit = Tarpit(a)
        liar = await start_rogue(net, nursery, "liar")
        hello = made_up_hello(MADE_UP)
        for _ in range(10):  # again and again, as a hostile peer would
            await ask(liar, a, wire.HELLO, hello.encode())
            await trio.sleep(1.0)
        made_up = [p for p, _a, _s in a.store.known_peers() if p.startswith("dead-")]
        assert made_up == []  # none stored: none completed a hello
        assert tarpit.most_at_once <= MAX_DIALS
        assert len(tarpit.dials) <= HELLO_PEERS  # only the first HELLO_PEERS were read
        listed = {p for p, _addrs in a.peers.hello_message().peers}
        assert not any(p.startswith("dead-") for p in listed)  # the liar greeted: it is listed
        result = await net.pay("coop1-m0", "coop0-m0", 5)
        assert result.committed, result.reason
        nursery.cancel_scope.cancel()


async def test_dead_remembered_peers_do_not_hold_up_greeting_a_new_peer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Before: the hello loop dialled the 200 one after another, 200 times 10 s before any hello."""
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        a, b = net.nodes
        b.settings = dataclasses.replace(FAST, hello_interval=10_000.0)  # only a greets
        tarpit = Tarpit(a)
        for i in range(200):
            a.store.remember_peer(f"dead-{i}", [f"/memory/dead-{i}"], a.clock())
        await trio.sleep(3 * FAST.hello_interval)  # the loop is among the dead now
        a.peer_keys.pop(b.transport.peer_id)
        b.peer_keys.pop(a.transport.peer_id)
        start = trio.current_time()
        with trio.fail_after(10 * FAST.hello_interval):
            await wait_until(lambda: b.transport.peer_id in a.peer_keys)
        assert trio.current_time() - start < 10 * FAST.hello_interval
        assert tarpit.most_at_once <= MAX_DIALS


async def test_an_unreachable_remembered_peer_is_dialled_with_backoff_then_forgotten(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = JumpClock()
    calm = dataclasses.replace(FAST, gossip_interval=5.0, publish_interval=5.0)
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=clock, settings=calm) as net:
        a = net.nodes[0]
        tarpit = Tarpit(a)
        a.store.remember_peer("dead-0", ["/memory/dead-0"], a.clock())
        await trio.sleep(600.0)
        # dials at 0 s, then 30 s, 1, 2 and 4 min after each failure: five in ten minutes,
        # where the hello loop came round 1 200 times
        dials = tarpit.dials["/memory/dead-0"]
        assert 4 <= dials <= 6, dials
        assert a.peers.dialer.dials.failures("dead-0") == dials
        assert "dead-0" in {p for p, _a, _s in a.store.known_peers()}
        clock.jump(FORGET_AFTER_US)  # seven days pass on the node's clock
        await trio.sleep(backoff_us(dials + 1) / 1e6 + 60)
        assert tarpit.dials["/memory/dead-0"] == dials + 1
        assert "dead-0" not in {p for p, _a, _s in a.store.known_peers()}


async def test_a_hello_lists_only_greeted_conode_peers_and_at_most_hello_peers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # nodes of the version before sharding: their hello lists every conode peer, up to the bound
    # (a sharded node lists only the holders of some places it passes on, at most 8)
    legacy = dataclasses.replace(FAST, legacy=True)
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock, settings=legacy) as net,
        trio.open_nursery() as nursery,
    ):
        a, b = net.nodes
        silent = [await start_rogue(net, nursery, f"silent-{i}") for i in range(HELLO_PEERS + 8)]
        for peer in silent:  # connected, but never greets: not a conode peer
            await peer.connect(a.transport.listen_addrs()[0])
        assert set(silent_ids := {p.peer_id for p in silent}) <= set(a.transport.connected_peers())
        listed = [p for p, _addrs in a.peers.hello_message().peers]
        assert listed == [b.transport.peer_id]
        assert a.status()["peers"] == 1
        for peer in silent:  # now they greet: conode peers, listed up to the bound
            await ask(peer, a, wire.HELLO, made_up_hello(0).encode())
        listed = [p for p, _addrs in a.peers.hello_message().peers]
        assert len(listed) == HELLO_PEERS and set(listed) <= silent_ids | {b.transport.peer_id}
        nursery.cancel_scope.cancel()


async def test_a_hello_repeated_has_each_peer_it_names_that_refuses_dials_dialled_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Before: a candidate whose dial failed was dropped, so the next hello offered it again (a
    hostile peer's hello five times a second had the node dial the same dead peers ever after)."""
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        a = net.nodes[0]
        tarpit = Tarpit(a)
        liar = await start_rogue(net, nursery, "liar")
        peers = tuple((PeerId(f"gone-{i}"), (f"/memory/gone-{i}",)) for i in range(HELLO_PEERS))
        liar_key = AgentKey(Signer.generate().public_key)
        hello = Hello(liar_key, (), (), peers, ("/memory/liar",), None)
        for _ in range(20):  # each dial fails at once (no such peer), as a closed port's does
            await ask(liar, a, wire.HELLO, hello.encode())
            await trio.sleep(0.2)
        gone = {addr: n for addr, n in tarpit.dials.items() if addr.startswith("/memory/gone-")}
        assert len(gone) == HELLO_PEERS
        assert set(gone.values()) == {1}
        nursery.cancel_scope.cancel()


async def test_a_peer_that_greets_but_never_witnesses_holds_up_one_payment_not_every_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Before: every payment to coop0-m0 asked the silent peer and waited the request timeout."""
    async with network_with_rogue(tmp_path, nodes=2, members=1) as (net, rogue):
        payees_node = net.home["coop0-m0"]
        asked: list[float] = []

        async def silent(_peer: object, _payload: bytes) -> bytes:
            asked.append(trio.current_time())
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        rogue.set_handler(protocol_id(payees_node.network_short, wire.WITNESS), silent)
        await greet(rogue, payees_node)  # a conode peer now, and the payer's only witness there
        for _ in range(10):
            result = await net.pay("coop1-m0", "coop0-m0", 1)
            assert result.committed, result.reason
        assert len(asked) == 1
        await trio.sleep(backoff_us(1) / 1e6)
        await greet(rogue, payees_node)
        result = await net.pay("coop1-m0", "coop0-m0", 1)
        assert result.committed, result.reason
        assert len(asked) == 2

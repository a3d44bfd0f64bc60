"""Hellos come every few seconds from every peer: one that changes nothing writes nothing.

A node keeps its peers' addresses on disk (to redial them after a restart);
it rewrites them when they change, and otherwise at most every ten minutes.
Every write is an fsync, and 20 nodes greeting each other every second were
spending most of their time on them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import trio_clock

from conode.dht.messages import PublishRequest
from conode.dht.transport import PeerId
from conode.node import Node
from conode.node.dialer import PEER_SEEN_REFRESH_US
from conode.store import NodeStore
from conode.testing import restart_node
from conode.testing.network import FAST, TestNetwork

QUIET = dataclasses.replace(FAST, hello_interval=10_000.0)  # hellos only when the test says


def stored(node: Node, peer: str) -> tuple[list[str], int]:
    """A peer's addresses and last-seen time as ``node`` keeps them on disk."""
    [(addrs, seen)] = [(addrs, seen) for p, addrs, seen in node.store.known_peers() if p == peer]
    return addrs, seen


async def test_repeated_hellos_write_a_peer_only_when_its_addresses_change(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=1, clock=trio_clock, settings=QUIET
    ) as net:
        a, b = net.nodes
        hello = b.peers.hello_message()
        peer = b.transport.peer_id
        a.peers.learn_hello(peer, hello)
        first = stored(a, peer)
        for _ in range(5):
            await trio.sleep(1)
            a.peers.learn_hello(peer, hello)
        assert stored(a, peer) == first  # not rewritten: the same addresses, seen again
        await trio.sleep(1)
        moved = dataclasses.replace(hello, addrs=("/memory/elsewhere",))
        a.peers.learn_hello(peer, moved)
        addrs, seen = stored(a, peer)
        assert addrs == ["/memory/elsewhere"] and seen > first[1]
        await trio.sleep(1)
        a.peers.learn_hello(peer, moved)
        assert stored(a, peer) == (addrs, seen)
        await trio.sleep(PEER_SEEN_REFRESH_US / 1_000_000)
        a.peers.learn_hello(peer, moved)  # unchanged, but seen again after the refresh interval
        assert stored(a, peer)[1] > seen


async def test_a_restarted_node_still_knows_its_peers_addresses(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net:
        for _ in range(3):
            for node in net.nodes:
                for peer in node.transport.connected_peers():
                    await node.hello(peer)
        path = net.nodes[0].store.path
        expected = {PeerId(n.transport.peer_id) for n in net.nodes[1:]}
    with NodeStore.open(path) as store:
        assert {p for p, addrs, _seen in store.known_peers() if addrs} == expected


async def test_a_hello_leaves_out_the_claims_its_peer_already_holds(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=1, clock=trio_clock, settings=QUIET
    ) as net:
        a, b = net.nodes
        a_id, b_id = PeerId(a.transport.peer_id), PeerId(b.transport.peer_id)
        await a.hello(b_id)
        assert net.agents["coop0-m0"] in b.hosts and net.agents["coop1-m0"] in a.hosts
        # each holds the other's claims and said so: neither says them again
        assert a.peers.hello_message(b_id).agents == ()
        assert b.peers.hello_message(a_id).agents == ()
        assert len(a.peers.hello_message(b_id).encode()) < len(a.peers.hello_message().encode()) - 200
        # to a peer it knows nothing of, a node still says whom it hosts
        assert {c.agent for c in a.peers.hello_message().agents} == set(a.agents)


async def test_a_restarted_peer_is_told_the_claims_it_forgot(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock, settings=QUIET) as net,
        trio.open_nursery() as nursery,
    ):
        a, b = net.nodes
        b_id = PeerId(b.transport.peer_id)
        await a.hello(b_id)
        assert a.peers.hello_message(b_id).agents == ()  # b held a's claims
        b.scope.cancel()  # type: ignore[attr-defined]  # a crash: its memory of claims goes
        await trio.testing.wait_all_tasks_blocked()
        restarted = await restart_node(net, nursery, b)
        # a greets first or b does: either way, once a's hello is answered b holds a's claims
        await a.hello(b_id)
        assert {net.agents["coop0"], net.agents["coop0-m0"]} <= set(restarted.hosts)
        nursery.cancel_scope.cancel()


async def test_a_publish_to_a_peer_that_showed_it_holds_the_claims_leaves_them_out(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=1, clock=trio_clock, settings=QUIET
    ) as net:
        a, b = net.nodes
        b_id = PeerId(b.transport.peer_id)
        sent: list[PublishRequest] = []
        ask = a.client.ask

        async def spy(peer: PeerId, request: Any) -> Any:
            if isinstance(request, PublishRequest):
                sent.append(request)
            return await ask(peer, request)

        monkeypatch.setattr(a.client, "ask", spy)
        genesis = next(a.store.records(net.agents["coop0"]))
        await a.hello(b_id)  # b's answer shows it holds a's claims
        await a.publishing._publish_to(b_id, [genesis])
        assert [r.claims for r in sent] == [()]

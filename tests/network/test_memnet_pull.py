"""Gossip pulls many chains in one ``chains`` request, and ingests a batch in dependency order.

A late-joining node of the version before sharding (``NodeSettings.legacy``:
it holds everything and swaps heads; a sharded node takes its arc over by
reconciliation instead, ``test_memnet_shard.py``) that gossips with a peer
lacks every chain: it asks for all of them in one request, and records that depend on another chain's records
(a payment on the payer's chain names the payee's previous credit) wait in
the batch until that chain has been taken in, instead of costing a fetch
each. Under trio's ``MockClock``; the nodes gossip and greet only when told.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import assert_chains_identical_everywhere, trio_clock, wait_until

from conode.dht import wire
from conode.dht.transport import Handler, PeerId
from conode.errors import RemoteProtocolError
from conode.node import Node
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer

QUIET = dataclasses.replace(FAST, gossip_interval=10_000.0, hello_interval=10_000.0)
PULLS = {"heads", "chains", "chain", "fetch"}


def chains_handler(node: Node) -> Handler:
    """What ``node`` answers a ``chains`` request with (bytes in, bytes out)."""
    return node.serving.handlers()[wire.CHAINS]


def count_requests(node: Node) -> Counter[str]:
    """Count the requests ``node`` sends, by protocol name (the transport still sends them)."""
    counts: Counter[str] = Counter()
    send: Callable[..., Awaitable[bytes]] = node.transport.request

    async def counted(peer: PeerId, protocol: str, payload: bytes, *, timeout: float) -> bytes:
        counts[protocol.rsplit("/", 2)[-2]] += 1
        return await send(peer, protocol, payload, timeout=timeout)

    node.transport.request = counted  # type: ignore[method-assign]
    return counts


async def pay_across_chains(net: TestNetwork) -> list[str]:
    """Payments whose records depend on chains that sort after their own; the member names.

    The members are sorted by key, the order a pull asks for their chains in:
    each payment goes from a member to one sorted after it that has already
    been paid, so the payer's record names the payee's earlier credit record,
    on a chain the batch brings later.
    """
    names = sorted((n for n in net.agents if "-m" in n), key=lambda n: net.agents[n].raw)
    for i in range(1, len(names)):
        assert (await net.pay(names[0], names[i], 5)).committed  # everyone after names[0] is paid
    for i in range(len(names) - 1):
        assert (await net.pay(names[i], names[i + 1], 1)).committed
    return names


async def late_joiner(net: TestNetwork, nursery: trio.Nursery, tmp_path: Path) -> Node:
    """A new node with an empty store, connected to node 0 (and by hello to the rest)."""
    await wait_until(lambda: all(not node.store.publishing() for node in net.nodes))
    joiner = Node(
        store=NodeStore.open(tmp_path / "joiner.db"),
        charter=net.charter,
        transport=net.memnet.transport("joiner"),
        node_signer=derive_signer("testnet", "joiner"),
        settings=dataclasses.replace(QUIET, legacy=True),
        clock=trio_clock,
    )
    await net.start_node(nursery, joiner)
    await joiner.connect(net.nodes[0].transport.listen_addrs()[0])
    return joiner


async def test_a_node_lacking_every_chain_pulls_them_in_one_request_without_fetches(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=3, clock=trio_clock, settings=QUIET) as net,
        trio.open_nursery() as nursery,
    ):
        await pay_across_chains(net)
        joiner = await late_joiner(net, nursery, tmp_path)
        counts = count_requests(joiner)
        await joiner.gossip_with(net.nodes[0].transport.peer_id)
        pulls = {name: n for name, n in counts.items() if name in PULLS}
        assert pulls == {"heads": 1, "chains": 1}  # no "chain", no "fetch"
        net.nodes.append(joiner)
        assert_chains_identical_everywhere(net)
        nursery.cancel_scope.cancel()


async def test_a_reply_cut_off_at_the_limit_is_continued_where_each_chain_stopped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=3, clock=trio_clock, settings=QUIET) as net,
        trio.open_nursery() as nursery,
    ):
        await pay_across_chains(net)
        joiner = await late_joiner(net, nursery, tmp_path)
        held = sum(len(list(net.nodes[0].store.records(key))) for key in net.agents.values())
        joiner.pulls.batch = 4  # it asks for 4 records a reply: replies of 4 records
        counts = count_requests(joiner)
        await joiner.gossip_with(net.nodes[0].transport.peer_id)
        assert counts["chains"] >= -(-held // 4)  # at least as many rounds as replies of 4
        net.nodes.append(joiner)
        assert_chains_identical_everywhere(net)
        nursery.cancel_scope.cancel()


async def test_a_record_whose_dependency_is_not_in_the_batch_is_fetched_from_the_peer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=3, clock=trio_clock, settings=QUIET) as net,
        trio.open_nursery() as nursery,
    ):
        names = await pay_across_chains(net)
        joiner = await late_joiner(net, nursery, tmp_path)
        first = net.agents[names[0]]  # its records name credits on every other member's chain
        counts = count_requests(joiner)
        assert await joiner.pulls.pull_chains(net.nodes[0].transport.peer_id, {first: 0})
        assert counts["chains"] == 1 and counts["chain"] + counts["fetch"] >= 1
        home = net.home[names[0]]
        assert [r.hash for r in joiner.store.records(first)] == [
            r.hash for r in home.store.records(first)
        ]
        nursery.cancel_scope.cancel()


async def test_the_chains_reply_holds_each_chain_from_its_seq_in_the_order_asked(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=2, clock=trio_clock, settings=QUIET
    ) as net:
        names = await pay_across_chains(net)
        server = net.nodes[0]
        keys = [net.agents[names[1]], net.agents[names[0]]]  # not in key order
        asked = [[keys[0].to_bytes(), 1], [keys[1].to_bytes(), 0]]
        reply = wire.loads(
            await chains_handler(server)(PeerId("x"), wire.dumps({"chains": asked, "limit": 100})),
            {"records", "more"},
        )
        expected = list(server.store.record_blobs(keys[0], 1))
        expected += list(server.store.record_blobs(keys[1], 0))
        assert reply == {"records": expected, "more": False}
        cut = wire.loads(
            await chains_handler(server)(PeerId("x"), wire.dumps({"chains": asked, "limit": 2})),
            {"records", "more"},
        )
        assert cut == {"records": expected[:2], "more": True}


@pytest.mark.parametrize(
    "message",
    [
        lambda author: {"chains": "all", "limit": 10},
        lambda author: {"chains": [[author, 0]], "limit": 0},
        lambda author: {"chains": [[author, -1]], "limit": 10},
        lambda author: {"chains": [[author]], "limit": 10},
        lambda author: {"chains": [[author, "0"]], "limit": 10},
        lambda author: {"chains": [[b"\x00" * 33, 0]], "limit": 10},
        lambda author: {"chains": [["author", 0]], "limit": 10},
        lambda author: {"limit": 10},
    ],
    ids=[
        "not-a-list",
        "zero-limit",
        "negative-seq",
        "no-seq",
        "text-seq",
        "bad-key",
        "text-key",
        "none",
    ],
)
async def test_a_malformed_chains_request_is_refused(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    message: Callable[[bytes], dict[str, Any]],
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=1, members=1, clock=trio_clock, settings=QUIET
    ) as net:
        author = net.agents["coop0"].to_bytes()
        with pytest.raises(RemoteProtocolError):
            await chains_handler(net.nodes[0])(PeerId("x"), wire.dumps(message(author)))

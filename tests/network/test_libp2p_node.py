"""Real ``Node``s on real libp2p in one process: payments, and peers found again by Kademlia."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from conode.chain import ActionKind, author_record
from conode.dht.libp2p_transport import Libp2pTransport
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore
from conode.testing.network import derive_signer, make_charter
from conode.validation.activity import Activity, step
from conode.validation.entries import Credential, Genesis, Role

SETTINGS = NodeSettings(
    replication=3,
    request_timeout=3.0,
    gossip_interval=0.3,
    publish_interval=0.3,
    hello_interval=0.3,
)


QUIET = dataclasses.replace(SETTINGS, hello_interval=10_000.0)
"""Hellos only at start: no node learns another's addresses behind the test's back."""


@asynccontextmanager
async def nodes(
    tmp_path: Path, count: int, settings: NodeSettings = SETTINGS
) -> AsyncIterator[list[Node]]:
    """``count`` nodes, each hosting one co-op and one member, node i bootstrapping from node 0."""
    coops = [(f"coop{i}", derive_signer("p2p", f"coop{i}")) for i in range(count)]
    charter = make_charter(coops)
    started: list[Node] = []
    async with trio.open_nursery() as nursery:
        for i, (name, coop) in enumerate(coops):
            member = HostedAgent(f"{name}-m0", derive_signer("p2p", f"{name}-m0"))
            store = NodeStore.open(tmp_path / f"node{i}.db")
            coop_agent = HostedAgent(name, coop)
            founding = charter.founding_coop(coop_agent.key)
            assert founding is not None
            credential = Credential.issue(coop, member.key, member.name, 1)
            for agent, genesis in (
                (
                    coop_agent,
                    Genesis(
                        charter.network_id, Role.COOP, founding.legal_name, founding.registration
                    ),
                ),
                (
                    member,
                    Genesis(charter.network_id, Role.MEMBER, member.name, credential=credential),
                ),
            ):
                record = author_record(
                    agent.signer,
                    None,
                    kind=ActionKind.GENESIS,
                    timestamp=2,
                    entry=genesis.to_value(),
                )
                state, _ = step(Activity(), record)
                store.append([record], activities={agent.key: state})
            bootstrap = [started[0].transport.listen_addrs()[0]] if started else []
            node = Node(
                store=store,
                charter=charter,
                transport=Libp2pTransport(
                    derive_signer("p2p", f"node{i}").seed, bootstrap=bootstrap, gossip=False
                ),
                node_signer=derive_signer("p2p", f"node{i}"),
                agents=[coop_agent, member],
                settings=settings,
            )
            await nursery.start(node.run)
            started.append(node)
        try:
            yield started
        finally:
            nursery.cancel_scope.cancel()
    for node in started:
        node.store.close()


async def test_payments_commit_on_both_chains_over_real_libp2p(tmp_path: Path) -> None:
    async with nodes(tmp_path, 2) as (a, b):
        payer, payee = derive_signer("p2p", "coop0-m0"), derive_signer("p2p", "coop1-m0")
        with trio.fail_after(20):
            while not a.transport.connected_peers():
                await trio.sleep(0.05)
        result = await a.pay(
            HostedAgent("x", payer).key, HostedAgent("y", payee).key, 25, memo="libp2p"
        )
        assert result.committed, result.reason
        assert b.store.activity(HostedAgent("y", payee).key).balance == 25
        assert a.store.activity(HostedAgent("x", payer).key).balance == -25


async def test_a_node_finds_a_peers_address_through_kademlia_and_dials_it(tmp_path: Path) -> None:
    # quiet hellos: a learning b's addresses from the hub first would make the dead one below stay
    async with nodes(tmp_path, 3, QUIET) as (hub, a, b):
        with trio.fail_after(30):
            while len(hub.transport.connected_peers()) < 2:
                await trio.sleep(0.05)
        b_id = b.transport.peer_id
        addrs = await a.transport.find_peer(b_id)  # type: ignore[attr-defined]
        assert any(addr.endswith(f"/p2p/{b_id}") for addr in addrs), addrs
        a.store.remember_peer(b_id, [f"/ip4/127.0.0.1/tcp/9/p2p/{b_id}"], 0)  # a dead address
        await a.peers.dialer.route_to(b_id)
        assert b_id in a.transport.connected_peers()
        remembered = next(found for peer, found, _seen in a.store.known_peers() if peer == b_id)
        assert all("/tcp/9/" not in addr for addr in remembered), remembered

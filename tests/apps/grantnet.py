"""Two real nodes with the exchange hosted as ``conode run`` hosts it, for the grant tests.

Each ``Node`` has its own SQLite store on an in-memory network; node 0 hosts co-op 0, a member
and the Foundation (the steward), node 1 co-op 1 and a member. Every node's clock is the wall
clock moved on by whole months when the test says so (``Clock.next_month``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import app, period_of, period_start
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.dht.memnet import MemoryNetwork
from conode.node import HostedAgent, Node, wall_clock_us
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer, make_charter
from conode.validation.charter import AppPin, Charter, Limits

DAY_US = 86_400_000_000


class Clock:
    """Every node's clock: the wall clock moved on by whole months when the test says so."""

    def __init__(self) -> None:
        self.shift = 0

    def __call__(self) -> int:
        return wall_clock_us() + self.shift

    def next_month(self) -> None:
        now = self()
        self.shift += period_start(period_of(now) + 1) + DAY_US - now


@dataclass
class GrantNet:
    """The running network: its nodes and agents (``net``), each node's app host, the charter."""

    net: TestNetwork
    hosts: list[AppHost]
    charter: Charter
    apps: NodeApps
    clock: Clock


@asynccontextmanager
async def grant_network(tmp_path: Path, seed: str, config: dict[str, Any]) -> AsyncIterator[GrantNet]:
    """Start two connected nodes whose charter pins the exchange with ``config``; stop them after."""
    clock = Clock()
    exchange = AppPin("exchange", app.version, installed_apps()["exchange"].bundle_hash())
    names = [("coop0", ["coop0-m0"]), ("coop1", ["coop1-m0"])]
    signers = {n: derive_signer(seed, n) for coop, members in names for n in (coop, *members)}
    fund = HostedAgent("foundation", derive_signer(seed, "foundation"))
    charter = make_charter(
        [(coop, signers[coop]) for coop, _ in names],
        member_limits=Limits(50_000, 1_000_000),
        foundation=fund.key,
        apps=(exchange,),
    )
    params = dataclasses.replace(charter.params, app_config={"exchange": config})
    charter = dataclasses.replace(charter, params=params)
    running = {"exchange": app}
    net = TestNetwork(MemoryNetwork(seed=11), charter, [])
    hosts: list[AppHost] = []
    try:
        async with trio.open_nursery() as nursery:
            for i, (coop, members) in enumerate(names):
                agents = [HostedAgent(n, signers[n]) for n in (coop, *members)]
                store = NodeStore.open(tmp_path / f"node{i}.db")
                node = Node(
                    store=store, charter=charter, transport=net.memnet.transport(f"node{i}"),
                    node_signer=derive_signer(seed, f"node{i}"), agents=agents, settings=FAST,
                    clock=clock, apps=NodeApps(running),
                )  # fmt: skip
                net.nodes.append(node)
                for agent in agents:
                    net.agents[agent.name] = agent.key
                    net.home[agent.name] = node
                await net.start_node(nursery, node)
                await net.genesis(node, agents[0], agents[1:])
                if i == 0:
                    await net.host_foundation(node, fund)
                plan = AppPlan((), running, NodeApps(running))
                hosts.append(AppHost(node, AppCatalog(store, charter, {}), plan))
            await net.nodes[1].connect(net.nodes[0].transport.listen_addrs()[0])
            yield GrantNet(net, hosts, charter, NodeApps(running), clock)
            nursery.cancel_scope.cancel()
    finally:
        for node in net.nodes:
            node.store.close()

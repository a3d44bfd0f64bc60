"""An expiry across real nodes: the co-op's node expires its due grant line by itself (its app
duties, as ``conode run`` runs them), and a second node judges the expiry with the same rules.

Two ``Node``s with their own SQLite stores on an in-memory network, the exchange hosted by
``AppHost``; the charter switches expiry on after one month (``grant_expiry_months`` = 1). Every
node's clock is the wall clock moved on by whole months when the test says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import GRANT, SHARE, app, period_label, period_of, period_start
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.dht.memnet import MemoryNetwork
from conode.node import HostedAgent, Node, wall_clock_us
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer, make_charter
from conode.validation.audit import audit
from conode.validation.charter import AppPin, Limits

SEED = "grant-expiry"
DAY_US = 86_400_000_000
EXPIRING = {"issues_credit": True, "grant_cap": 50_000, "grant_expiry_months": 1}


class Clock:
    """Every node's clock: the wall clock moved on by whole months when the test says so."""

    def __init__(self) -> None:
        self.shift = 0

    def __call__(self) -> int:
        return wall_clock_us() + self.shift

    def next_month(self) -> None:
        now = self()
        self.shift += period_start(period_of(now) + 1) + DAY_US - now


async def test_the_coops_node_expires_a_due_line_by_itself_and_peers_accept_it(
    tmp_path: Path,
) -> None:
    clock = Clock()
    exchange = AppPin("exchange", app.version, installed_apps()["exchange"].bundle_hash())
    names = [("coop0", ["coop0-m0"]), ("coop1", ["coop1-m0"])]
    signers = {n: derive_signer(SEED, n) for coop, members in names for n in (coop, *members)}
    fund = HostedAgent("foundation", derive_signer(SEED, "foundation"))
    charter = make_charter(
        [(coop, signers[coop]) for coop, _ in names],
        member_limits=Limits(50_000, 1_000_000),
        foundation=fund.key,
        apps=(exchange,),
    )
    params = dataclasses.replace(charter.params, app_config={"exchange": EXPIRING})
    charter = dataclasses.replace(charter, params=params)
    running = {"exchange": app}
    net = TestNetwork(MemoryNetwork(seed=12), charter, [])
    hosts: list[AppHost] = []
    try:
        async with trio.open_nursery() as nursery:
            for i, (coop, members) in enumerate(names):
                agents = [HostedAgent(n, signers[n]) for n in (coop, *members)]
                store = NodeStore.open(tmp_path / f"node{i}.db")
                node = Node(
                    store=store, charter=charter, transport=net.memnet.transport(f"node{i}"),
                    node_signer=derive_signer(SEED, f"node{i}"), agents=agents, settings=FAST,
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
            node0, node1 = net.nodes
            api0 = hosts[0].api("exchange")

            posted = await app.functions["offer-add"](
                api0, title="Sourdough bread", category="food/bakery", price=100, unit="loaf",
                quantity=200, agent=net.agents["coop0"],
            )  # fmt: skip
            assert posted["grant"]["grant"]["credit"] == 18_000
            posted_in = period_of(clock())
            await hosts[0].run_duties()  # this month: not due, nothing expires
            assert net.balance("coop0") == 18_000
            assert len(list(node0.store.records_of_type(GRANT))) == 1

            clock.next_month()
            await hosts[0].run_duties()  # due: expire the unspent 18 000, collect the share
            assert net.balance("coop0") == 0
            assert net.balance("foundation") == 2_000
            await hosts[0].run_duties()  # idempotent: the line is closed
            assert len(list(node0.store.records_of_type(GRANT))) == 2

            await net.converge()
            for kind, count in ((GRANT, 2), (SHARE, 1)):
                held = list(node1.store.records_of_type(kind))
                assert len(held) == count and all(node1.store.validated(r.hash) for r in held)
            (line,) = await hosts[1].call(
                "exchange", "grants", {"coop": "coop0"}, agent=None,
                resolve=lambda text, hosted: net.agents[str(text)],
            )  # fmt: skip
            assert [g["basis"] for g in line["grants"]] == ["new", "expire"]
            assert (line["expired"], line["expires"], line["granted"]) == (
                period_label(posted_in + 1), None, 2_000,
            )  # fmt: skip
            chains = [list(node1.store.records(key)) for key in net.agents.values()]
            report = audit(charter, chains, NodeApps(running))
            assert report.ok, report.violations
            assert report.zero_sum and report.issued == 2_000  # only the Foundation's share
            nursery.cancel_scope.cancel()
    finally:
        for node in net.nodes:
            node.store.close()

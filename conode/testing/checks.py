"""Clocks, waits and assertions for tests on a ``TestNetwork`` (yours and ours).

- ``trio_clock`` / ``JumpClock``: node clocks (µs) that move with trio's clock,
  so a ``MockClock`` test drives session deadlines and voting periods alike;
- ``wait_until``, ``settle``: wait for a condition, or for every responder to
  learn its outcome and every node to agree;
- ``assert_audit_clean``, ``assert_chains_identical_everywhere``: what the
  nodes hold audits clean, and is the same everywhere it should be;
- ``ring_of``, ``holders_of``: the ring of the running nodes' places (as a node
  that saw them all would see it), and who must hold an agent's chain;
- ``restart_node``: a stopped node started again on its own store and keys.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from conode.chain import Record
from conode.chain.ops import location
from conode.dht.arcs import Ring
from conode.hashes import AgentKey
from conode.node import Node
from conode.store import NodeStore
from conode.testing.network import START_US, TestNetwork
from conode.validation.audit import audit

__all__ = [
    "JumpClock",
    "assert_audit_clean",
    "assert_chains_identical_everywhere",
    "holders_of",
    "home_chains",
    "restart_node",
    "ring_of",
    "settle",
    "trio_clock",
    "wait_until",
]


def trio_clock() -> int:
    """A node clock (µs) that moves with trio's clock, mock or real."""
    return START_US + int(trio.current_time() * 1_000_000)


class JumpClock:
    """A node clock (µs) that moves with trio's clock, mock or real, and can jump ahead
    (``jump``): a day of voting passes without a day of trio timers."""

    def __init__(self) -> None:
        self.jumped = 0

    def __call__(self) -> int:
        return trio_clock() + self.jumped

    def jump(self, micros: int) -> None:
        self.jumped += micros


async def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it is true (``trio.TooSlowError`` after ``timeout`` s)."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def settle(net: TestNetwork, timeout: float = 120.0) -> None:
    """Wait until every responder has learned its outcome, then until every node agrees."""
    await wait_until(lambda: all(not node.locks for node in net.nodes), timeout)
    await net.converge(timeout=timeout)


def home_chains(net: TestNetwork) -> list[list[Record]]:
    """Every agent's chain as its home node holds it."""
    return [list(net.home[name].store.records(key)) for name, key in net.agents.items()]


def assert_audit_clean(net: TestNetwork, chains: list[list[Record]] | None = None) -> None:
    """The chains (by default every home chain) audit without a violation and sum to zero."""
    report = audit(net.charter, home_chains(net) if chains is None else chains)
    assert report.violations == []
    assert report.zero_sum, report.total


def assert_chains_identical_everywhere(net: TestNetwork) -> None:
    """Every node that should hold an agent's chain (it hosts it, or the agent's location is on
    its arc) holds it exactly as the agent's home node does, and every chain is held so by R
    nodes (every node, in a network of R or fewer)."""
    replication = net.nodes[0].settings.replication
    for name, key in net.agents.items():
        home = [r.hash for r in net.home[name].store.records(key)]
        assert home, name
        holders = [node for node in net.nodes if node.placement.holds_chain(key)]
        for node in holders:
            assert [r.hash for r in node.store.records(key)] == home, (name, node.transport.peer_id)
        assert len(holders) >= min(replication, len(net.nodes)), (name, len(holders))


def ring_of(nodes: list[Node]) -> Ring:
    """The ring of these nodes' places (the running ones), as a node that saw them all sees it."""
    holders = []
    for node in nodes:
        if getattr(node.transport, "online", True):
            holder = node.placement.place.holder(node.transport.peer_id)
            if holder is not None:
                holders.append(holder)
    return Ring.of(holders, nodes[0].settings.replication)


def holders_of(net: TestNetwork, agent: AgentKey, ring: Ring | None = None) -> list[Node]:
    """The running nodes that must hold ``agent``'s chain: its authorities on the ring of the
    running nodes, and its home node."""
    ring = ring or ring_of(net.nodes)
    peers = set(ring.authorities(location(agent.raw))) if ring.ordinary or ring.full else set()
    home = {net.home[name] for name, key in net.agents.items() if key == agent}
    return [
        node for node in net.nodes
        if getattr(node.transport, "online", True)
        and (node.transport.peer_id in peers or node in home)
    ]  # fmt: skip


async def restart_node(net: TestNetwork, nursery: trio.Nursery, old: Node) -> Node:
    """A new ``Node`` on a stopped node's store file, keys, peer id and apps, in its place in ``net``."""
    await trio.testing.wait_all_tasks_blocked()  # the old node's tasks have unwound
    assert not old.transport.online  # type: ignore[attr-defined]
    old.store.close()
    node = Node(
        store=NodeStore.open(old.store.path),
        charter=net.charter,
        transport=old.transport,
        node_signer=old.signer,
        agents=list(old.agents.values()),
        settings=old.settings,
        clock=old.clock,
        apps=old.engine.apps,
    )
    net.nodes[net.nodes.index(old)] = node
    for name, home in list(net.home.items()):
        if home is old:
            net.home[name] = node
    await net.start_node(nursery, node)
    return node

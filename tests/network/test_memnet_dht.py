"""Publishing, receipts, gossip repair and late joiners on the in-memory network.

Every test runs under trio's ``MockClock`` (``autojump_clock``, or its own in
the property test) with node clocks derived from ``trio.current_time()``, so
dropped requests, timeouts and gossip rounds cost no wall time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netkit import (
    assert_audit_clean,
    assert_chains_identical_everywhere,
    restart_node,
    settle,
    trio_clock,
    wait_until,
)

from conode import encoding
from conode.crypto import SIG_RECEIPT, verify
from conode.dht.arcs import hash_location
from conode.dht.memnet import Faults
from conode.node import Node, PaymentResult
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer

R = FAST.replication


def members(net: TestNetwork) -> list[str]:
    return [name for name in net.agents if "-m" in name]


class Ledger:
    """What the committed payments say each balance must be."""

    def __init__(self, net: TestNetwork) -> None:
        self.net = net
        self.expected = dict.fromkeys(net.agents, 0)
        self.committed = 0

    async def pay(self, payer: str, payee: str, amount: int, attempts: int = 1) -> PaymentResult:
        result = PaymentResult(False, "not tried")
        for _ in range(attempts):
            result = await self.net.pay(payer, payee, amount)
            if result.committed:
                self.expected[payer] -= amount
                self.expected[payee] += amount
                self.committed += 1
                break
        return result

    def check(self) -> None:
        assert {name: self.net.balance(name) for name in self.net.agents} == self.expected
        for node in self.net.nodes:  # every node that holds a chain (hosts it, or on its arc)
            held = {
                name: node.store.activity(k).balance
                for name, k in self.net.agents.items()
                if node.placement.holds_chain(k)
            }
            assert held == {name: self.expected[name] for name in held}, node.transport.peer_id
        assert sum(self.expected.values()) == 0


async def stop_node(node: Node) -> None:
    """Stop a node as a crash would (its tasks are cancelled); leave its store file."""
    node.scope.cancel()  # type: ignore[attr-defined]
    await trio.testing.wait_all_tasks_blocked()
    assert not node.transport.online


# -- publishing and receipts -----------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [3, 5])
async def test_every_record_reaches_its_authorities_and_its_author_holds_receipts_from_r_of_them(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, nodes: int
) -> None:
    async with TestNetwork.start(tmp_path, nodes=nodes, members=2, clock=trio_clock) as net:
        ledger = Ledger(net)
        names = members(net)
        for i in range(2 * nodes):
            result = await ledger.pay(names[i % len(names)], names[(3 * i + 1) % len(names)], 5)
            assert result.committed, result.reason
        await wait_until(lambda: all(not node.store.publishing() for node in net.nodes))
        await net.converge()
        assert_chains_identical_everywhere(net)
        ledger.check()
        node_keys = {node.key for node in net.nodes}
        for node in net.nodes:
            assert node.receipts_needed() == min(R, nodes - 1)
            for hosted in node.agents:
                # R, or as many authorities as the author's chain has besides its host
                needed = node.publishing.receipts_needed(hosted)
                assert needed == min(R, nodes - 1) or node.placement.holds_location(
                    hash_location(hosted)
                )
                for record in node.store.records(hosted):
                    receipts = node.store.receipts(record.hash)
                    authorities = {receipt.authority for receipt in receipts}
                    assert len(authorities) >= needed, (node.transport.peer_id, record.hash)
                    assert authorities <= node_keys - {node.key}
                    for receipt in receipts:
                        assert receipt.valid
                        signed = encoding.encode([record.hash.to_bytes(), True, receipt.at])
                        assert verify(receipt.authority.raw, SIG_RECEIPT, signed, receipt.signature)


async def test_a_late_joining_node_learns_every_chain_by_gossip(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=2, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        ledger = Ledger(net)
        names = members(net)
        for i in range(6):
            assert (await ledger.pay(names[i], names[(i + 2) % len(names)], 10 + i)).committed
        await net.converge()
        mirror = Node(
            store=NodeStore.open(tmp_path / "mirror.db"),
            charter=net.charter,
            transport=net.memnet.transport("mirror"),
            node_signer=derive_signer("testnet", "mirror"),
            settings=FAST,
            clock=trio_clock,
        )
        await net.start_node(nursery, mirror)
        await mirror.connect(net.nodes[2].transport.listen_addrs()[0])
        net.nodes.append(mirror)
        await net.converge()
        assert_chains_identical_everywhere(net)
        ledger.check()
        # it takes part from then on: a new payment reaches it too
        assert (await ledger.pay("coop0-m0", "coop2-m1", 3)).committed
        await net.converge()
        assert_chains_identical_everywhere(net)
        nursery.cancel_scope.cancel()


# -- faults, partitions, downtime ------------------------------------------------------------------


async def test_payments_converge_and_audit_clean_under_drops_duplicates_and_delays(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    faults = Faults(drop=0.3, duplicate=0.2, delay_max=0.02)
    async with TestNetwork.start(
        tmp_path, nodes=4, members=2, clock=trio_clock, faults=faults
    ) as net:
        ledger = Ledger(net)
        names = members(net)
        for i in range(12):
            await ledger.pay(names[i % len(names)], names[(5 * i + 3) % len(names)], 7, attempts=4)
        assert ledger.committed >= 8
        await settle(net)
        assert_chains_identical_everywhere(net)
        ledger.check()
        assert_audit_clean(net)
        assert all(node.store.warrants() == [] for node in net.nodes)


async def test_partitioned_sides_keep_paying_and_converge_after_heal(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=4, members=2, clock=trio_clock) as net:
        ledger = Ledger(net)
        await net.converge()
        net.memnet.partition({"node0", "node1"}, {"node2", "node3"})
        for payer, payee in [
            ("coop0-m0", "coop1-m0"),
            ("coop1-m1", "coop0-m1"),
            ("coop2-m0", "coop3-m1"),
            ("coop3-m0", "coop2-m0"),
            ("coop0-m1", "coop0-m0"),
        ]:
            result = await ledger.pay(payer, payee, 20)
            assert result.committed, (payer, payee, result.reason)
        across = await ledger.pay("coop0-m0", "coop3-m0", 5)
        assert not across.committed
        assert across.reason
        left, right = net.nodes[:2], net.nodes[2:]
        await wait_until(lambda: all(not node.locks for node in net.nodes))
        await net.converge(nodes=left)
        await net.converge(nodes=right)
        assert not net.converged()
        net.memnet.heal()
        await settle(net)
        assert_chains_identical_everywhere(net)
        ledger.check()
        assert_audit_clean(net)
        # and the two sides trade again
        assert (await ledger.pay("coop0-m0", "coop3-m0", 5)).committed


async def test_a_node_stopped_during_payments_catches_up_by_gossip_after_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=2, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        ledger = Ledger(net)
        await net.converge()
        node2 = net.nodes[2]
        pairs = [("coop0-m0", "coop1-m0"), ("coop1-m1", "coop0-m1"), ("coop0", "coop1")]

        async def keep_paying() -> None:
            for round_ in range(4):
                for payer, payee in pairs:
                    await ledger.pay(payer, payee, 3 + round_)
                await trio.sleep(0.5)

        async with trio.open_nursery() as payments:
            payments.start_soon(keep_paying)
            await wait_until(lambda: ledger.committed >= 3)
            await stop_node(node2)  # in the middle of the payments
        assert ledger.committed >= 10
        assert not net.converged()  # it missed some of them
        refused = await ledger.pay("coop0-m0", "coop2-m0", 5)
        assert not refused.committed
        held_before = node2.store.path
        restarted = await restart_node(net, nursery, node2)
        assert restarted.store.path == held_before
        await settle(net)
        assert_chains_identical_everywhere(net)
        ledger.check()
        assert_audit_clean(net)
        # once it has greeted its peers again, its agents pay and are paid again
        await wait_until(lambda: net.agents["coop0-m0"] in restarted.hosts)
        for payer, payee in (("coop2-m0", "coop0-m0"), ("coop1-m0", "coop2-m1")):
            result = await ledger.pay(payer, payee, 4)
            assert result.committed, (payer, payee, result.reason)
        await settle(net)
        ledger.check()
        nursery.cancel_scope.cancel()


# -- property: random schedules of payments, drops and partitions ---------------------------------

NODES = 3
AGENTS = [f"coop{i}" for i in range(NODES)] + [f"coop{i}-m0" for i in range(NODES)]

pay_steps = st.tuples(
    st.just("pay"),
    st.sampled_from(AGENTS),
    st.sampled_from(AGENTS),
    st.integers(min_value=1, max_value=300),
)
partition_steps = st.tuples(st.just("partition"), st.sets(st.integers(0, NODES - 1), min_size=1))
fault_steps = st.tuples(st.just("drop"), st.sampled_from([0.0, 0.2, 0.4]))
schedules = st.lists(
    st.one_of(pay_steps, pay_steps, pay_steps, partition_steps, st.just(("heal",)), fault_steps),
    min_size=1,
    max_size=20,
)


async def _run_schedule(directory: Path, schedule: list[tuple[object, ...]]) -> None:
    async with TestNetwork.start(directory, nodes=NODES, members=1, clock=trio_clock) as net:
        ledger = Ledger(net)
        for step in schedule:
            if step[0] == "pay":
                _, payer, payee, amount = step
                assert isinstance(payer, str) and isinstance(payee, str)
                assert isinstance(amount, int)
                result = await ledger.pay(payer, payee, amount)
                if not result.committed:
                    assert result.reason
            elif step[0] == "partition":
                side = {f"node{i}" for i in step[1]}  # type: ignore[attr-defined]
                rest = {f"node{i}" for i in range(NODES)} - side
                net.memnet.partition(side, rest)
            elif step[0] == "heal":
                net.memnet.heal()
            else:
                net.memnet.faults = Faults(drop=step[1])  # type: ignore[arg-type]
        net.memnet.faults = Faults()
        net.memnet.heal()
        await settle(net, timeout=300)
        assert_chains_identical_everywhere(net)
        ledger.check()
        assert_audit_clean(net)
        assert all(node.store.warrants() == [] for node in net.nodes)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=schedules)
def test_any_schedule_of_payments_drops_and_partitions_converges_to_one_zero_sum_ledger(
    schedule: list[tuple[object, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        trio.run(
            _run_schedule,
            Path(directory),
            schedule,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )

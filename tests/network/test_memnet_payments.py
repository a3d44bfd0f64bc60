"""Payments between real nodes on the in-memory network (real time, the FAST settings).

Each test checks what the holders of the chains see: both parties' records at
the positions the body fixes, balances on the home nodes and on every other
node, no fork under concurrency, and an audit of every chain that is clean and
sums to zero.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio
from netkit import assert_audit_clean, wait_until

from conode.chain import Record
from conode.dht import wire
from conode.dht.transport import protocol_id
from conode.errors import RemoteProtocolError
from conode.hashes import AgentKey
from conode.node import Node, reconcile
from conode.testing.network import FAST, TestNetwork, derive_signer
from conode.validation.charter import Limits
from conode.validation.entries import PAYMENT, Payment

MEMBERS = ["coop0-m0", "coop0-m1", "coop1-m0", "coop1-m1", "coop2-m0", "coop2-m1"]


def payments_on(node: Node, agent: AgentKey) -> list[Record]:
    return [r for r in node.store.records(agent) if r.action.entry_type == PAYMENT]


async def assert_both_records_at_body_positions(
    net: TestNetwork, payer: str, payee: str, amount: int, payer_record: Record
) -> Payment:
    """The payee's home holds its record of the same entry at the seq/prev the body fixes."""
    payment = Payment.from_value(payer_record.entry_value())
    body = payment.body
    assert body.payer.agent == net.agents[payer]
    assert body.payee.agent == net.agents[payee]
    assert body.amount == amount
    assert payment.signatures_ok()
    assert (payer_record.action.seq, payer_record.action.prev) == (body.payer.seq, body.payer.prev)
    payee_store = net.home[payee].store
    await wait_until(
        lambda: payee_store.hash_at(body.payee.agent, body.payee.seq) is not None, timeout=10.0
    )
    payee_hash = payee_store.hash_at(body.payee.agent, body.payee.seq)
    assert payee_hash is not None
    payee_record = payee_store.get(payee_hash)
    assert payee_record is not None
    assert payee_record.action.prev == body.payee.prev
    assert payee_record.action.entry_type == PAYMENT
    assert payee_record.action.entry_hash == payer_record.action.entry_hash
    assert payee_record.entry == payer_record.entry
    return payment


async def pay_and_check_both_records(
    net: TestNetwork, payer: str, payee: str, amount: int, memo: str = ""
) -> Payment:
    """Pay; it commits, and both parties' records stand at the positions the body fixes."""
    result = await net.pay(payer, payee, amount, memo=memo)
    assert result.committed, result.reason
    assert result.record is not None
    record = net.home[payer].store.get(result.record)
    assert record is not None
    return await assert_both_records_at_body_positions(net, payer, payee, amount, record)


async def test_cross_node_payment_commits_on_both_chains_at_the_body_positions(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        payment = await pay_and_check_both_records(net, "coop0-m0", "coop1-m0", 50, memo="bread")
        assert payment.body.memo == "bread"
        assert (payment.body.payer.balance_after, payment.body.payee.balance_after) == (-50, 50)
        assert net.balance("coop0-m0") == -50
        assert net.balance("coop1-m0") == 50
        await net.converge()
        assert_audit_clean(net)


async def test_a_payment_to_a_payee_whose_chain_is_busy_with_another_payment_waits_and_commits(
    tmp_path: Path,
) -> None:
    """Before: refused at once with 'declined: the chain is busy with another payment' (a payee's
    node holds its chain until its side of an earlier payment is witnessed and committed)."""
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        payee, payee_node = net.agents["coop1-m0"], net.home["coop1-m0"]
        other = bytes(40)  # the key of a session of the payee's that has not finished yet
        payee_node.locks.take(payee, other)

        async def the_other_session_ends() -> None:
            await trio.sleep(1.0)
            payee_node.locks.release(payee, other)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(the_other_session_ends)
            result = await net.pay("coop0-m0", "coop1-m0", 30)
        assert result.committed, result.reason
        assert net.balance("coop0-m0") == -30
        assert net.balance("coop1-m0") == 30


async def test_payment_between_two_agents_of_one_node_commits_on_both_chains(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=2) as net:
        await pay_and_check_both_records(net, "coop1-m0", "coop1-m1", 120)
        node = net.home["coop1-m0"]
        assert (net.balance("coop1-m0"), net.balance("coop1-m1")) == (-120, 120)
        # and the other node learns both records
        await net.converge()
        other = net.nodes[0]
        for name in ("coop1-m0", "coop1-m1"):
            assert other.store.head(net.agents[name]) == node.store.head(net.agents[name])
        assert_audit_clean(net)


async def test_balances_after_a_run_of_payments_agree_on_every_node(tmp_path: Path) -> None:
    plan = [
        ("coop0-m0", "coop1-m0", 40),
        ("coop1-m0", "coop2-m1", 15),
        ("coop2-m1", "coop0-m0", 7),
        ("coop0", "coop2-m0", 900),  # a co-op's wider limit
        ("coop2-m0", "coop2-m1", 300),
        ("coop1-m1", "coop0-m1", 500),  # exactly to the member's credit limit
    ]
    expected = dict.fromkeys(net_names := [*MEMBERS, "coop0", "coop1", "coop2"], 0)
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        for payer, payee, amount in plan:
            result = await net.pay(payer, payee, amount)
            assert result.committed, (payer, payee, result.reason)
            expected[payer] -= amount
            expected[payee] += amount
        for name in net_names:
            assert net.balance(name) == expected[name], name
        await net.converge()
        for node in net.nodes:
            seen = {name: node.store.activity(net.agents[name]).balance for name in net_names}
            assert seen == expected
            # each node's own copy of the network audits clean
            assert_audit_clean(net, [list(node.store.records(k)) for k in net.agents.values()])
        assert sum(expected.values()) == 0


async def test_over_limit_payment_is_refused_as_credit_limit_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1) as net:
        assert (await net.pay("coop0-m0", "coop1-m0", 450)).committed
        await net.converge()
        before = [node.heads_digest() for node in net.nodes]
        result = await net.pay("coop0-m0", "coop1-m0", 51)  # -501 < -500
        assert not result.committed
        assert "credit-limit" in result.reason
        assert [node.heads_digest() for node in net.nodes] == before
        for node in net.nodes:
            assert node.status()["sessions"] == 0
            assert node.status()["locked_chains"] == 0
        assert (net.balance("coop0-m0"), net.balance("coop1-m0")) == (-450, 450)
        # the limit is inclusive: the last 50 still goes through
        assert (await net.pay("coop0-m0", "coop1-m0", 50)).committed
        assert net.balance("coop0-m0") == -500


async def test_payment_over_the_payees_balance_cap_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=1, member_limits=Limits(500, 100)
    ) as net:
        await net.converge()
        before = [node.heads_digest() for node in net.nodes]
        result = await net.pay("coop0", "coop1-m0", 101)
        assert not result.committed
        assert "balance-cap" in result.reason
        await trio.sleep(0.3)
        assert [node.heads_digest() for node in net.nodes] == before
        assert net.balance("coop0") == net.balance("coop1-m0") == 0
        assert all(node.status()["locked_chains"] == 0 for node in net.nodes)


async def test_payment_to_an_unknown_agent_is_refused_with_a_reason(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1) as net:
        await net.converge()
        before = [node.heads_digest() for node in net.nodes]
        stranger = AgentKey(derive_signer("elsewhere", "stranger").public_key)
        node = net.home["coop0-m0"]
        result = await node.pay(net.agents["coop0-m0"], stranger, 10)
        assert not result.committed
        assert "no known node hosts" in result.reason
        assert stranger.short() in result.reason
        assert [n.heads_digest() for n in net.nodes] == before
        assert node.status()["locked_chains"] == 0


async def test_payment_to_oneself_or_of_no_positive_amount_is_refused(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=2) as net:
        await net.converge()
        before = [node.heads_digest() for node in net.nodes]
        assert not (await net.pay("coop0-m0", "coop0-m0", 5)).committed
        for payee in ("coop0-m1", "coop1-m0"):  # the payee on this node, then on another
            for amount in (0, -30):
                result = await net.pay("coop0-m0", payee, amount)
                assert not result.committed, (payee, amount)
                assert result.reason
        await trio.sleep(0.3)
        assert [node.heads_digest() for node in net.nodes] == before
        assert all(net.balance(name) == 0 for name in net.agents)
        assert all(node.status()["locked_chains"] == 0 for node in net.nodes)
        # and the chain is free for a real payment afterwards
        assert (await net.pay("coop0-m0", "coop1-m0", 5)).committed


async def test_concurrent_payments_from_one_payer_never_fork_its_chain(tmp_path: Path) -> None:
    payees = ["coop1-m0", "coop2-m0", "coop0-m1", "coop1-m1", "coop2-m1", "coop1", "coop0"]
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        results: list[tuple[str, int, bool, str]] = []

        async def one(payee: str, amount: int) -> None:
            result = await net.pay("coop0-m0", payee, amount)
            results.append((payee, amount, result.committed, result.reason))

        for _round in range(2):
            results.clear()
            async with trio.open_nursery() as nursery:
                for i, payee in enumerate(payees):
                    nursery.start_soon(one, payee, 10 + i)
            assert any(committed for _p, _a, committed, _r in results)
            for _payee, _amount, committed, reason in results:
                assert committed or "busy" in reason, reason
        await net.converge()
        payer = net.agents["coop0-m0"]
        home = net.home["coop0-m0"]
        chain = list(home.store.records(payer))
        assert [r.action.seq for r in chain] == list(range(len(chain)))
        for node in net.nodes:
            assert [r.hash for r in node.store.records(payer)] == [r.hash for r in chain]
            assert node.store.warrants() == []
        spent = sum(
            Payment.from_value(r.entry_value()).body.amount for r in payments_on(home, payer)
        )
        assert net.balance("coop0-m0") == -spent
        assert_audit_clean(net)


async def test_a_storm_of_concurrent_payments_keeps_every_chain_whole_and_the_sum_zero(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        committed: list[tuple[str, str, int]] = []

        async def one(payer: str, payee: str, amount: int) -> None:
            result = await net.pay(payer, payee, amount)
            if result.committed:
                committed.append((payer, payee, amount))
            else:
                assert "busy" in result.reason, result.reason

        for shift in (1, 2, 3):
            async with trio.open_nursery() as nursery:
                for i, payer in enumerate(MEMBERS):
                    nursery.start_soon(one, payer, MEMBERS[(i + shift) % len(MEMBERS)], 5 + i)
        assert committed
        await net.converge()
        expected = dict.fromkeys(net.agents, 0)
        for payer, payee, amount in committed:
            expected[payer] -= amount
            expected[payee] += amount
        assert {name: net.balance(name) for name in net.agents} == expected
        for node in net.nodes:
            assert node.store.warrants() == []
            assert node.status()["locked_chains"] == 0
        assert_audit_clean(net)


async def _deaf_to_publishing(node: Node, *, witnessing: bool = False) -> None:
    """Make ``node`` refuse every publish (so it hears of new records only when it asks); with
    ``witnessing``, also every payer's record it is asked to witness for a payee."""

    async def refuse(_peer: object, _payload: bytes) -> bytes:
        raise RemoteProtocolError("not listening")

    for name in (wire.PUBLISH, wire.WITNESS) if witnessing else (wire.PUBLISH,):
        node.transport.set_handler(protocol_id(node.network_short, name), refuse)


NO_GOSSIP = replace(FAST, gossip_interval=3_600.0, reconcile_interval=3_600.0)  # no pulls of any kind


@pytest.fixture
def no_follow_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    """No reconciliation rounds after the first meeting of the neighbours either (a node follows
    that up ``FOLLOW_UP_S`` later): with ``NO_GOSSIP``, no pulls of any kind."""
    monkeypatch.setattr(reconcile, "FOLLOW_UP_S", 3_600.0)


async def test_the_payees_node_fetches_the_payers_latest_credit_before_it_signs(
    tmp_path: Path, no_follow_ups: None
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=2, settings=NO_GOSSIP) as net:
        await net.converge()
        await _deaf_to_publishing(net.home["coop1-m0"], witnessing=True)
        # the payer pays elsewhere: the payee's node does not hear of it
        assert (await net.pay("coop0-m0", "coop2-m0", 10)).committed
        payer = net.agents["coop0-m0"]
        assert net.home["coop1-m0"].store.head(payer) != net.home["coop0-m0"].store.head(payer)
        await pay_and_check_both_records(net, "coop0-m0", "coop1-m0", 20)
        assert net.balance("coop1-m0") == 20


async def test_the_payers_node_fetches_the_payees_latest_credit_before_it_commits(
    tmp_path: Path, no_follow_ups: None
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=2, settings=NO_GOSSIP) as net:
        await net.converge()
        await _deaf_to_publishing(net.home["coop0-m0"])
        # the payee is paid on its own node: the payer's node does not hear of it
        assert (await net.pay("coop1-m1", "coop1-m0", 10)).committed
        payee = net.agents["coop1-m0"]
        assert net.home["coop0-m0"].store.head(payee) != net.home["coop1-m0"].store.head(payee)
        await pay_and_check_both_records(net, "coop0-m0", "coop1-m0", 20)
        assert net.balance("coop1-m0") == 30

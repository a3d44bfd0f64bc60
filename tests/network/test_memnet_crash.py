"""A node crashes in the middle of a payment; a new ``Node`` on its store file takes over.

The crash is made at a chosen write: a ``CrashStore`` runs the write, then
stops its node at once (its transport goes offline, its tasks and the payer's
``pay()`` are cancelled) and lets no later write land, as a power cut would.
Whatever the step, after the restart both chains hold the payment or neither
does, nobody is warranted, every node converges and the chains audit clean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import (
    assert_audit_clean,
    assert_chains_identical_everywhere,
    restart_node,
    settle,
    trio_clock,
    wait_until,
)

from conode.chain import Record
from conode.dht import wire
from conode.dht.transport import protocol_id
from conode.errors import NetworkError, ValidationError
from conode.hashes import AgentKey
from conode.node import Node, PaymentResult
from conode.node import payments as payments_module
from conode.store import NodeStore, Receipt
from conode.testing.network import TestNetwork
from conode.validation import countersign as cs
from conode.validation.activity import Activity
from conode.validation.entries import BILL, PAYMENT, Bill, Payment

PAYER, PAYEE, OTHER = "coop0-m0", "coop1-m0", "coop2-m0"


class CrashStore(NodeStore):
    """A ``NodeStore`` that can fire a crash right after a chosen append, and then writes nothing.

    ``trigger(records, sessions)`` is asked after each append that landed;
    when it says yes, ``on_crash`` runs (it stops some node) and the trigger is
    spent. A store marked ``dead`` ignores every later write: its process is gone.
    """

    trigger: Callable[[Sequence[Record], Mapping[bytes, Any]], bool] | None = None
    on_crash: Callable[[], None] | None = None
    dead = False

    def append(
        self,
        records: Sequence[Record],
        *,
        activities: Mapping[AgentKey, Activity] | None = None,
        sessions: Mapping[bytes, tuple[AgentKey, bytes] | None] | None = None,
        publish: bool = False,
    ) -> None:
        if self.dead:
            return
        super().append(records, activities=activities, sessions=sessions, publish=publish)
        trigger = self.trigger
        if trigger is not None and trigger(records, sessions or {}):
            self.trigger = None
            assert self.on_crash is not None
            self.on_crash()

    def done_publishing(self, records: Sequence[Any]) -> None:
        if not self.dead:
            super().done_publishing(records)

    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        if not self.dead:
            super().add_receipts(receipts)

    def add_warrant(
        self, warrant_hash: bytes, offender: AgentKey, warrant: bytes, now: int
    ) -> bool:
        return False if self.dead else super().add_warrant(warrant_hash, offender, warrant, now)

    def add_pending(self, record: Record, now: int, *, stranger: bool = False) -> None:
        if not self.dead:
            super().add_pending(record, now, stranger=stranger)

    def drop_pending(self, hashes: list[Any]) -> None:
        if not self.dead:
            super().drop_pending(hashes)

    def drop_pending_below(self, agent: AgentKey, seq: int) -> None:
        if not self.dead:
            super().drop_pending_below(agent, seq)

    def expire_pending(self, *, strangers_before: int, others_before: int) -> int:
        if self.dead:
            return 0
        return super().expire_pending(strangers_before=strangers_before, others_before=others_before)

    def forget_peer(self, peer_id: str) -> None:
        if not self.dead:
            super().forget_peer(peer_id)

    def remember_peer(self, peer_id: str, addrs: list[str], now: int) -> None:
        if not self.dead:
            super().remember_peer(peer_id, addrs, now)

    def set_meta(self, key: str, value: bytes) -> None:
        if not self.dead:
            super().set_meta(key, value)


def statuses(sessions: Mapping[bytes, Any]) -> set[cs.Phase]:
    return {cs.SessionRecord.from_bytes(v[1]).status for v in sessions.values() if v is not None}


def use_crash_store(node: Node) -> CrashStore:
    """Give a running node a ``CrashStore`` on its own file (between two of its steps)."""
    old = node.store
    node.store = CrashStore.open(old.path)
    old.close()
    assert isinstance(node.store, CrashStore)
    return node.store


class Crash:
    """Stops ``node`` as a crash would: offline at once, every task of it cancelled, no more writes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.scopes: list[trio.CancelScope] = []  # the payer's pay() calls
        self.happened = trio.Event()

    def __call__(self) -> None:
        self.node.transport.online = False  # type: ignore[attr-defined]
        store = self.node.store
        if isinstance(store, CrashStore):
            store.dead = True
        self.node.scope.cancel()  # type: ignore[attr-defined]
        for scope in self.scopes:
            scope.cancel()
        self.happened.set()


def payments_of(net: TestNetwork, name: str) -> list[Record]:
    key = net.agents[name]
    return [r for r in net.home[name].store.records(key) if r.action.entry_type == PAYMENT]


def assert_both_or_neither(net: TestNetwork, before: tuple[int, int]) -> bool:
    """The payment is on both chains, at the body's positions, or on neither; which one."""
    payer, payee = payments_of(net, PAYER), payments_of(net, PAYEE)
    added = (len(payer) - before[0], len(payee) - before[1])
    assert added in ((0, 0), (1, 1)), added
    if added == (1, 1):
        mine, theirs = payer[-1], payee[-1]
        assert mine.action.entry_hash == theirs.action.entry_hash
        body = Payment.from_value(mine.entry_value()).body
        assert (mine.action.seq, theirs.action.seq) == (body.payer.seq, body.payee.seq)
        assert net.balance(PAYER) == -body.amount and net.balance(PAYEE) == body.amount
    else:
        assert net.balance(PAYER) == net.balance(PAYEE) == 0
    return added == (1, 1)


def assert_nobody_warranted_and_all_audit_clean(net: TestNetwork) -> None:
    for node in net.nodes:
        assert node.store.warrants() == [], node.transport.peer_id
    assert_chains_identical_everywhere(net)
    assert_audit_clean(net)


# (whose store is watched, the status whose write fires the crash, who crashes, the outcome)
STEPS = {
    "payer-crashes-right-after-persisting-its-offer": ("payer", cs.Phase.OFFERED, "payer", False),
    "payee-crashes-right-after-persisting-its-signature": ("payee", cs.Phase.SIGNED, "payee", None),
    "payer-crashes-while-the-payees-accept-is-on-its-way": (
        "payee",
        cs.Phase.SIGNED,
        "payer",
        False,
    ),
    "payer-crashes-right-after-committing-before-complete": (
        "payer",
        cs.Phase.COMMITTED,
        "payer",
        True,
    ),
    "payee-crashes-right-after-committing-before-replying": (
        "payee",
        cs.Phase.COMMITTED,
        "payee",
        True,
    ),
}


@pytest.mark.parametrize("restart_after", [0.0, 8.0], ids=["restart-at-once", "restart-later"])
@pytest.mark.parametrize("step", list(STEPS))
async def test_a_crash_at_any_step_of_a_payment_leaves_it_on_both_chains_or_neither(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, step: str, restart_after: float
) -> None:
    watched, status, crashed, outcome = STEPS[step]
    if status is cs.Phase.SIGNED and crashed == "payee" and restart_after > 0:
        outcome = False  # the payer gave up long before the payee came back
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        parties = {"payer": net.home[PAYER], "payee": net.home[PAYEE]}
        stores = {role: use_crash_store(node) for role, node in parties.items()}
        victim = parties[crashed]
        crash = Crash(victim)
        stores[watched].trigger = lambda _records, sessions: status in statuses(sessions)
        stores[watched].on_crash = crash
        before = (len(payments_of(net, PAYER)), len(payments_of(net, PAYEE)))
        results: list[PaymentResult] = []

        async def paying() -> None:
            with trio.CancelScope() as scope:
                crash.scopes.append(scope)
                results.append(await net.pay(PAYER, PAYEE, 50))

        nursery.start_soon(paying)
        with trio.fail_after(30):
            await crash.happened.wait()
        await trio.sleep(restart_after)
        await restart_node(net, nursery, victim)
        await settle(net)
        both = assert_both_or_neither(net, before)
        if outcome is not None:
            assert both is outcome, step
        if results:  # the payer's pay() returned: what it said is what happened
            assert results[0].committed is both, results[0]
        assert_nobody_warranted_and_all_audit_clean(net)
        # and both chains are free again
        assert (await net.pay(PAYEE, PAYER, 7)).committed
        assert (await net.pay(PAYER, OTHER, 7)).committed
        await settle(net)
        assert_nobody_warranted_and_all_audit_clean(net)
        nursery.cancel_scope.cancel()


async def test_a_responder_that_signed_stays_locked_across_a_restart_until_it_learns_the_outcome(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        payee_node = net.home[PAYEE]
        store = use_crash_store(payee_node)
        crash = Crash(payee_node)

        def crash_and_cut_off_the_payer() -> None:
            crash()
            net.memnet.partition({"node0"}, {"node1", "node2"})

        store.trigger = lambda _r, sessions: cs.Phase.SIGNED in statuses(sessions)
        store.on_crash = crash_and_cut_off_the_payer
        result = await net.pay(PAYER, PAYEE, 50)
        assert crash.happened.is_set()
        assert not result.committed  # the payer never saw the Accept: it gave up
        payee_node = await restart_node(net, nursery, payee_node)
        await payee_node.started.wait()
        payee = net.agents[PAYEE]
        assert payee_node.status()["locked_chains"] == 1
        # while it cannot learn the outcome, its chain takes no other payment, either way
        for _ in range(3):
            out = await net.pay(PAYEE, OTHER, 5)
            assert not out.committed and "busy" in out.reason, out.reason
            into = await net.pay(OTHER, PAYEE, 5)
            assert not into.committed and "busy" in into.reason, into.reason
            with pytest.raises(ValidationError):
                genesis = payee_node.store.activity(net.agents[OTHER]).genesis
                assert genesis is not None
                bill = Bill(net.agents[OTHER], genesis, 5, "", trio_clock() + 10**9, None)
                await payee_node.create_entry(payee, BILL, bill.to_value())
            await trio.sleep(2)  # several retry intervals
            assert payee_node.status()["locked_chains"] == 1
        assert net.balance(PAYEE) == 0
        net.memnet.heal()
        await settle(net)
        assert payee_node.status()["locked_chains"] == 0
        assert not payments_of(net, PAYER) and not payments_of(net, PAYEE)
        assert (await net.pay(PAYEE, OTHER, 5)).committed
        assert (await net.pay(OTHER, PAYEE, 6)).committed
        await settle(net)
        assert_nobody_warranted_and_all_audit_clean(net)
        nursery.cancel_scope.cancel()


async def test_a_payer_that_committed_and_stays_down_is_resolved_from_the_dht(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The Complete is lost and the payer's node is gone for good once its record is published:
    the payee finds the payer's record (with its signature) among the records it holds."""
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=1, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        payer_node, payee_node = net.home[PAYER], net.home[PAYEE]
        lost = trio.Event()
        original = payer_node.transport.request

        async def losing_completes(
            peer: Any, protocol: str, payload: bytes, *, timeout: float
        ) -> bytes:
            if protocol.endswith("/countersign/1") and not lost.is_set():
                message = cs.decode_message(wire.loads(payload, {"msg"})["msg"])
                if isinstance(message, cs.Complete):
                    lost.set()
                    raise NetworkError("the Complete was lost")
            return await original(peer, protocol, payload, timeout=timeout)

        payer_node.transport.request = losing_completes  # type: ignore[method-assign]
        result = await net.pay(PAYER, PAYEE, 50)
        assert result.committed and lost.is_set()
        assert payee_node.status()["locked_chains"] == 1
        # the payer publishes its record, then its node goes away and never comes back
        await wait_until(lambda: not payer_node.store.publishing())
        payer_node.scope.cancel()  # type: ignore[attr-defined]
        await wait_until(lambda: not payee_node.locks)
        assert payments_of(net, PAYEE)
        live = [node for node in net.nodes if node is not payer_node]
        await net.converge(nodes=live)
        for node in live:
            assert node.store.warrants() == []
        assert net.balance(PAYEE) == 50
        nursery.cancel_scope.cancel()


async def test_a_restarting_node_holds_every_signed_chain_before_it_answers_any_offer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two responders of one node signed, their payers committed, the Completes were lost, and
    the node crashed. While it resumes the first session (asking its peers where the payer is),
    an Offer for the second agent arrives: it must be refused, not signed at the same seq."""
    # the Offer's own session is what is judged here: its payer does not ask again once the
    # chain is free (``Payments.BUSY_WAITS_S``), which would commit a new session later
    monkeypatch.setattr(payments_module, "BUSY_WAITS_S", ())
    async with (
        TestNetwork.start(tmp_path, nodes=3, members=2, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        node0, node1, node2 = net.nodes
        original = node0.transport.request
        drop_completes = True

        async def losing_completes(
            peer: Any, protocol: str, payload: bytes, *, timeout: float
        ) -> bytes:
            if drop_completes and protocol.endswith("/countersign/1"):
                message = cs.decode_message(wire.loads(payload, {"msg"})["msg"])
                if isinstance(message, cs.Complete):
                    raise NetworkError("the Complete was lost")
            return await original(peer, protocol, payload, timeout=timeout)

        node0.transport.request = losing_completes  # type: ignore[method-assign]
        for payer, payee in (("coop0", "coop1-m0"), ("coop0-m0", "coop1-m1")):
            assert (await net.pay(payer, payee, 40)).committed
        signed = [agent for _k, agent, _r in node1.store.sessions()]
        assert len(signed) == 2 and node1.status()["locked_chains"] == 2
        second = next(name for name, key in net.agents.items() if key == signed[1])
        # the crash; then the first session's resumption waits on a slow peer
        node1.scope.cancel()  # type: ignore[attr-defined]
        await trio.testing.wait_all_tasks_blocked()
        node1.transport._connected.add(node2.transport.peer_id)  # type: ignore[attr-defined]
        hello = protocol_id(node2.network_short, "hello")
        answer_hello = node2.peers.handlers()[wire.HELLO]

        async def slow_hello(peer: Any, payload: bytes) -> bytes:
            await trio.sleep(1.0)
            return await answer_hello(peer, payload)

        node2.transport.set_handler(hello, slow_hello)
        # the sessions resume side by side now: the payer's node answers slowly too, so the
        # second one is still resuming (its chain held) when the Offer comes
        countersign = protocol_id(node0.network_short, "countersign")
        answer_countersign = node0.sessions.handlers()[wire.COUNTERSIGN]

        async def slow_countersign(peer: Any, payload: bytes) -> bytes:
            await trio.sleep(1.0)
            return await answer_countersign(peer, payload)

        node0.transport.set_handler(countersign, slow_countersign)
        offers: list[PaymentResult] = []

        async def offer_when_it_is_back() -> None:
            while not node1.transport.online:
                await trio.sleep(0.001)
            offers.append(await net.pay("coop2-m0", second, 5))

        nursery.start_soon(offer_when_it_is_back)
        node1 = await restart_node(net, nursery, node1)
        await wait_until(lambda: bool(offers))
        node2.transport.set_handler(hello, answer_hello)
        node0.transport.set_handler(countersign, answer_countersign)
        drop_completes = False
        assert not offers[0].committed and "busy" in offers[0].reason, offers[0]
        await settle(net)
        for name in ("coop1-m0", "coop1-m1"):
            assert net.balance(name) == 40
        assert_nobody_warranted_and_all_audit_clean(net)
        nursery.cancel_scope.cancel()

"""Finished countersigning sessions are forgotten, and a late Accept is answered from the chain.

A node used to keep every session it ever ran, in memory and on disk, and
resumed them all at every start. Now a session is dropped ten minutes after it
ended; a late Accept for it (a responder re-sending, still waiting for the
outcome) is answered from the initiator's chain: Complete, with the signature
from the committed entry, if that very body is there; Abort otherwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import trio_clock

from conode.crypto import SIG_COUNTERSIGN, verify
from conode.dht.messages import CountersignRequest
from conode.testing.network import TestNetwork
from conode.validation import countersign as cs
from conode.validation.entries import PAYMENT, Payment

PAYER, PAYEE = "coop0-m0", "coop1-m0"
KEEP_S = 600


def _payment_of(net: TestNetwork, name: str) -> Payment:
    node = net.home[name]
    (record,) = [r for r in node.store.records(net.agents[name]) if r.action.entry_type == PAYMENT]
    return Payment.from_value(record.entry_value())


async def _late_accept(net: TestNetwork, body: bytes, signature: bytes) -> cs.Message | None:
    """The payee's node sends an Accept for an unknown session to the payer's node, over memnet."""
    payer_node, payee_node = net.home[PAYER], net.home[PAYEE]
    accept = cs.Accept(b"\x07" * cs.SESSION_ID_SIZE, body, signature)
    request = CountersignRequest(net.agents[PAYEE], net.agents[PAYER], accept)
    reply = await payee_node.client.ask(payer_node.transport.peer_id, request)
    return reply.message


async def test_finished_sessions_are_forgotten_ten_minutes_on_in_memory_and_on_disk(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        assert (await net.pay(PAYER, PAYEE, 5)).committed
        payer_node, payee_node = net.home[PAYER], net.home[PAYEE]
        assert payer_node.sessions.registry and list(payer_node.store.sessions())
        assert payee_node.sessions.registry and list(payee_node.store.sessions())
        await trio.sleep(KEEP_S / 2)
        assert payer_node.sessions.registry  # not before its time
        await trio.sleep(KEEP_S / 2 + 5)
        for node in (payer_node, payee_node):
            assert node.sessions.registry == {}
            assert list(node.store.sessions()) == []
        # and the node still pays and is paid
        assert (await net.pay(PAYEE, PAYER, 2)).committed
        assert (net.balance(PAYER), net.balance(PAYEE)) == (-3, 3)


async def test_a_late_accept_for_a_forgotten_committed_session_gets_complete_from_the_chain(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        assert (await net.pay(PAYER, PAYEE, 5)).committed
        await trio.sleep(KEEP_S + 5)
        assert net.home[PAYER].sessions.registry == {}
        payment = _payment_of(net, PAYER)
        reply = await _late_accept(net, payment.body_bytes, payment.payee_sig)
        assert isinstance(reply, cs.Complete), reply
        assert reply.signature == payment.payer_sig
        assert verify(net.agents[PAYER].raw, SIG_COUNTERSIGN, payment.body_bytes, reply.signature)


async def test_a_late_accept_for_a_body_never_committed_gets_abort(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        assert (await net.pay(PAYER, PAYEE, 5)).committed
        await trio.sleep(KEEP_S + 5)
        committed = _payment_of(net, PAYER).body
        other = dataclasses.replace(committed, amount=6)  # same positions, another body
        reply = await _late_accept(net, other.to_bytes(), b"\x00" * 64)
        assert isinstance(reply, cs.Abort), reply
        reply = await _late_accept(net, b"not a body", b"\x00" * 64)
        assert isinstance(reply, cs.Abort), reply
        assert (net.balance(PAYER), net.balance(PAYEE)) == (-5, 5)


async def test_a_deadline_cancelled_while_another_session_times_out_leaves_the_timers_running(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the timer loop deleted each due deadline from a list taken before it fed the
    first one, so a deadline cancelled meanwhile (that session finished) raised KeyError and
    ended the node (bench/scale.py at N = 100 stopped so)."""
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=trio_clock) as net:
        sessions = net.nodes[0].sessions
        fed: list[bytes] = []

        async def feed(key: bytes, event: Any) -> None:
            fed.append(key)
            sessions.driver.sessions.pop(key, None)
            await trio.sleep(0)
            sessions.cancel_timer(b"second")  # the other session finished meanwhile

        monkeypatch.setattr(sessions, "_feed_guarded", feed)
        for key in (b"first", b"second"):
            sessions.driver.sessions[key] = object()  # type: ignore[assignment]
            sessions.set_timer(key, 0)
        await trio.sleep(1)
        sessions.driver.sessions[b"third"] = object()  # type: ignore[assignment]
        sessions.set_timer(b"third", 0)
        await trio.sleep(1)
        assert fed == [b"first", b"third"]  # the loop went on, the node with it

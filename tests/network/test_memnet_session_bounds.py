"""Sessions are bounded and bound to their sender; clocks may differ; a retried pay pays once.

- a stranger (a node that does not host the payer) cannot open a session in the payer's
  name, so it cannot hold an honest member's chain;
- an offer expiring later than the charter's ``session_timeout_us`` is declined before
  anything is locked;
- an exception after the payer's chain is locked (a store read failing) lets the chain go;
- payer and payee whose clocks are five minutes apart (either way) still pay each other;
- ``pay`` with an idempotency key, asked again (its answer lost, or asked twice), pays once;
- ``conode sessions`` lists a held chain and releases it only when that is safe.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from conode.dht.messages import CountersignRequest
from conode.errors import StorageError, ValidationError
from conode.hashes import AgentKey
from conode.node import Node
from conode.store import NodeStore
from conode.testing import TestNetwork, restart_node, settle, wait_until
from conode.testing.network import START_US
from conode.validation import countersign as cs
from conode.validation.entries import PAYMENT
from conode.validation.payment import offer_payment

PAYER, PAYEE = "coop0-m0", "coop1-m0"
MINUTE = 60_000_000


def payments(node: Node, agent: AgentKey) -> int:
    return sum(1 for r in node.store.records(agent) if r.action.entry_type == PAYMENT)


async def offer_from(net: TestNetwork, sender: Node, expires_in: int) -> cs.Message | None:
    """An Offer in ``PAYER``'s name for ``PAYEE``, sent from ``sender``'s transport."""
    payer, payee = net.agents[PAYER], net.agents[PAYEE]
    home = net.home[PAYER]
    partial = offer_payment(
        net.charter.network_id, home.store.activity(payer), payee, 10,
        timestamp=home.clock(), rules=home.rules_head(),
    )  # fmt: skip
    offer = cs.Offer(cs.SessionId(os.urandom(16)), partial.to_bytes(), home.clock() + expires_in)
    peer = await sender.host_of(payee)
    reply = await sender.client.ask(peer, CountersignRequest(payer, payee, offer))
    return reply.message


async def test_a_stranger_cannot_hold_a_members_chain_by_naming_a_payer_it_does_not_host(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(tmp_path, nodes=3, members=1) as net:
        await net.converge()
        stranger = net.nodes[2]  # hosts coop2, not the payer
        reply = await offer_from(net, stranger, 10_000_000)
        assert isinstance(reply, cs.Decline) and "does not host" in reply.reason
        payee_node = net.home[PAYEE]
        assert not payee_node.locks and payee_node.sessions_held() == []
        # the payer's own host is heard, of course
        assert isinstance(await offer_from(net, net.home[PAYER], 10_000_000), cs.Accept)


async def test_an_offer_expiring_past_the_networks_cap_holds_nothing(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        cap = net.charter.params.session_timeout_us + net.charter.params.clock_tolerance_us
        reply = await offer_from(net, net.home[PAYER], 100 * 365 * 86_400_000_000)
        assert isinstance(reply, cs.Decline) and "later than the network allows" in reply.reason
        assert isinstance(await offer_from(net, net.home[PAYER], cap + 5_000_000), cs.Decline)
        payee_node = net.home[PAYEE]
        assert not payee_node.locks and list(payee_node.store.sessions()) == []
        assert (await net.pay(PAYER, PAYEE, 5)).committed


class BreaksOnce(NodeStore):
    """A store whose next read of a chain's activity fails (set ``armed``)."""

    armed = False

    def activity(self, author: Any) -> Any:
        if self.armed:
            self.armed = False
            raise StorageError("cannot read the activity of a chain: disk I/O error")
        return super().activity(author)


async def test_an_exception_after_the_payers_chain_is_locked_lets_it_go(tmp_path: Path) -> None:
    """The payer's chain is locked, then building the offer fails (a disk error reading the
    chain's state): the caller is told, the node goes on, and the chain is not left held."""
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        node = net.home[PAYER]
        old = node.store
        store = BreaksOnce.open(old.path)
        node.store = store
        old.close()
        take = node.sessions.lock

        def take_then_break(key: bytes, agent: AgentKey) -> Any:
            answer = take(key, agent)
            store.armed = True  # the next read, under the lock, fails
            return answer

        node.sessions.lock = take_then_break  # type: ignore[method-assign]
        failed = await net.pay(PAYER, PAYEE, 5)
        assert not failed.committed and "disk I/O error" in failed.reason
        node.sessions.lock = take  # type: ignore[method-assign]
        assert not node.locks, "the payer's chain is still held"
        assert (await net.pay(PAYER, PAYEE, 5)).committed


def clocks(offset_us: int) -> list[Any]:
    """Node 0's clock runs ``offset_us`` apart from node 1's (both move with trio's)."""

    def behind() -> int:
        return START_US + int(trio.current_time() * 1e6) + offset_us

    def base() -> int:
        return START_US + int(trio.current_time() * 1e6)

    return [behind, base]


@pytest.mark.parametrize("offset", [5 * MINUTE, -5 * MINUTE], ids=["payer ahead", "payer behind"])
async def test_payer_and_payee_five_minutes_apart_still_pay_each_other(
    tmp_path: Path, offset: int
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1, clock=clocks(offset)) as net:
        await net.converge()
        for payer, payee in ((PAYER, PAYEE), (PAYEE, PAYER), (PAYER, PAYEE)):
            result = await net.pay(payer, payee, 7)
            assert result.committed, result
        await settle(net)
        assert net.balance(PAYEE) == 7 and net.balance(PAYER) == -7
        warned = net.home[PAYEE].report.clock_warnings()
        assert [w["offset_s"] for w in warned] == [pytest.approx(offset / 1e6, abs=2)]


async def test_a_pay_retried_with_its_key_pays_once(tmp_path: Path) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        node, payer, payee = net.home[PAYER], net.agents[PAYER], net.agents[PAYEE]
        first = await node.pay(payer, payee, 25, idempotency_key="k-1")
        again = await node.pay(payer, payee, 25, idempotency_key="k-1")
        assert first.committed and again.committed and again.record == first.record
        other = await node.pay(payer, payee, 26, idempotency_key="k-1")
        assert not other.committed and "another payment" in other.reason
        await settle(net)
        assert payments(node, payer) == 1 and net.balance(PAYEE) == 25


async def test_a_pay_whose_caller_went_away_is_answered_when_asked_again(tmp_path: Path) -> None:
    """The client lost its connection mid-payment (its call cancelled); asking again with the
    same key waits for that very session and returns its outcome."""
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        node, payer, payee = net.home[PAYER], net.agents[PAYER], net.agents[PAYEE]
        payee_node = net.home[PAYEE]
        slow = payee_node.sessions.handlers()["countersign"]

        async def slowly(peer: Any, payload: bytes) -> bytes:
            await trio.sleep(0.3)
            return await slow(peer, payload)

        payee_node.transport.set_handler(payee_node.client.protocol("countersign"), slowly)
        with trio.move_on_after(0.1):
            await node.pay(payer, payee, 40, idempotency_key="lost")
        assert node.sessions.open_count() == 1  # the session goes on without its caller
        result = await node.pay(payer, payee, 40, idempotency_key="lost")
        assert result.committed
        await settle(net)
        assert payments(node, payer) == 1 and net.balance(PAYEE) == 40


async def test_the_operator_sees_a_held_chain_and_releases_it_only_when_safe(
    tmp_path: Path,
) -> None:
    """A payee signed and its payer went away before deciding: ``sessions`` shows the held
    chain; releasing it is refused while the payer's decision is unknown, and done with
    ``force``."""
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        payee_node = net.home[PAYEE]
        reply = await offer_from(net, net.home[PAYER], 30_000_000)
        assert isinstance(reply, cs.Accept)
        net.home[PAYER].transport.online = False  # type: ignore[attr-defined]
        (held,) = payee_node.sessions_held()
        assert held["holds_chain"] and held["phase"] == "signed" and held["role"] == "responder"
        with pytest.raises(ValidationError, match="not known yet"):
            await payee_node.release_session(held["id"][:8])
        said = await payee_node.release_session(held["id"][:8], force=True)
        assert "released" in said
        assert not payee_node.locks and payee_node.sessions_held() == []
        await wait_until(lambda: not payee_node.sessions.open_count())


async def test_a_restarted_node_serves_before_its_sessions_hear_from_anyone(
    tmp_path: Path,
) -> None:
    """The payee signed; its payer's node then hangs (it takes requests and never answers),
    and the payee's node restarts with a long request timeout. It is up and serving (its chain
    still held) while the resumed session still waits on that payer: nothing waits on peers
    before the node serves."""
    async with (
        TestNetwork.start(tmp_path, nodes=2, members=1) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        reply = await offer_from(net, net.home[PAYER], 30_000_000)
        assert isinstance(reply, cs.Accept)
        payer_node, payee_node = net.home[PAYER], net.home[PAYEE]

        async def never_answers(_peer: Any, _payload: bytes) -> bytes:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        for name in ("countersign", "chain", "chains", "hello", "witness"):
            payer_node.transport.set_handler(payer_node.client.protocol(name), never_answers)
        payee_node.scope.cancel()  # type: ignore[attr-defined]
        await trio.testing.wait_all_tasks_blocked()
        payee_node.settings = replace(payee_node.settings, request_timeout=3_600.0)
        with trio.fail_after(30):  # the old node waited on the payer here, for the timeout
            node = await restart_node(net, nursery, payee_node)
        assert node.started.is_set() and node.locks  # serving, the signed chain held
        await trio.testing.wait_all_tasks_blocked()  # the resumed session is stuck on the payer
        (held,) = node.sessions_held()
        assert held["phase"] == "signed" and held["holds_chain"]
        nursery.cancel_scope.cancel()

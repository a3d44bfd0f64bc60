"""Shared setup of the network tests: the Byzantine toolkit (clocks, waits, audits and restarts
are ``conode.testing``'s, re-exported here for the tests that import them from this module).

The in-memory tests (``test_memnet_*.py``) and the Byzantine node on real
libp2p (``test_libp2p_byzantine.py``) use these. Nothing here is mocked: a
"Byzantine" agent is one whose hosted signer a test uses directly, to sign
records outside the rules, and whatever carries them is a real transport
(a ``MemoryTransport`` that runs no node, or a Byzantine node's libp2p host).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.dht import wire
from conode.dht.memnet import MemoryTransport
from conode.dht.messages import Hello
from conode.dht.ringview import Place
from conode.dht.transport import Transport, protocol_id
from conode.hashes import AgentKey
from conode.node import Node
from conode.testing import (
    JumpClock,
    assert_audit_clean,
    assert_chains_identical_everywhere,
    home_chains,
    restart_node,
    settle,
    trio_clock,
    wait_until,
)
from conode.testing.network import TestNetwork
from conode.validation.activity import Activity
from conode.validation.entries import BILL, Bill, Payment
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.verdict import Valid
from conode.validation.warrants import Warrant, check_warrant

__all__ = [
    "JumpClock",
    "ask",
    "assert_audit_clean",
    "assert_chains_identical_everywhere",
    "assert_nobody_else_warranted",
    "assert_warranted_everywhere",
    "bill_record",
    "countersigned",
    "greet",
    "home_chains",
    "honest_payments_still_work",
    "network_with_rogue",
    "push",
    "restart_node",
    "settle",
    "signer_of",
    "start_rogue",
    "trio_clock",
    "wait_until",
    "warrants_against",
]


# -- the Byzantine toolkit -------------------------------------------------------------------------


def signer_of(net: TestNetwork, name: str) -> Signer:
    """The key an agent's home node signs with: a Byzantine agent uses it outside the rules."""
    return net.home[name].agents[net.agents[name]].signer


async def start_rogue(
    net: TestNetwork, nursery: trio.Nursery, name: str = "rogue"
) -> MemoryTransport:
    """A peer on the in-memory network that runs no node: it only sends what a test tells it to."""
    rogue = net.memnet.transport(name)
    await nursery.start(rogue.run)
    return rogue


@asynccontextmanager
async def network_with_rogue(
    directory: Path, *, nodes: int, members: int
) -> AsyncIterator[tuple[TestNetwork, MemoryTransport]]:
    """A converged in-memory network on ``trio_clock``, and a rogue peer on it; both stop after."""
    async with (
        TestNetwork.start(directory, nodes=nodes, members=members, clock=trio_clock) as net,
        trio.open_nursery() as nursery,
    ):
        rogue = await start_rogue(net, nursery)
        await net.converge()
        yield net, rogue
        nursery.cancel_scope.cancel()


async def ask(
    sender: Transport,
    node: Node,
    protocol: str,
    message: dict[str, Any] | bytes,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """One request of a conode protocol from ``sender`` to ``node``; its decoded answer."""
    payload = message if isinstance(message, bytes) else wire.dumps(message)
    raw = await sender.request(
        node.transport.peer_id, protocol_id(node.network_short, protocol), payload, timeout=timeout
    )
    return wire.loads(raw, set())


async def greet(sender: Transport, node: Node, place: Place | None = None) -> None:
    """A hello from ``sender`` to ``node``: after it, ``sender`` is one of node's conode peers
    (publishing, gossip, links and witnesses ask only those); with ``place``, where it says it
    stands on the ring (without: a node of the version before sharding, a full-arc holder)."""
    hello = Hello(AgentKey(Signer.generate().public_key), (), (), (), (), None)
    if place is not None:
        hello = dataclasses.replace(hello, place=place)
    await ask(sender, node, wire.HELLO, hello.encode())


async def push(
    sender: Transport, node: Node, *records: Record, timeout: float = 5.0
) -> dict[bytes, bool]:
    """Publish records to ``node``; its receipts, record hash -> valid."""
    message = {"records": [r.to_bytes() for r in records]}
    reply = await ask(sender, node, wire.PUBLISH, message, timeout)
    return {item[0]: item[1] for item in reply["receipts"]}


def countersigned(
    net: TestNetwork,
    payer: str,
    payee: str,
    amount: int,
    *,
    at: tuple[Activity, Activity],
    forged_by: str | None = None,
) -> tuple[Record, Record]:
    """Both records of a payment the two sign outside any session, at the chain states ``at``.

    With ``forged_by``, that agent's key makes the payer's signature.
    """
    now = net.nodes[0].clock()
    body = make_body(net.charter.network_id, at[0], at[1], amount, timestamp=now)
    payer_signer, payee_signer = signer_of(net, payer), signer_of(net, payee)
    forger = signer_of(net, forged_by) if forged_by else payer_signer
    payment = Payment(body, sign_body(forger, body), sign_body(payee_signer, body), body.to_bytes())
    return commit_payment(payer_signer, payment), commit_payment(payee_signer, payment)


def bill_record(net: TestNetwork, signer: Signer, head_of: Node, payer: str, memo: str) -> Record:
    """A bill to ``payer`` signed by ``signer``, at the next seq of its chain as ``head_of`` holds it."""
    author = AgentKey(signer.public_key)
    now = head_of.clock()
    genesis = head_of.store.activity(net.agents[payer]).genesis
    assert genesis is not None
    bill = Bill(net.agents[payer], genesis, 25, memo, now + 3_600_000_000, None)
    return author_record(
        signer,
        head_of.store.head(author),
        kind=ActionKind.CREATE,
        timestamp=now,
        entry=bill.to_value(),
        entry_type=BILL,
    )


def warrants_against(node: Node, agent: AgentKey) -> list[Warrant]:
    return [Warrant.from_bytes(w) for _h, offender, w in node.store.warrants() if offender == agent]


def assert_warranted_everywhere(nodes: Iterable[Node], agent: AgentKey, kind: str) -> None:
    """Each node holds only ``kind`` warrants against ``agent``, each one checking valid there."""
    for node in nodes:
        found = warrants_against(node, agent)
        assert found, node.transport.peer_id
        assert {w.kind for w in found} == {kind}
        for warrant in found:
            assert isinstance(check_warrant(warrant, node.engine, node.store), Valid)


def assert_nobody_else_warranted(net: TestNetwork, *offenders: AgentKey) -> None:
    for node in net.nodes:
        assert {offender for _h, offender, _w in node.store.warrants()} <= set(offenders)


async def honest_payments_still_work(net: TestNetwork, *pairs: tuple[str, str]) -> None:
    """Each pair (by default three across the network) pays 3 and commits."""
    for payer, payee in pairs or (
        ("coop0-m0", "coop1-m0"),
        ("coop1-m0", "coop0"),
        ("coop0", "coop1"),
    ):
        result = await net.pay(payer, payee, 3)
        assert result.committed, (payer, payee, result.reason)

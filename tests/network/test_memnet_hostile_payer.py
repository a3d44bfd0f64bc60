"""A member whose node follows none of the rules tries to spend one chain position many times.

The payer ``coop0-m0`` has a credit limit of 500. Its node (node 0) is "replaced by a test
build": these tests speak the countersigning protocol for it by hand, from node 0's own
transport (so the payees' nodes see the requests coming from the payer's host, as they
must), and never let node 0's session machinery near them. From one chain position (same
seq, prev and previous credit) the payer offers 400 to four payees, two of them on one node
and two on nodes of their own, signs every body they return and sends each a Complete with
its own, valid, record of that body. The honest nodes are unchanged.

What must hold: at most one payee commits; the payer is warranted on every honest node; the
audit of every chain each honest node holds sums to zero; and the payer cannot take the
position back later with another record without that being provable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trio

from conode.chain import ActionKind, Record, author_record
from conode.crypto import SIG_COUNTERSIGN, Signer
from conode.dht.messages import CountersignRequest, PublishRequest
from conode.node import Node
from conode.store import NodeStore
from conode.testing import TestNetwork, wait_until
from conode.testing.network import derive_signer
from conode.validation import countersign as cs
from conode.validation.activity import fold_chain
from conode.validation.audit import audit
from conode.validation.charter import Limits
from conode.validation.entries import PAYMENT, Payment
from conode.validation.payment import (
    commit_payment,
    make_body,
    offer_payment,
    payer_record,
    sign_body,
)
from conode.validation.verdict import Valid
from conode.validation.warrants import Warrant

PAYER = "coop0-m0"
PAYEES = ("coop1-m0", "coop1-m1", "coop2-m0", "coop3-m0")  # two on one node, two alone
AMOUNT = 400


@dataclass
class Signed:
    """What a payee's node answered the hostile offer with, and the payer's record of it."""

    payee: str
    session: cs.SessionId
    body: bytes
    payer_signature: bytes
    record: bytes


class HostilePayer:
    """The payer's side, by hand, from its node's transport: no rule of the protocol kept."""

    def __init__(self, net: TestNetwork) -> None:
        self.net = net
        self.node: Node = net.home[PAYER]
        self.key = net.agents[PAYER]
        self.signer: Signer = derive_signer("testnet", PAYER)
        self.position = self.node.store.activity(self.key)  # every offer starts from here

    async def offer(self, payee: str) -> Signed:
        """Offer ``AMOUNT`` to ``payee`` from the one position; sign the body it returns."""
        to = self.net.agents[payee]
        partial = offer_payment(
            self.net.charter.network_id, self.position, to, AMOUNT,
            timestamp=self.node.clock(), rules=self.node.rules_head(),
        )  # fmt: skip
        session = cs.SessionId(os.urandom(cs.SESSION_ID_SIZE))
        offer = cs.Offer(session, partial.to_bytes(), self.node.clock() + 30_000_000)
        accept = await self._send(payee, offer)
        assert isinstance(accept, cs.Accept), accept
        signature = self.signer.sign(SIG_COUNTERSIGN, accept.body)
        record = payer_record(self.signer, accept.body, signature, accept.signature)
        return Signed(payee, session, accept.body, signature, record)

    async def complete(self, signed: Signed) -> None:
        """Tell the payee the payer committed (it never does), with a valid record of its body."""
        complete = cs.Complete(signed.session, signed.payer_signature, signed.record)
        await self._send(signed.payee, complete)

    async def _send(self, payee: str, message: cs.Message) -> cs.Message | None:
        to = self.net.agents[payee]
        peer = await self.node.host_of(to)
        reply = await self.node.client.ask(peer, CountersignRequest(self.key, to, message))
        return reply.message

    async def publish_everywhere(self, record: Record) -> None:
        for peer in self.node.client.peers():
            await self.node.client.ask(peer, PublishRequest((record.to_bytes(),)))


def payees_paid(net: TestNetwork, seq: int) -> list[str]:
    """The payees whose own chain holds a payment from the payer at the payer's ``seq``."""
    paid = []
    for name in PAYEES:
        for record in net.home[name].store.records(net.agents[name]):
            if record.action.entry_type == PAYMENT and record.entry is not None:
                payer = Payment.from_value(record.entry_value()).body.payer
                if payer.agent == net.agents[PAYER] and payer.seq == seq:
                    paid.append(name)
    return paid


def honest(net: TestNetwork) -> list[Node]:
    return [node for node in net.nodes if node is not net.home[PAYER]]


def assert_every_honest_book_sums_to_zero(net: TestNetwork) -> None:
    """Each honest node's whole store, audited offline: no credit was created from nothing."""
    for node in honest(net):
        chains = [list(node.store.records(agent)) for agent in node.store.authors()]
        report = audit(net.charter, chains)
        assert report.zero_sum, (node.transport.peer_id, report.total, report.violations)
        payer = net.agents[PAYER]
        balance = report.balances.get(payer, 0) - sum(
            u.delta for u in report.unmatched if u.agent == payer
        )
        assert balance >= -500, (node.transport.peer_id, balance)  # the limit held


async def test_complete_to_four_payees_at_once_commits_at_most_one(tmp_path: Path) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=4, members=2, member_limits=Limits(500, 100_000)
    ) as net:
        await net.converge()
        payer = HostilePayer(net)
        seq = payer.position.head.seq + 1  # type: ignore[union-attr]
        signed = [await payer.offer(payee) for payee in PAYEES]
        assert len({s.body for s in signed}) == 4  # four bodies, one position
        async with trio.open_nursery() as nursery:
            for one in signed:
                nursery.start_soon(payer.complete, one)
        await wait_until(lambda: all(n.store.warranted(payer.key) for n in honest(net)))
        await wait_until(lambda: all(not n.locks for n in honest(net)))
        assert len(payees_paid(net, seq)) <= 1, payees_paid(net, seq)
        assert_every_honest_book_sums_to_zero(net)


async def test_complete_to_one_payee_after_another_commits_only_the_first(
    tmp_path: Path,
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=4, members=2, member_limits=Limits(500, 100_000)
    ) as net:
        await net.converge()
        payer = HostilePayer(net)
        seq = payer.position.head.seq + 1  # type: ignore[union-attr]
        signed = [await payer.offer(payee) for payee in PAYEES]
        for one in signed:
            await payer.complete(one)
        await wait_until(lambda: all(not n.locks for n in honest(net)))
        assert payees_paid(net, seq) == [PAYEES[0]]
        await wait_until(lambda: all(n.store.warranted(payer.key) for n in honest(net)))
        # the payees that were refused can be paid again at once: nobody is left holding
        for name in PAYEES[1:]:
            assert (await net.pay("coop3", name, 7)).committed, name
        assert_every_honest_book_sums_to_zero(net)


async def test_the_payer_committing_another_record_at_the_spent_seq_is_warranted(
    tmp_path: Path,
) -> None:
    """One payee commits; later the payer puts something else at that very seq (as if the
    payment had never been) and publishes it: every honest node warrants it."""
    async with TestNetwork.start(tmp_path, nodes=4, members=2) as net:
        await net.converge()
        payer = HostilePayer(net)
        seq = payer.position.head.seq + 1  # type: ignore[union-attr]
        await payer.complete(await payer.offer(PAYEES[2]))
        await wait_until(lambda: payees_paid(net, seq) == [PAYEES[2]])
        head = payer.position.head
        assert head is not None
        later = author_record(
            payer.signer, head, kind=ActionKind.CREATE, timestamp=payer.node.clock(),
            entry={"text": "as if nothing had been paid"}, entry_type="note",
        )  # fmt: skip
        assert later.action.seq == seq
        await payer.publish_everywhere(later)
        await wait_until(lambda: all(n.store.warranted(payer.key) for n in honest(net)))
        assert payees_paid(net, seq) == [PAYEES[2]]
        assert_every_honest_book_sums_to_zero(net)


async def test_a_node_that_sees_the_payees_record_first_warrants_the_payers_other_record(
    tmp_path: Path,
) -> None:
    """A node that never saw the payer's record of a payment holds the payee's (the payer's
    countersignature in it) and then gets another valid record of the payer's at that seq (a
    payment to someone else from the same position): equivocation, provable from the two
    records, and the node warrants it."""
    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        await net.converge()
        assert (await net.pay(PAYER, "coop1-m0", 10)).committed
        await net.converge()
        payer_key, payee_key = net.agents[PAYER], net.agents["coop1-m0"]
        source = net.nodes[2]
        payee_head = source.store.head(payee_key)
        assert payee_head is not None
        payee_record = source.store.get(payee_head.hash)
        assert payee_record is not None
        spent = Payment.from_value(payee_record.entry_value()).body.payer
        before = [r for r in source.store.records(payer_key) if r.action.seq < spent.seq]
        # the payer's other use of that position: a valid payment to coop2-m1 from it
        other_payee = net.agents["coop2-m1"]
        payer_state = fold_chain(before)[0]
        payee_state = fold_chain(list(source.store.records(other_payee)))[0]
        body = make_body(
            net.charter.network_id, payer_state, payee_state, 5,
            timestamp=payee_record.action.timestamp,
        )  # fmt: skip
        payer_signer = derive_signer("testnet", PAYER)
        other_signer = derive_signer("testnet", "coop2-m1")
        other = commit_payment(
            payer_signer,
            Payment(body, sign_body(payer_signer, body), sign_body(other_signer, body)),
        )
        assert other.action.seq == spent.seq
        assert other.hash != source.store.hash_at(payer_key, spent.seq)
        # a node of its own that holds both chains up to the payment and the payee's record
        store = NodeStore.open(tmp_path / "fresh.db")
        try:
            fresh = Node(
                store=store, charter=net.charter, transport=net.memnet.transport("fresh"),
                node_signer=derive_signer("testnet", "fresh"),
            )  # fmt: skip
            for _pass in range(2):  # a chain may need another's record it has not taken yet
                for agent in source.store.authors():
                    for record in source.store.records(agent):
                        if agent == payer_key and record.action.seq >= spent.seq:
                            break
                        await fresh.ingest(record, None)
            assert fresh.store.hash_at(payee_key, payee_record.action.seq) == payee_record.hash
            assert fresh.store.hash_at(payer_key, spent.seq) is None
            assert isinstance(await fresh.ingest(other, None), Valid)  # valid on its own
            assert fresh.store.warranted(payer_key)
            (kind,) = [
                Warrant.from_bytes(data).kind
                for _h, offender, data in fresh.store.warrants()
                if offender == payer_key
            ]
            assert kind == "equivocation"
        finally:
            store.close()

"""The payee's side of witnessing: a payer's record shown to the payer's activity authorities.

Before a responder commits, the initiator's record of the payment is taken in here through the
one door (a second record at that seq is a fork, and the door warrants it), then sent to the
R conode peers nearest the payer's key (its own host left out) with the ``witness`` request. A
peer that fails is passed over for the next nearest, and then left out of witnessing for a while
(``conode.node.passed_over``: 30 s, doubling), so one that refuses or never answers costs one
payment a wait, not every payment. ``query`` is the other half: where a session's outcome is
unknown, the payer's record at its position is looked for here, at its host and at its witnesses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import trio

from conode.chain import Record
from conode.crypto import SIG_ACTION, verify
from conode.dht.messages import Receipt, WitnessReply, WitnessRequest, decode_record
from conode.dht.routing import authorities
from conode.dht.transport import PeerId
from conode.errors import RemoteProtocolError
from conode.hashes import AgentKey
from conode.node.hosting import Hosting
from conode.node.ingest import Ingest
from conode.node.passed_over import PassedOver
from conode.node.peer_client import PeerClient, tolerate
from conode.node.pulls import Pulls
from conode.node.settings import HostedAgent
from conode.store import Loose, NodeStore
from conode.store import Receipt as StoredReceipt
from conode.validation import countersign as cs
from conode.validation.entries import PaymentBody
from conode.validation.payment import payer_signature_in

__all__ = ["Witnessing"]

log = logging.getLogger("conode.node")


class Witnessing:
    """Witnesses for the payer records this node's payees are about to commit; see the module."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        pulls: Pulls,
        hosting: Hosting,
        client: PeerClient,
        agents: Mapping[AgentKey, HostedAgent],
        clock: Callable[[], int],
        *,
        replication: int,
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.pulls = pulls
        self.hosts = hosting.hosts
        self.peer_keys = hosting.peers.peer_keys
        self.client = client
        self.agents = agents
        self.clock = clock
        self.replication = replication
        self.passed_over = PassedOver()
        """Witnesses that failed a request lately, left out until their wait is over."""

    async def query(self, body_bytes: bytes) -> cs.DHTAnswered:
        """Look for the initiator's record at its position: here, at its host, at its witnesses
        (its activity authorities)."""
        body = PaymentBody.from_bytes(body_bytes)
        payer, seq = body.payer.agent, body.payer.seq
        record = None
        held = self.store.hash_at(payer, seq)
        if held is not None:
            record = self.store.get(held)
        elif payer not in self.agents:
            sources = [self.hosts[payer]] if payer in self.hosts else []
            sources += self.witnesses_of(payer)[: self.replication]
            for peer in sources:
                with tolerate("resolving a session at %s", peer):
                    record = await self.pulls.record_at(payer, seq, peer)
                if record is not None:
                    break
        if record is None:
            return cs.DHTAnswered(self.clock())
        if payer_signature_in(body_bytes, record.to_bytes()) is not None:
            return cs.DHTAnswered(self.clock(), initiator_record=record.to_bytes())
        return cs.DHTAnswered(self.clock(), position_taken=True)

    def witnesses_of(self, payer: AgentKey) -> list[PeerId]:
        """The payer's activity authorities, nearest first, the payer's own host and the peers
        passed over now left out.

        On a sharded network these are the holders of the payer's location on this node's view
        of the ring (``Placement.authorities_of``: R ordinary, then full-arc nodes), the only
        peers that hold its chain; on a network of earlier nodes (which hold everything) and
        before any place is heard of, this network's peers by XOR distance to the payer's key.
        """
        host = self.hosts.get(payer)
        greeted = self.peer_keys  # conode peers only: their receipts carry a known key
        now = self.clock()

        def eligible(p: str) -> bool:
            return p != host and p in greeted and not self.passed_over.resting(p, now)

        placement = self.ingest.placement
        if not placement.legacy:
            ring = [p for p in placement.authorities_of(payer) if eligible(p)]
            if ring:
                return ring
        peers = [p for p in self.client.peers() if eligible(p)]
        return [PeerId(p) for p in authorities(payer.raw, peers, len(peers))]

    async def witness(self, raw: bytes) -> cs.Witnessed | cs.DHTAnswered | None:
        """Have the initiator's record held here and by its witnesses (see ``cs.Witness``).

        Here first, through the one door: a second record of the payer's at that seq is a fork
        (the door warrants it). Then the R peers nearest the payer's key are asked at once; one
        that fails (unreachable, or no conode witness at all) is passed over for the next
        nearest, and left out for a while after, so a peer that never answers cannot hold
        payments up. Each that answers gives a receipt, the record it holds there instead (a
        fork: the position is taken), or nothing yet (asked again on the timer). Witnessed once
        the R nearest that answer, or every peer if fewer answer, hold this very record.
        """
        record = decode_record(raw)
        payer, seq = record.action.author, record.action.seq
        source = self.hosts.get(payer)
        holds = self.ingest.holds(payer)
        if holds:
            await self.ingest.ingest(record, source)
        else:  # the payer's chain is its authorities' to hold (sharded): here, the record alone
            await self.ingest.keep(record, Loose.DEPENDENCY, source)
        held = self.store.hash_at(payer, seq)
        if held is not None and held != record.hash:
            return cs.DHTAnswered(self.clock(), position_taken=True)
        if held is None and (holds or self.store.get(record.hash) is None):
            return None  # not taken in yet (its chain is being fetched): asked again on the timer
        ranked = self.witnesses_of(payer)
        need = min(self.replication, len(ranked))
        receipts: list[Receipt] = []
        waiting = 0
        while ranked and len(receipts) + waiting < need:
            more = need - len(receipts) - waiting
            batch, ranked = ranked[:more], ranked[more:]
            for peer, answer in (await self._ask_witnesses(batch, raw, record)).items():
                if answer.held is not None and await self._holds_another(peer, answer.held, record):
                    return cs.DHTAnswered(self.clock(), position_taken=True)
                receipt = answer.receipt
                if (
                    receipt is not None
                    and receipt.record == record.hash
                    and receipt.valid
                    and receipt.authority == self.peer_keys.get(peer, receipt.authority)
                ):
                    receipts.append(receipt)
                else:
                    waiting += 1  # it answered, but does not hold it yet
        if waiting:
            return None
        self.store.add_receipts([_stored(r) for r in receipts])
        return cs.Witnessed(self.clock())

    async def _ask_witnesses(
        self, peers: list[PeerId], raw: bytes, record: Record
    ) -> dict[PeerId, WitnessReply]:
        """Ask ``peers`` at once to witness the record; the answers of those that answered (one
        that failed is passed over for a while)."""
        answers: dict[PeerId, WitnessReply] = {}

        async def ask(peer: PeerId) -> None:
            with tolerate("asking %s to witness %s", peer, record.hash.short()):
                answers[peer] = await self.client.ask(peer, WitnessRequest(raw))
            if peer in answers:
                self.passed_over.answered(peer)
            else:
                self.passed_over.failed(peer, self.clock())

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(ask, peer)
        return answers

    async def _holds_another(self, peer: PeerId, raw: bytes, record: Record) -> bool:
        """Whether a witness's answer is another record the payer signed at the same seq (then
        this node takes it in too, and warrants the fork)."""
        try:
            other = decode_record(raw)
        except RemoteProtocolError:
            return False
        action = other.action
        if (
            action.author != record.action.author
            or action.seq != record.action.seq
            or other.hash == record.hash
            or not verify(action.author.raw, SIG_ACTION, other.action_bytes, other.signature)
        ):
            return False
        await self.ingest.ingest(other, peer)
        return True


def _stored(receipt: Receipt) -> StoredReceipt:
    return StoredReceipt(receipt.record, receipt.authority, receipt.valid, receipt.at, receipt.signature)

"""Publishing on a node: records authored here sent to their authorities until enough receipts.

Every ``publish_interval`` (and at once when a record is authored) a round
takes the next page of the queue (``PUBLISH_PAGE`` records, oldest first,
from where the last round stopped) and the receipts held for them through
``conode.dht.publishing.plan``; each peer is sent its batch in one
``publish`` request, and the signed receipts it returns are kept (one
transaction a batch). While the queue goes on past a page the next round
follows at once, and after its end the next starts again from its oldest
record. So a round costs the same whatever the backlog (a node back from a
week offline, or a peer slower than this node authors), each request is
answered well within the timeout, and a record no peer receipts never holds
back the ones behind it. (Each round used to read and send the whole queue:
once a backlog took a peer longer than the request timeout to take in, no
receipt came back, the queue only grew, and every record authored cost a
read of all of it: 1.3 s an offer with 14 000 queued.) As an authority, the node
takes a published batch in through ingest and signs a receipt for each
record it judged (valid or not; none for a record it could not judge yet),
and witnesses a payer's record for a payee (``witness``: held at its place,
or the other record held there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

import trio

from conode.chain import Record
from conode.crypto import SIG_RECEIPT, Signer
from conode.dht import publishing
from conode.dht.messages import (
    MAX_CHAIN_BYTES,
    PublishReply,
    PublishRequest,
    Receipt,
    WitnessReply,
    WitnessRequest,
    receipt_bytes,
)
from conode.dht.transport import Handler, PeerId, TaskStatus
from conode.errors import ConodeError, StorageError
from conode.hashes import ActionHash, AgentKey
from conode.node.ingest import Ingest
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.store import NodeStore
from conode.store import Receipt as StoredReceipt
from conode.validation.verdict import Missing, Valid

__all__ = ["PUBLISH_PAGE", "Publishing"]

log = logging.getLogger("conode.node")

PUBLISH_PAGE: Final = 64
"""The most queued records one round reads and sends (and no more bytes than a chain reply,
``MAX_CHAIN_BYTES``, give or take a record): a peer takes a page in within the request
timeout even on a slow disk (a durable append each)."""


class Publishing:
    """The publishing queue's sender, and the ``publish`` protocol's answerer."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        client: PeerClient,
        peer_keys: Mapping[PeerId, AgentKey],
        node_signer: Signer,
        clock: Callable[[], int],
        *,
        replication: int,
        interval: float,
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.client = client
        self.transport = client.transport
        self.peer_keys = peer_keys
        self.signer = node_signer
        self.key = AgentKey(node_signer.public_key)
        self.clock = clock
        self.replication = replication
        self.interval = interval
        self._now = trio.Event()
        self._after: tuple[int, ActionHash] | None = None
        """Where the next round reads the queue from (a ``QueuedRecord.place``; None: its start)."""

    def handlers(self) -> dict[str, Handler]:
        """The protocols it answers: ``publish`` and ``witness``."""
        return {
            PublishRequest.protocol: serve(PublishRequest.decode, self._on_publish),
            WitnessRequest.protocol: serve(WitnessRequest.decode, self._on_witness),
        }

    def soon(self) -> None:
        """Publish at once rather than at the next interval (a record was just authored)."""
        self._now.set()

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Publish what is pending every ``interval`` seconds, and at once when asked (``soon``)."""
        task_status.started()
        while True:
            more = False
            try:
                more = await self.publish_round()
            except ConodeError as exc:
                log.warning("publishing: %s", exc)
            if more:
                await trio.lowlevel.checkpoint()  # a long backlog's pages let the node run between them
                continue
            with trio.move_on_after(self.interval):
                await self._now.wait()
            self._now = trio.Event()

    def receipts_needed(self) -> int:
        """How many remote receipts make a record published: R, or every peer in a smaller network."""
        return publishing.receipts_needed(self.replication, len(self.client.peers()))

    async def publish_pending(self) -> None:
        """Send every record still short of receipts to its authorities that have not answered:
        one pass over the whole queue, a page a round."""
        self._after = None
        while await self.publish_round():
            pass

    async def publish_round(self) -> bool:
        """Send the next page of the queue (its records still short of receipts) to their
        authorities that have not answered; True if the queue goes on past it."""
        if not self.client.peers():
            return False
        page = self.store.publishing_page(self._after, PUBLISH_PAGE)
        queue: list[publishing.Queued] = []
        size = 0
        for queued in page:
            record = self.store.get(queued.hash)
            queue.append(publishing.Queued(queued.hash, record, queued.receipted))
            size += 0 if record is None else len(record.to_bytes())
            if size > MAX_CHAIN_BYTES:
                break
        more = len(page) == PUBLISH_PAGE or len(queue) < len(page)
        self._after = page[len(queue) - 1].place if more else None
        plan = publishing.plan(
            queue, self.client.peers(), self.peer_keys, self.replication, self.receipts_needed()
        )
        self.store.done_publishing(plan.done)
        async with trio.open_nursery() as nursery:
            for peer, records in plan.batches.items():
                nursery.start_soon(self._publish_to, peer, records)
        return more

    async def _publish_to(self, peer: PeerId, records: list[Record]) -> None:
        with tolerate("publishing to %s", peer):
            reply = await self.client.ask(peer, PublishRequest(tuple(r.to_bytes() for r in records)))
            # a receipt counts only from the node key this peer greeted with
            receipts = [
                _stored(receipt)
                for receipt in reply.receipts
                if receipt.authority == self.peer_keys.get(peer, receipt.authority)
            ]
            try:
                self.store.add_receipts(receipts)
            except StorageError as exc:  # a full disk: asked again next round, once there is room
                log.warning("publishing: %s", exc)

    async def _on_publish(self, peer: PeerId, request: PublishRequest) -> PublishReply:
        receipts = []
        for record in request.read():
            verdict = await self.ingest.ingest(record, peer)
            if not isinstance(verdict, Missing):
                receipts.append(self._receipt(record.hash, isinstance(verdict, Valid)))
        return PublishReply(tuple(receipts))

    async def _on_witness(self, peer: PeerId, request: WitnessRequest) -> WitnessReply:
        """As one of a payer's activity authorities: take the payer's record in (its chain
        fetched from the asker if need be) and say what this node holds at its place: that
        record (a receipt), another one (its bytes: the asker learns of the fork), or nothing."""
        record = request.read()
        await self.ingest.ingest(record, peer)
        held = self.store.hash_at(record.action.author, record.action.seq)
        if held == record.hash:
            return WitnessReply(receipt=self._receipt(record.hash, True))
        other = None if held is None else self.store.get(held)
        return WitnessReply(held=None if other is None else other.to_bytes())

    def _receipt(self, record: ActionHash, valid: bool) -> Receipt:
        at = self.clock()
        signature = self.signer.sign(SIG_RECEIPT, receipt_bytes(record, valid, at))
        return Receipt(record, self.key, valid, at, signature)


def _stored(receipt: Receipt) -> StoredReceipt:
    return StoredReceipt(receipt.record, receipt.authority, receipt.valid, receipt.at, receipt.signature)

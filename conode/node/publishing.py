"""Publishing on a node: records authored here sent to their authorities until enough receipts.

Every ``publish_interval`` (and at once when a record is authored) a round
takes the next page of the queue (``PUBLISH_PAGE`` records, oldest first,
from where the last round stopped) and the receipts held for them through
``conode.dht.publishing.plan``, with the authorities this node's ring view
gives (``Placement``); each peer is sent its batch in one ``publish``
request with the hosting claims of the batch's authors (so the authors'
authorities can answer ``host``; not to a peer whose hello showed it holds
them all), and the signed receipts it returns are
kept (one transaction a batch). While the queue goes on past a page the
next round follows at once, and after its end the next starts again from
its oldest record. So a round costs the same whatever the backlog (a node
back from a week offline, or a peer slower than this node authors), each
request is answered well within the timeout, and a record no peer receipts
never holds back the ones behind it. (Each round used to read and send the
whole queue: once a backlog took a peer longer than the request timeout to
take in, no receipt came back, the queue only grew, and every record
authored cost a read of all of it: 1.3 s an offer with 14 000 queued.) As
an authority, the node takes a published batch in through ingest and signs
a receipt for each record it judged (valid or not; none for a record it
could not judge yet, or does not hold: one whose author is not on its arc),
and witnesses a payer's record for a payee (``witness``: held at its place,
or the other record held there). A record addressed to an agent hosted
elsewhere (a bill to its payer, a decline to the bill's payee) is also handed
to that agent's node, which keeps it for the agent whichever chains it holds,
and stays queued until that node's receipt comes (``_deliver``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, TypeVar

import trio

from conode.chain import Record
from conode.chain.ops import op_locations
from conode.crypto import SIG_RECEIPT, Signer
from conode.dht import publishing
from conode.dht.messages import (
    MAX_CHAIN_BYTES,
    Claim,
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
from conode.node.hosting import Hosting
from conode.node.ingest import Ingest
from conode.node.peer_client import PeerClient, serve, tolerate
from conode.node.peers import Peers
from conode.node.ring import Placement
from conode.store import NodeStore
from conode.store import Receipt as StoredReceipt
from conode.validation.verdict import Missing, Valid

__all__ = ["PUBLISH_PAGE", "Publishing"]

_K = TypeVar("_K")

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
        peers: Peers,
        hosting: Hosting,
        placement: Placement,
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
        self.claims = peers.claims
        self.peer_keys = peers.peer_keys
        self.hosting = hosting
        self.placement = placement
        self.signer = node_signer
        self.key = AgentKey(node_signer.public_key)
        self.clock = clock
        self.replication = replication
        self.interval = interval
        self._now = trio.Event()
        self._tries: dict[tuple[ActionHash, PeerId], tuple[int, float]] = {}
        self._informed: set[tuple[ActionHash, PeerId]] = set()
        """(record, payer authority) pairs a payment was sent to for no receipt (``informed``)."""
        self._delivered: set[ActionHash] = set()
        """Queued records addressed to an agent hosted elsewhere that its node has taken."""
        self._deliveries: dict[ActionHash, tuple[int, float]] = {}
        """Each undelivered record's tries so far and when it is next due (as ``_tries``)."""
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

    def receipts_needed(self, author: AgentKey | None = None) -> int:
        """How many remote receipts make a record of ``author`` published: R, or as many of
        its authorities as there are besides this node (of anyone's, with no author); before
        this node is placed or knows any other holder, as before sharding: R, or every conode
        peer in a smaller network."""
        ring = self.placement.view.ring()
        others = len({h.peer for h in (*ring.ordinary, *ring.full)} - {self.transport.peer_id})
        if not self.placement.placed or others == 0:
            return max(1, min(self.replication, len(self.client.peers())))
        holders = others if author is None else len(self.placement.authorities_of(author))
        return publishing.receipts_needed(self.replication, holders, alone=False)

    def _needed(self, record: Record) -> int:
        """The receipts ``record`` needs: as for its author, from the holders of any of its
        ops (a link's base authorities count too)."""
        ring = self.placement.view.ring()
        others = len({h.peer for h in (*ring.ordinary, *ring.full)} - {self.transport.peer_id})
        targets = len(publishing.targets(record, self.placement.authorities))
        needed = publishing.receipts_needed(self.replication, targets, alone=others == 0)
        # a floor while this node's view of the ring is still partial (a new network, a new
        # node): every connected conode peer places itself, and each location has R holders
        # (this node one of them if it holds the record's location), so never fewer than these
        # (R while some connected peer's place is not known yet: this node's arc may shrink)
        connected = set(self.transport.connected_peers())
        greeted = [peer for peer in self.peer_keys if peer in connected]
        view = self.placement.view
        settled = all(
            (place := view.place_of(peer)) is not None and place.holder(peer) is not None
            for peer in greeted
        )
        holds = settled and any(self.placement.holds_location(loc) for loc in op_locations(record))
        if not self.placement.placed:  # its first seconds: who holds what is not known yet
            return max(needed, self.replication)
        return max(needed, min(self.replication, len(greeted)) - (1 if holds else 0))

    async def publish_pending(self) -> None:
        """Send every record still short of receipts to its authorities that have not answered:
        one pass over the whole queue, a page a round."""
        self._after = None
        while await self.publish_round():
            pass

    async def publish_round(self) -> bool:
        """Send the next page of the queue (its records still short of receipts) to their
        authorities that have not answered; True if the queue goes on past it. Nothing while no
        conode peer is connected: every request would wait out its timeout."""
        if not self.client.peers():
            return False
        page = self.store.publishing_page(self._after, PUBLISH_PAGE)
        if not page:
            self._after = None
            return False
        records: dict[ActionHash, Record | None] = {}
        queue: list[publishing.Queued] = []
        size = 0
        for queued in page:
            record = self.store.get(queued.hash)
            records[queued.hash] = record
            queue.append(publishing.Queued(queued.hash, record, queued.receipted))
            size += 0 if record is None else len(record.to_bytes())
            if size > MAX_CHAIN_BYTES:
                break
        more = len(page) == PUBLISH_PAGE or len(queue) < len(page)
        self._after = page[len(queue) - 1].place if more else None
        for loc in sorted({loc for r in records.values() if r is not None for loc in op_locations(r)}):
            self.placement.locate_soon(loc)  # who holds it, asked near it, for the next round
        plan = publishing.plan(
            queue, self.placement.authorities, self.peer_keys,
            self._needed,
        )  # fmt: skip
        now = trio.current_time()
        for peer, batch in list(plan.batches.items()):
            # a peer that gave no receipt is asked again later and later
            due = [r for r in batch if self._due(self._tries, (r.hash, peer), now)]
            if due:
                plan.batches[peer] = due
            else:
                del plan.batches[peer]
        undelivered = {
            h: to for h, r in records.items() if r is not None and (to := self._undelivered(r))
        }
        done = [h for h in plan.done if h not in undelivered]  # queued until delivered
        self._forget(done)
        self.store.done_publishing(done)
        informs = self._informs(records, set(done))
        async with trio.open_nursery() as nursery:
            for peer, batch in plan.batches.items():
                nursery.start_soon(self._publish_to, peer, batch)
            for peer, batch in informs.items():
                nursery.start_soon(self._inform, peer, batch)
            for h, to in undelivered.items():
                record = records[h]
                if record is not None and self._due(self._deliveries, h, now):
                    nursery.start_soon(self._deliver, record, to)
        return more

    @staticmethod
    def _due(tries: dict[_K, tuple[int, float]], key: _K, now: float) -> bool:
        """True if ``key`` is due a try now, counted: tried again later and later (1, 2, 4 ...
        64 s) while no answer takes it off."""
        count, due_at = tries.get(key, (0, 0.0))
        if due_at > now:
            return False
        tries[key] = (count + 1, now + min(2.0**count, 64.0))
        return True

    def _forget(self, published: list[ActionHash]) -> None:
        """Forget the tries and informs of records that left the queue."""
        if published:
            done = set(published)
            self._tries = {k: v for k, v in self._tries.items() if k[0] not in done}
            self._informed = {k for k in self._informed if k[0] not in done}
            self._delivered -= done
            for h in done:
                self._deliveries.pop(h, None)

    def _informs(
        self, records: dict[ActionHash, Record | None], done: set[ActionHash]
    ) -> dict[PeerId, list[Record]]:
        """The payments still publishing that a payer authority has not been sent yet."""
        batches: dict[PeerId, list[Record]] = {}
        for h, record in records.items():
            if record is None or h in done:
                continue
            for peer in publishing.informed(record, self.placement.authorities):
                if (h, peer) not in self._informed:
                    batches.setdefault(peer, []).append(record)
        return batches

    async def _inform(self, peer: PeerId, records: list[Record]) -> None:
        """Send a payer authority the payments naming its payer's positions (no receipt is
        counted: it does not hold the payee's chain); once it answered, not again."""
        with tolerate("sending %s the payments naming its payers", peer):
            await self.client.ask(peer, PublishRequest(tuple(r.to_bytes() for r in records)))
            self._informed.update((r.hash, peer) for r in records)

    def _undelivered(self, record: Record) -> AgentKey | None:
        """The agent hosted elsewhere that ``record`` is addressed to (a bill's payer, a bill
        decline's payee), until that agent's node has taken it; else None."""
        if record.hash in self._delivered:
            return None
        to = self.ingest.addressee(record)
        return None if to is None or to in self.ingest.agents else to

    async def _deliver(self, record: Record, to: AgentKey) -> None:
        """Hand ``record`` to the node that hosts ``to``, whichever chains that node holds: it
        keeps the record loose for ``to`` (``Loose.ADDRESSED``) and receipts it. The receipt
        is not counted among the authorities'; until it comes the record stays queued (a
        restart delivers it again), so a bill reaches its payer's node even if that node was
        away while the bill's authorities took it."""
        with tolerate("delivering %s to the node of %s", record.hash.short(), to.short()):
            host = await self.hosting.host_of(to)
            reply = await self.client.ask(host, PublishRequest((record.to_bytes(),)))
            if any(receipt.record == record.hash for receipt in reply.receipts):
                self._delivered.add(record.hash)

    async def _publish_to(self, peer: PeerId, records: list[Record]) -> None:
        claims: tuple[Claim, ...] = ()
        if not self.claims.holds_our_claims(peer):  # it has not shown it holds them already
            claims = self.claims.own_claims({r.action.author for r in records})
        with tolerate("publishing to %s", peer):
            request = PublishRequest(tuple(r.to_bytes() for r in records), claims)
            reply = await self.client.ask(peer, request)  # unreachable: the ring forgets it
            # a receipt counts only from the node key this peer greeted with, or (a peer never
            # greeted: an authority found by lookup) the key its first receipt was signed with
            known = self.peer_keys.get(peer)
            if known is None and reply.receipts:
                known = self.peer_keys[peer] = reply.receipts[0].authority
            try:
                self.store.add_receipts(
                    [_stored(receipt) for receipt in reply.receipts if receipt.authority == known]
                )
                self._settle(records)
            except StorageError as exc:  # a full disk: asked again next round, once there is room
                log.warning("publishing: %s", exc)
                return
            receipted = {receipt.record for receipt in reply.receipts}
            for record in records:
                if record.hash not in receipted:  # not its to hold, it says: who holds it?
                    for loc in op_locations(record):
                        self.placement.doubt(loc)

    def _settle(self, records: list[Record]) -> None:
        """Take off the queue at once the records whose receipts are now enough: published as
        soon as the last one needed is kept, not a round later (``publish_interval``)."""
        done = [
            r.hash
            for r in records
            if len({k.authority for k in self.store.receipts(r.hash)}) >= self._needed(r)
            and self._undelivered(r) is None
        ]
        if done:
            self._forget(done)
            self.store.done_publishing(done)

    async def _on_publish(self, peer: PeerId, request: PublishRequest) -> PublishReply:
        for claim in request.claims:
            self.claims.learn_claim(claim)
        receipts = []
        for record in request.read():
            verdict = await self.ingest.ingest(record, peer)
            if not isinstance(verdict, Missing):
                receipts.append(self._receipt(record.hash, isinstance(verdict, Valid)))
        return PublishReply(tuple(receipts))

    async def _on_witness(self, peer: PeerId, request: WitnessRequest) -> WitnessReply:
        """As one of a payer's activity authorities: take the payer's record in (its chain
        fetched from the asker if need be) and say what this node holds at its place: that
        record (a receipt), another one (its bytes: the asker learns of the fork), or nothing.

        The asker sees this node as one of the payer's authorities; where this node's own view
        of the ring differs (or no place is heard of yet), it holds the payer's chain while the
        payment may last all the same (``hold_chain``): a witness that refused would hold the
        payment up."""
        record = request.read()
        payer = record.action.author
        if not self.ingest.holds(payer):
            self.ingest.hold_chain(payer, witnessed=True)
        verdict = await self.ingest.ingest(record, peer)
        host = self.claims.hosts.get(payer)
        if isinstance(verdict, Missing) and host is not None and host != peer:
            # the asker may hold the payer's record alone (sharded): the chain is at its host
            with tolerate("fetching the chain of %s from its host", payer.short()):
                await self.ingest.ingest(record, host)
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

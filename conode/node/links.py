"""Link indexes on a node: asking a base's authorities for its links, and answering as one.

A link record goes to the authorities of its base too (publishing), which
answer ``links`` requests for it. ``fetch_links`` asks each base's R
nearest peers at once, one request per peer for all the bases it is an
authority of (the next R for a base none of them answered, and so on), and
takes every link in through ingest, its author's chain and its target first.
The pure half (digests, pages, reply checks) is ``conode.dht.links``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import trio

from conode.chain import Record
from conode.chain.ops import location
from conode.dht.links import Room, check_links, check_parts, cut_page, link_target, links_digest
from conode.dht.messages import (
    MAX_CHAIN_BATCH,
    MAX_CHAIN_BYTES,
    MAX_LINK_BASES,
    BaseAsk,
    LinksPageRequest,
    LinksReply,
    LinksRequest,
    RecordsPage,
    decode_links_request,
)
from conode.dht.transport import Handler, PeerId
from conode.errors import NetworkError, RemoteProtocolError
from conode.hashes import ActionHash, TypedHash
from conode.node.ingest import Ingest, Need
from conode.node.peer_client import PeerClient, serve
from conode.node.pulls import Pulls
from conode.node.ring import Placement
from conode.store import NodeStore
from conode.validation.verdict import Valid

__all__ = ["Links"]

log = logging.getLogger("conode.node")

_MAX_LINK_PAGES: Final = 8  # a links fetch asks one peer for at most this many cut-off replies
_LinkIndex = tuple[bytes, str | None]
"""A link index asked for: its base (typed-hash bytes) and link type (None: any)."""


@dataclass(slots=True)
class _LinksAsk:
    """One link index being fetched: its base, the hashes held there (growing as links come in),
    the digest of those held when the fetch began, its authorities nearest first."""

    key: _LinkIndex
    base: TypedHash
    held: set[ActionHash]
    have: bytes
    ranked: list[str]


class Links:
    """The DHT's link indexes, as an asker (``fetch_links``) and as an authority."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        pulls: Pulls,
        client: PeerClient,
        clock: Callable[[], int],
        placement: Placement,
        *,
        replication: int,
        fresh_us: int,
    ) -> None:
        self.store = store
        self.placement = placement
        self.ingest = ingest
        self.pulls = pulls
        self.client = client
        self.clock = clock
        self.replication = replication
        self.fresh_us = fresh_us
        self._fetched: dict[_LinkIndex, int] = {}  # when an authority last answered in full
        self._fetching: dict[_LinkIndex, trio.Event] = {}

    def handlers(self) -> dict[str, Handler]:
        """The protocol it answers: ``links``."""
        return {LinksRequest.protocol: serve(decode_links_request, self._on_links)}

    # -- the asker -------------------------------------------------------------------------------

    async def fetch_links(
        self,
        bases: Iterable[TypedHash],
        link_type: str | None = None,
        new: list[Record] | None = None,
    ) -> list[Record]:
        """Bring here the links at ``bases`` (of ``link_type``, or any) that their authorities hold.

        Asks the R peers nearest to each base at once, one ``links`` request per peer for all
        the bases it is an authority of (for a base none of them answered, the next R, and so
        on). Every link record goes in through ``ingest`` after its author's chain is pulled
        from the peer that sent it, and its target (with the target's chain) is fetched if it
        is not held: nothing unjudged is stored. A reply that is malformed or holds a record
        that is not a link at the base it is given for is refused whole, with a log line. The
        link records taken in (also added to ``new`` as they come, for a caller that may cancel).

        A base is fresh for ``fresh_us`` after an authority answered for it in full: a fetch
        within that time does not ask about it (what it would bring comes by publishing or
        gossip meanwhile, or at the next fetch after it); a fetch of a base already being
        fetched waits for that fetch.
        """
        taken: list[Record] = [] if new is None else new
        first = len(taken)
        now = self.clock()
        self._fetched = {  # forget the bases fetched too long ago
            k: at for k, at in self._fetched.items() if 0 <= now - at < self.fresh_us
        }
        todo: dict[_LinkIndex, TypedHash] = {}
        under_way: list[trio.Event] = []
        for base in bases:
            key = (base.to_bytes(), link_type)
            if key in todo or key in self._fetched:
                continue
            if key in self._fetching:
                under_way.append(self._fetching[key])
                continue
            todo[key] = base
            self._fetching[key] = trio.Event()
        try:
            if todo:
                await self._ask_authorities(todo, link_type, taken)
        finally:
            for key in todo:
                self._fetching.pop(key).set()
        for event in under_way:
            await event.wait()
        got = taken[first:]
        if got:
            log.info("fetched %d links at %d bases from the DHT", len(got), len(todo))
        return got

    async def _ask_authorities(
        self, todo: Mapping[_LinkIndex, TypedHash], link_type: str | None, taken: list[Record]
    ) -> None:
        """Ask each base's authorities, R at a time, until one answers in full (from then on the
        base is fresh). Each round sends each peer one request for all its bases unanswered."""
        peers = self.client.peers()
        asks: dict[_LinkIndex, _LinksAsk] = {}
        for key, base in todo.items():
            held = self._held_links(base, link_type)
            self.placement.locate_soon(location(base.raw))
            ranked = [str(p) for p in self.placement.authorities(location(base.raw))]
            ranked += [p for p in peers if p not in ranked]  # then anyone (an earlier version)
            asks[key] = _LinksAsk(key, base, held, links_digest(held), ranked)
        answered: set[_LinkIndex] = set()
        r = self.replication
        longest = max((len(ask.ranked) for ask in asks.values()), default=0)
        for start in range(0, longest, r):
            by_peer: dict[str, list[_LinksAsk]] = {}
            for ask in asks.values():
                if ask.key not in answered:
                    for peer in ask.ranked[start : start + r]:
                        by_peer.setdefault(peer, []).append(ask)
            if not by_peer:
                break
            async with trio.open_nursery() as nursery:
                for peer, its in by_peer.items():
                    for i in range(0, len(its), MAX_LINK_BASES):
                        chunk = its[i : i + MAX_LINK_BASES]
                        nursery.start_soon(
                            self._links_from, PeerId(peer), link_type, chunk, answered, taken
                        )

    def _held_links(self, base: TypedHash, link_type: str | None) -> set[ActionHash]:
        """The hashes of the link records held at ``base`` (an index read; nothing decoded)."""
        return self.store.link_hashes(base, link_type)

    async def _links_from(
        self,
        peer: PeerId,
        link_type: str | None,
        asks: list[_LinksAsk],
        answered: set[_LinkIndex],
        taken: list[Record],
    ) -> None:
        """Ask ``peer`` in one request for the links at the bases of ``asks`` and take in those
        not held (a base whose part was cut off is paged on alone); the bases it answered in
        full go into ``answered`` and are fresh from now (even if another authority never
        answers and the caller gives up)."""
        bases = tuple(BaseAsk(ask.base, ask.have) for ask in asks)
        request = LinksRequest(bases, link_type, MAX_CHAIN_BATCH)
        try:
            reply: LinksReply = await self.client.ask(peer, request)
            parts = check_parts(reply.parts, [ask.base for ask in asks], link_type)
        except NetworkError as exc:
            log.info("asking %s for the links at %d bases: %s", peer, len(asks), exc)
            return
        except RemoteProtocolError as exc:
            log.warning("refused the links at %d bases from %s: %s", len(asks), peer, exc)
            return
        for ask, (records, more) in zip(asks, parts, strict=True):
            await self._take_links(peer, records, ask, taken)
            after = records[-1].hash if records else None
            if not more or await self._links_after(peer, link_type, ask, after, taken):
                answered.add(ask.key)
                self._fetched[ask.key] = self.clock()

    async def _links_after(
        self,
        peer: PeerId,
        link_type: str | None,
        ask: _LinksAsk,
        after: ActionHash | None,
        taken: list[Record],
    ) -> bool:
        """Page on through ``peer``'s links at one base from just after ``after`` (single-base
        requests) and take them in; whether it answered to the end."""
        for _page in range(_MAX_LINK_PAGES):
            request = LinksPageRequest(ask.base, link_type, after, MAX_CHAIN_BATCH)
            try:
                page: RecordsPage = await self.client.ask(peer, request)
                records = check_links(page, ask.base, link_type, after)
            except NetworkError as exc:
                log.info("asking %s for the links at %s: %s", peer, ask.base.short(), exc)
                return False
            except RemoteProtocolError as exc:
                log.warning("refused the links at %s from %s: %s", ask.base.short(), peer, exc)
                return False
            await self._take_links(peer, records, ask, taken)
            if not page.more or not records:
                return True
            after = records[-1].hash
        return True  # as far as a fetch reads one peer

    async def _take_links(
        self, peer: PeerId, links: list[Record], ask: _LinksAsk, taken: list[Record]
    ) -> None:
        """Ingest link records from ``peer``: their authors' chains first, then each link's target;
        each taken in joins ``ask.held`` and ``taken``.

        Links held by now are skipped (their targets came with them; gossip keeps them fresh).
        """
        held = ask.held
        links = [
            link for link in links if link.hash not in held and self.store.get(link.hash) is None
        ]
        authors = sorted({link.action.author for link in links})
        for author in authors:  # an app reads an offer's state from its chain: hold it a while
            self.ingest.hold_chain(author)
        await self.pulls.pull_from(peer, authors)
        for link in links:
            verdict = await self.ingest.ingest(link, peer)
            if not isinstance(verdict, Valid):
                log.warning("refused link %s from %s: %s", link.hash.short(), peer, verdict)
                continue
            if link.hash not in held:
                held.add(link.hash)
                taken.append(link)
            target = link_target(link)
            if target is not None and self.store.get(target) is None:
                await self.pulls.fetch_needed(Need(records=(target,)), peer, 0)
                held_target = self.store.get(target)
                if held_target is not None:
                    self.ingest.hold_chain(held_target.action.author)
                    await self.pulls.pull_from(peer, [held_target.action.author])

    # -- the authority ---------------------------------------------------------------------------

    async def _on_links(
        self, peer: PeerId, request: LinksRequest | LinksPageRequest
    ) -> LinksReply | RecordsPage:
        """The link records held at a base (after a hash) or at each of several (from the start),
        of one type or any, cut off at the limits; none at a base where the asker's ``have``
        digest is that of what is held there."""
        room = Room(min(request.limit, MAX_CHAIN_BATCH), MAX_CHAIN_BYTES)
        if isinstance(request, LinksRequest):
            parts = [
                self._page(ask.base, request.link_type, None, ask.have, room)
                for ask in request.bases
            ]
            return LinksReply(tuple(parts))
        return self._page(request.base, request.link_type, request.after, request.have, room)

    def _page(
        self,
        base: TypedHash,
        link_type: str | None,
        start: ActionHash | None,
        have: bytes | None,
        room: Room,
    ) -> RecordsPage:
        """The portable link records held at ``base`` after ``start`` that fit in ``room`` (which
        shrinks by them), and whether more are held; none from the start if ``have`` is the
        digest of all of them (the asker holds the very same)."""
        same = have is not None and have == links_digest(self._held_links(base, link_type))
        if start is None and same:
            return RecordsPage((), False)
        limit = max(0, room.records) + 1
        held = self.store.link_blobs(base, link_type, after=start, limit=limit)
        blobs, more = cut_page(held, room)
        return RecordsPage(tuple(blobs), more)

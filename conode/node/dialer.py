"""Reaching peers: where each may be reached, and the dials that reach it.

A peer's addresses come from the transport, else from what it said in its
own last hello (kept on disk once it completed one, written again only when
they change or every ``PEER_SEEN_REFRESH_US``), else from what another's
hello said of it (in memory, at most ``_HEARD_MAX`` peers, so that a peer
known only by its place can be reached). Dials run in the background through
a ``DialBook`` (``conode.node.dialing``: bounded, concurrent, backed off); a
remembered peer none of whose old addresses answer is looked for through the
routing table (Kademlia), and one unreachable for ``FORGET_AFTER_US`` is
forgotten. A peer dialled is greeted at once (``greet``, the hello of
``conode.node.peers``, which owns this dialer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from conode.dht.transport import PeerId
from conode.errors import NetworkError
from conode.node.dialing import DialBook, stale
from conode.node.peer_client import PeerClient, tolerate
from conode.store import NodeStore

__all__ = ["PEER_SEEN_REFRESH_US", "Dialer"]

log = logging.getLogger("conode.node")

PEER_SEEN_REFRESH_US: Final = 600_000_000
"""How often a peer's unchanged addresses are written again (hellos come every few seconds)."""
_HEARD_MAX: Final = 4096
"""Most peers whose addresses, heard in hellos, are kept in memory (the oldest go first)."""


class Dialer:
    """Where this node's peers may be reached, and the dials it owes them (each greeted)."""

    def __init__(
        self,
        store: NodeStore,
        client: PeerClient,
        clock: Callable[[], int],
        greet: Callable[[PeerId], Awaitable[None]],
    ) -> None:
        self.store = store
        self.client = client
        self.transport = client.transport
        self.clock = clock
        self.greet = greet
        self._remembered: dict[str, tuple[list[str], int]] = {}
        self.dials = DialBook()
        """The dials this node owes (remembered peers, peers named in hellos), bounded."""
        self._heard: dict[PeerId, list[str]] = {}  # addresses named in hellos, oldest first
        client.addresses = self.addresses

    def start_dials(self) -> None:
        """Start the dials that are due (``DialBook.due``), each in the background."""
        own = self.transport.peer_id
        skip = {*self.transport.connected_peers(), own}
        now = self.clock()
        for peer, addrs, remembered in self.dials.due(self.store.known_peers(), skip, now):
            self.client.spawn(self._dial_one, peer, addrs, remembered)

    async def _dial_one(self, peer: PeerId, addrs: list[str], remembered: bool) -> None:
        answered = False
        try:
            with trio.move_on_after(2 * self.client.request_timeout):
                answered = await self.dial(addrs)
                if not answered and remembered:
                    await self.route_to(peer)
            answered = answered or peer in self.transport.connected_peers()
        finally:
            self.dials.done(peer, answered, self.clock(), remembered=remembered)
        if remembered and not answered:
            self._forget_if_stale(peer)

    def _forget_if_stale(self, peer: PeerId) -> None:
        """Forget a remembered peer unreachable for ``FORGET_AFTER_US`` (``conode.node.dialing``)."""
        for known, _addrs, seen in self.store.known_peers():
            if known == peer and stale(seen, self.dials.failures(peer), self.clock()):
                log.info("forgetting %s: not reachable since %d", peer, seen)
                self.store.forget_peer(peer)
                self._remembered.pop(peer, None)
                self.dials.forget(peer)

    def unconnected(self) -> list[list[str]]:
        """The addresses of each remembered peer not connected now whose dials have not failed."""
        connected = set(self.transport.connected_peers())
        own = self.transport.peer_id
        return [
            addrs for peer_id, addrs, _seen in self.store.known_peers()
            if peer_id not in connected and peer_id != own and not self.dials.failures(peer_id)
        ]  # fmt: skip

    def remember(self, peer: str, addrs: list[str]) -> None:
        """Keep a peer's addresses on disk, writing only when they change (hellos come often)."""
        now = self.clock()
        known = self._remembered.get(peer)
        if known is not None and known[0] == addrs and now - known[1] < PEER_SEEN_REFRESH_US:
            return
        self.store.remember_peer(peer, addrs, now)
        self._remembered[peer] = (list(addrs), now)

    def heard(self, peer: PeerId, addrs: list[str]) -> None:
        """Note where a peer named in a hello may be reached (in memory, at most ``_HEARD_MAX``
        peers, the oldest forgotten first)."""
        self._heard.pop(peer, None)
        self._heard[peer] = addrs
        while len(self._heard) > _HEARD_MAX:
            del self._heard[next(iter(self._heard))]

    def addresses(self, peer: PeerId) -> list[str]:
        """Where ``peer`` may be reached: what the transport knows, else what it last said, else
        what a hello said."""
        found = self.transport.peer_addrs(peer)
        if found:
            return found
        known = self._remembered.get(peer)
        if known is not None:
            return list(known[0])
        return list(self._heard.get(peer, ()))

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer and greet it."""
        peer = await self.transport.connect(addr)
        await self.greet(peer)
        return peer

    async def dial(self, addrs: list[str]) -> bool:
        """Connect to a peer at one of its addresses and greet it; False if none answered."""
        for addr in addrs:
            with tolerate("dialing %s", addr):
                await self.connect(addr)
                return True
        return False

    async def route_to(self, peer: PeerId) -> None:
        """A known peer that none of its old addresses reach: ask the routing table (Kademlia)."""
        find = getattr(self.transport, "find_peer", None)
        if find is None:
            return
        try:
            addrs = list(await find(peer))
        except NetworkError as exc:
            log.info("routing to %s: %s", peer, exc)
            return
        if addrs and await self.dial(addrs):
            self.remember(peer, addrs)

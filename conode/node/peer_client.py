"""How a node's services speak to peers: typed requests out, typed handlers in, failures tolerated.

- ``ask(peer, request)``: one request of a typed message (``conode.dht.messages``)
  and its reply, read and checked by the request itself. ``NetworkError`` when
  the peer is unreachable or slow, ``RemoteProtocolError`` when it answers
  garbage: the two failures a peer can cause.
- ``tolerate(doing, ...)``: where a service carries on without that peer, the
  two failures are logged once and swallowed (httpcore's ``map_exceptions``
  idea: translate at the seam, in one place).
- ``serve(decode, answer)``: a transport handler from a request decoder and
  an answer function, so no service touches wire bytes.
- ``spawn(fn, ...)``: a background task in the node's nursery, once it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Protocol, TypeVar

import trio

from conode.dht.messages import Request
from conode.dht.transport import Handler, PeerId, Transport, protocol_id
from conode.errors import NetworkError, RemoteProtocolError
from conode.node.full_disk import unless_full_disk

__all__ = ["HEDGE_S", "Encodable", "PeerClient", "serve", "tolerate"]

log = logging.getLogger("conode.node")

HEDGE_S: Final = 0.5
"""Seconds a hedged request waits for one peer before asking the next as well."""

STRIKES: Final = 3
"""Failed requests in a row after which a peer still connected counts as unreachable. A peer
whose connection is gone counts at once; one that is connected but timed out or refused once
is busy, not gone (a Pi under load, or a peer over its limits): forgetting it at once moved
arcs and made more work for every node, which made more timeouts."""

_STRIKES_KEPT: Final = 4096
"""Most peers whose failures are counted at once (the oldest count is dropped first)."""

R = TypeVar("R")
Q = TypeVar("Q")


class Encodable(Protocol):
    """A reply a handler returns: it knows its wire bytes."""

    def encode(self) -> bytes: ...


def serve(
    decode: Callable[[bytes], Q], answer: Callable[[PeerId, Q], Awaitable[Encodable]]
) -> Handler:
    """A transport handler: the request decoded (``RemoteProtocolError`` resets it), answered."""

    async def handler(peer: PeerId, payload: bytes) -> bytes:
        return (await answer(peer, decode(payload))).encode()

    return handler


class PeerClient:
    """One node's requests to its peers over ``transport``, within network ``network_short``."""

    def __init__(self, transport: Transport, network_short: str, request_timeout: float) -> None:
        self.transport = transport
        self.network_short = network_short
        self.request_timeout = request_timeout
        self.nursery: trio.Nursery | None = None
        """The node's nursery while it runs (``spawn`` starts nothing before)."""
        self.greeted: Container[PeerId] = frozenset()
        """The peers that completed a hello with this node (the node sets ``Peers.peer_keys``)."""
        self.addresses: Callable[[PeerId], list[str]] = lambda _peer: []
        """Where a peer may be reached (``Dialer.addresses``), to connect when a request fails."""
        self.on_unreachable: list[Callable[[PeerId], None]] = []
        """Told of a peer a request could not reach (the ring forgets it until it is heard of):
        at once if it is no longer connected, else after ``STRIKES`` failures in a row."""
        self._strikes: dict[PeerId, int] = {}
        """Failed requests in a row, of the connected peers that failed of late."""

    def protocol(self, name: str) -> str:
        """The full protocol id of one of conode's protocols in this network."""
        return protocol_id(self.network_short, name)

    async def ask(self, peer: PeerId, request: Request[R]) -> R:
        """One request to ``peer``; its checked reply (``NetworkError``/``RemoteProtocolError``).

        A peer known only by its addresses (heard of, never met) is connected to first: if
        the request fails and the peer is not connected, it is dialled and asked once more.
        """
        protocol, payload = self.protocol(request.protocol), request.encode()
        try:
            try:
                raw = await self.transport.request(
                    peer, protocol, payload, timeout=self.request_timeout
                )
            except NetworkError:
                if not await self._reach(peer):
                    raise
                raw = await self.transport.request(
                    peer, protocol, payload, timeout=self.request_timeout
                )
        except NetworkError:
            self._failed(peer)
            raise
        self._strikes.pop(peer, None)
        return request.read_reply(raw)

    def _failed(self, peer: PeerId) -> None:
        """A request to ``peer`` failed: tell ``on_unreachable`` if its connection is gone or
        this is its ``STRIKES``-th failure in a row."""
        strikes = self._strikes.pop(peer, 0) + 1
        if strikes < STRIKES and peer in self.transport.connected_peers():
            if len(self._strikes) >= _STRIKES_KEPT:
                del self._strikes[next(iter(self._strikes))]
            self._strikes[peer] = strikes
            return
        for tell in self.on_unreachable:
            tell(peer)

    async def _reach(self, peer: PeerId) -> bool:
        """Connect to ``peer`` at an address it is known by; False if it was connected already
        or none answered."""
        if peer in self.transport.connected_peers():
            return False
        for addr in self.addresses(peer):
            try:
                await self.transport.connect(addr)
                return True
            except NetworkError as exc:
                log.info("dialing %s at %s: %s", peer, addr, exc)
        return False

    async def hedged(
        self, peers: Sequence[PeerId], request: Request[R], good: Callable[[PeerId, R], bool]
    ) -> tuple[PeerId, R] | None:
        """The first ``good`` reply to ``request`` among ``peers``, asked in order, the next one
        as soon as a peer fails or ``HEDGE_S`` passes without an answer (hedged requests: an
        unreachable peer costs a fraction of a second, not a timeout); the others are cancelled.
        None if none answered well."""
        found: list[tuple[PeerId, R]] = []
        async with trio.open_nursery() as nursery:
            for peer in peers:
                finished = trio.Event()

                async def one(peer: PeerId = peer, finished: trio.Event = finished) -> None:
                    try:
                        with tolerate("asking %s", peer):
                            reply = await self.ask(peer, request)
                            if good(peer, reply) and not found:
                                found.append((peer, reply))
                                nursery.cancel_scope.cancel()
                    finally:
                        finished.set()

                nursery.start_soon(one)
                with trio.move_on_after(HEDGE_S):
                    await finished.wait()
                if found:
                    break
        return found[0] if found else None

    def peers(self) -> list[PeerId]:
        """The conode peers connected now: of this network (``network_peers``), greeted with a
        completed hello, this node left out. A foreign libp2p peer is never one."""
        own = self.transport.peer_id
        greeted = self.greeted
        return [p for p in self.transport.network_peers() if p != own and p in greeted]

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the node's nursery (nothing if the node is not running); a
        write it cannot make (a full disk) is logged, not the node's end."""
        if self.nursery is not None:
            self.nursery.start_soon(unless_full_disk, fn, *args)


@contextmanager
def tolerate(doing: str, *args: Any, level: int = logging.INFO) -> Iterator[None]:
    """Carry on without the peer: log ``doing % args`` and the failure a peer caused, once."""
    try:
        yield
    except (NetworkError, RemoteProtocolError) as exc:
        log.log(level, f"{doing}: %s", *args, exc)

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
from collections.abc import Awaitable, Callable, Container, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import trio

from conode.dht.messages import Request
from conode.dht.transport import Handler, PeerId, Transport, protocol_id
from conode.errors import NetworkError, RemoteProtocolError

__all__ = ["Encodable", "PeerClient", "serve", "tolerate"]

log = logging.getLogger("conode.node")

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

    def protocol(self, name: str) -> str:
        """The full protocol id of one of conode's protocols in this network."""
        return protocol_id(self.network_short, name)

    async def ask(self, peer: PeerId, request: Request[R]) -> R:
        """One request to ``peer``; its checked reply (``NetworkError``/``RemoteProtocolError``)."""
        raw = await self.transport.request(
            peer, self.protocol(request.protocol), request.encode(), timeout=self.request_timeout
        )
        return request.read_reply(raw)

    def peers(self) -> list[PeerId]:
        """The conode peers connected now: of this network (``network_peers``), greeted with a
        completed hello, this node left out. A foreign libp2p peer is never one."""
        own = self.transport.peer_id
        greeted = self.greeted
        return [p for p in self.transport.network_peers() if p != own and p in greeted]

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the node's nursery (nothing if the node is not running)."""
        if self.nursery is not None:
            self.nursery.start_soon(fn, *args)


@contextmanager
def tolerate(doing: str, *args: Any, level: int = logging.INFO) -> Iterator[None]:
    """Carry on without the peer: log ``doing % args`` and the failure a peer caused, once."""
    try:
        yield
    except (NetworkError, RemoteProtocolError) as exc:
        log.log(level, f"{doing}: %s", *args, exc)

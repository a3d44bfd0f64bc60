"""The one interface a node speaks to peers through.

A transport carries **requests and responses** of bytes over named protocols
(``/conode/<network>/<name>/1``): the node asks, a handler on the peer
answers. The libp2p transport (``libp2p_transport``) and the in-memory one
(``memnet``) both provide it, so every node test can run on either.

Limits every transport enforces, per peer, before a handler sees anything:
``MAX_MESSAGE`` bytes a frame, ``MAX_STREAMS_PER_PEER`` requests in flight,
and ``RATE_PER_PEER`` requests a second (a token bucket of ``RATE_BURST``).
A request over a limit is refused: the asker gets ``NetworkError``.

Errors: ``NetworkError`` when a peer is unreachable, too slow, refuses or
resets; a handler that raises ``RemoteProtocolError`` (the asker sent
garbage) makes the transport reset that request. No transport or libp2p
exception escapes a transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, NewType, Protocol

import trio

__all__ = [
    "MAX_MESSAGE",
    "MAX_STREAMS_PER_PEER",
    "RATE_BURST",
    "RATE_PER_PEER",
    "Handler",
    "PeerId",
    "PeerLimiter",
    "TaskStatus",
    "Transport",
    "protocol_id",
]

PeerId = NewType("PeerId", str)
TaskStatus = Any
"""``trio.TaskStatus[None]``: libp2p pulls in trio-typing, whose stale stubs hide trio's own from mypy."""
Handler = Callable[[PeerId, bytes], Awaitable[bytes]]
"""Answers one request from a peer with the response bytes."""

MAX_MESSAGE: Final = 4 << 20
MAX_STREAMS_PER_PEER: Final = 32
RATE_PER_PEER: Final = 500.0
RATE_BURST: Final = 1_000.0


def protocol_id(network_short: str, name: str) -> str:
    """The protocol id of one conode protocol within one network."""
    return f"/conode/{network_short}/{name}/1"


class Transport(Protocol):
    """Requests and responses between peers; see the module docstring."""

    @property
    def peer_id(self) -> PeerId:
        """This node's peer id."""

    def listen_addrs(self) -> list[str]:
        """Where peers can reach this node (multiaddr strings): what it advertises, never a wildcard."""

    def set_handler(self, protocol: str, handler: Handler) -> None:
        """Answer requests of ``protocol`` with ``handler``."""

    async def request(
        self, peer: PeerId, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        """Send one request and wait for its response; ``NetworkError`` on any failure."""

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer at a multiaddr (with its /p2p/ id); its peer id."""

    def connected_peers(self) -> list[PeerId]:
        """Peers with an open connection."""

    def network_peers(self) -> list[PeerId]:
        """Connected peers that speak this network's protocols (a foreign libp2p peer does not)."""

    def peer_addrs(self, peer: PeerId) -> list[str]:
        """Known addresses of a peer."""

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled, then close every connection."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass(slots=True)
class PeerLimiter:
    """Per-peer request rate (token bucket) and concurrency; pure bookkeeping, time passed in."""

    rate: float = RATE_PER_PEER
    burst: float = RATE_BURST
    max_in_flight: int = MAX_STREAMS_PER_PEER
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, peer: str, now: float) -> bool:
        """Take a slot for one request from ``peer``; False if it is over a limit."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0 or bucket.in_flight >= self.max_in_flight:
            return False
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        return True

    def release(self, peer: str) -> None:
        """Give back the slot ``admit`` took."""
        bucket = self._buckets.get(peer)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1

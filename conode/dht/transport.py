"""The one interface a node speaks to peers through.

A transport carries **requests and responses** of bytes over named protocols
(``/conode/<network>/<name>/1``): the node asks, a handler on the peer
answers. The libp2p transport (``libp2p_transport``) and the in-memory one
(``memnet``) both provide it, so every node test can run on either.

Limits every transport enforces, per peer, before a handler sees anything:
``MAX_MESSAGE`` bytes a frame, ``MAX_STREAMS_PER_PEER`` requests in flight,
``RATE_PER_PEER`` requests a second (a token bucket of ``RATE_BURST``), and
by cost for the store reads whose cost the asker chooses (``COSTLY``:
``chains``, ``chain``, ``fetch``, ``heads``, ``links``, ``bundle``):
``COST_PER_PEER`` seconds of the serving thread's CPU a second (a bucket of
``COST_BURST``), each such request charged the CPU its handler took, plus
``COST_PER_REQUEST`` for the transport's own work, plus its bytes in and
out at ``COST_PER_BYTE``. One ``chains`` request costs
about 14 ms, so a peer may send a few a second, not 500; a peer in debt is
refused until its bucket refills. A request over a limit is refused: the
asker gets ``NetworkError``.

Errors: ``NetworkError`` when a peer is unreachable, too slow, refuses or
resets; a handler that raises ``RemoteProtocolError`` (the asker sent
garbage) makes the transport reset that request. No transport or libp2p
exception escapes a transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import trio

from conode.dht.wire import MAX_MESSAGE, PeerId

__all__ = [
    "MAX_MESSAGE",
    "COSTLY",
    "COST_BURST",
    "COST_PER_BYTE",
    "COST_PER_PEER",
    "COST_PER_REQUEST",
    "MAX_STREAMS_PER_PEER",
    "RATE_BURST",
    "RATE_PER_PEER",
    "Handler",
    "PeerId",
    "PeerLimiter",
    "TaskStatus",
    "Transport",
    "protocol_id",
    "costly",
    "request_cost",
]

TaskStatus = Any
"""``trio.TaskStatus[None]``: libp2p pulls in trio-typing, whose stale stubs hide trio's own from mypy."""
Handler = Callable[[PeerId, bytes], Awaitable[bytes]]
"""Answers one request from a peer with the response bytes.

A handler that cannot answer raises: ``RemoteProtocolError`` (the request was bad) or
``StorageError`` (this node cannot write what answering needs: a full disk). Either resets
the request, which the asker sees as a ``NetworkError``; the node serves on.
"""

MAX_STREAMS_PER_PEER: Final = 32
RATE_PER_PEER: Final = 500.0
RATE_BURST: Final = 1_000.0
COST_PER_PEER: Final = 0.1
"""CPU seconds a second one peer's costly requests may cost (a tenth of a core)."""
COST_BURST: Final = 0.5
"""CPU seconds a peer may spend at once before its rate applies."""
COST_PER_BYTE: Final = 1.0 / (16 << 20)
"""What a byte in or out costs, in CPU seconds (16 MiB cost one second: py-libp2p's Noise and
Yamux move 16-60 MiB a second here, the framing in Python)."""
COST_PER_REQUEST: Final = 0.002
"""What answering a request costs besides its handler: the stream, Noise and Yamux (~2 ms)."""
COSTLY: Final = frozenset({"chain", "chains", "fetch", "heads", "links", "bundle", "hello"})
"""The protocols (by name) a peer's CPU budget applies to: reads of the store, and hellos (a
hello may list thousands of made-up peers), whose cost the asker chooses. Payments,
publishing and warrants are limited by rate only."""


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
    budget: float = COST_BURST
    """CPU seconds the peer may still spend (negative: in debt, refused until it refills)."""
    in_flight: int = 0


@dataclass(slots=True)
class PeerLimiter:
    """Per-peer request rate and cost (token buckets) and concurrency; pure bookkeeping, time
    and costs passed in."""

    rate: float = RATE_PER_PEER
    burst: float = RATE_BURST
    max_in_flight: int = MAX_STREAMS_PER_PEER
    cost_rate: float = COST_PER_PEER
    cost_burst: float = COST_BURST
    shedding: bool = False
    """Over the node's memory budget: every costly request is refused (``conode.memguard``)."""
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, peer: str, now: float, *, costly: bool = False) -> bool:
        """Take a slot for one request from ``peer``; False if it is over a limit (``costly``:
        a request the peer's CPU budget applies to, refused while the peer is in debt)."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(self.burst, now, self.cost_burst)
        elapsed = now - bucket.updated
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.budget = min(self.cost_burst, bucket.budget + elapsed * self.cost_rate)
        bucket.updated = now
        broke = costly and (self.shedding or bucket.budget <= 0.0)
        if bucket.tokens < 1.0 or broke or bucket.in_flight >= self.max_in_flight:
            return False
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        return True

    def release(self, peer: str, cost: float = 0.0) -> None:
        """Give back the slot ``admit`` took, and charge what the request cost (CPU seconds)."""
        bucket = self._buckets.get(peer)
        if bucket is not None and bucket.in_flight > 0:
            bucket.in_flight -= 1
            bucket.budget -= cost

    def refused(self, peer: str, cost: float) -> bool:
        """Charge a refused costly request (refusing costs work too); True once the peer's debt
        passes its burst: it keeps asking while refused, and is to be disconnected."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            return False
        bucket.budget -= cost
        return bucket.budget < -self.cost_burst

    def budget(self, peer: str) -> float:
        """CPU seconds ``peer`` may still spend (as of its last request)."""
        bucket = self._buckets.get(peer)
        return self.cost_burst if bucket is None else bucket.budget


def costly(protocol: str) -> bool:
    """True if the peer's CPU budget applies to requests of ``protocol`` (a full protocol id)."""
    parts = protocol.split("/")
    return len(parts) == 5 and parts[1] == "conode" and parts[3] in COSTLY


def request_cost(cpu_seconds: float, request_bytes: int, response_bytes: int) -> float:
    """What one request cost its responder: its handler's CPU seconds, ``COST_PER_REQUEST``,
    and its bytes at ``COST_PER_BYTE``."""
    return cpu_seconds + COST_PER_REQUEST + (request_bytes + response_bytes) * COST_PER_BYTE

"""How often one peer may connect: a token bucket per peer, and the refusal it is told.

py-libp2p 0.8.1's resource manager has the same limit (10 connections a second
per peer, bursts of 50), but enforces it by closing the connection once its
handshake is done: the peer sees its connection closed, nothing more. The
transport turns py-libp2p's limit off and applies this one at the same
point, so that it can tell the refused peer why (``docs/libp2p.md``, "A
refused connection"). Pure: the caller passes the time.
"""

from __future__ import annotations

import string
from typing import Final

__all__ = [
    "RECONNECTS_PER_S",
    "RECONNECT_BURST",
    "REFUSAL_MAX",
    "ReconnectLimiter",
    "printable_refusal",
]

RECONNECTS_PER_S: Final = 10.0
"""Connections a second one peer may open, over time (py-libp2p's figure)."""
RECONNECT_BURST: Final = 50
"""Connections one peer may open at once before the rate applies (py-libp2p's figure)."""
REFUSAL_MAX: Final = 200
"""Longest refusal text sent or read, in bytes."""
_TRACKED: Final = 1024  # peers remembered; the fullest buckets are forgotten first

_PRINTABLE: Final = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


class ReconnectLimiter:
    """A token bucket per peer: ``burst`` tokens, ``per_s`` back a second, one per connection.

    Invariant: at most ``_TRACKED`` peers are remembered; a peer forgotten
    starts again with a full bucket, which is what a peer unseen for
    ``burst / per_s`` seconds has anyway.
    """

    def __init__(self, per_s: float = RECONNECTS_PER_S, burst: int = RECONNECT_BURST) -> None:
        if per_s <= 0 or burst < 1:
            raise ValueError("a reconnect limit is a positive rate and a burst of at least 1")
        self.per_s = per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, at)

    def _tokens(self, peer: str, now: float) -> float:
        tokens, at = self._buckets.get(peer, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_s)

    def admit(self, peer: str, now: float) -> bool:
        """Count a connection of ``peer`` at ``now``; False if it is over its limit."""
        tokens = self._tokens(peer, now)
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1.0, now)
        if len(self._buckets) > _TRACKED:
            fullest = max(self._buckets, key=lambda p: self._tokens(p, now))
            del self._buckets[fullest]
        return True

    def wait_s(self, peer: str, now: float) -> float:
        """Seconds until ``peer`` may connect again (0: now)."""
        return max(0.0, (1.0 - self._tokens(peer, now)) / self.per_s)

    def refusal(self, peer: str, now: float) -> str:
        """What a refused peer is told."""
        return (
            f"connecting too often (over {self.per_s:g} connections a second, "
            f"{self.burst} at once): try again in {self.wait_s(peer, now):.1f} s"
        )


def printable_refusal(data: bytes) -> str:
    """A peer's refusal text as one line of printable ASCII (its first ``REFUSAL_MAX`` bytes)."""
    text = data[:REFUSAL_MAX].decode("utf-8", "replace")
    return "".join(c if c in _PRINTABLE else "?" for c in text).strip()

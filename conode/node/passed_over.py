"""Peers passed over for a while after they failed a request, so one bad peer costs once, not always.

A witness that refuses the ``witness`` protocol, times out or drops the stream
is passed over for ``backoff_us(failures)`` (30 s, then 1, 2, 4 ... min, at
most an hour), then asked again; one that answers starts afresh. Without it
a conode peer that greets but never witnesses (a stranger's node, a broken
one) sat among a payer's nearest peers and held up every payment to that
payer by one failed request: with a node that hangs, the whole request
timeout. The dial book keeps one for hello candidates whose dial failed
(``conode.node.dialing``).

The book is pure bookkeeping (time is passed in, µs) and bounded: past
``MAX_PASSED_OVER`` peers, those whose wait is over are dropped first, then the
longest-known, so a flood of made-up peers cannot grow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["BACKOFF_BASE_US", "BACKOFF_MAX_US", "MAX_PASSED_OVER", "PassedOver", "backoff_us"]

BACKOFF_BASE_US: Final = 30_000_000
"""A peer that did not answer is passed over for 30 s, then 1, 2, 4 ... min."""
BACKOFF_MAX_US: Final = 3_600_000_000
"""... and at most an hour."""

MAX_PASSED_OVER: Final = 1_024
"""Most peers the book keeps."""


def backoff_us(failures: int) -> int:
    """How long a peer that failed ``failures`` (>= 1) times in a row is passed over."""
    return min(BACKOFF_MAX_US, BACKOFF_BASE_US << min(failures - 1, 20))


@dataclass(slots=True)
class PassedOver:
    """Which peers to pass over now, and until when (see the module)."""

    max_peers: int = MAX_PASSED_OVER
    _failures: dict[str, tuple[int, int]] = field(default_factory=dict)
    """peer -> (failures in a row, passed over until µs); in the order they first failed."""

    def failed(self, peer: str, now: int) -> None:
        """``peer`` failed a request at ``now``: pass it over for longer than the last time."""
        failures = self._failures.get(peer, (0, 0))[0] + 1
        self._failures[peer] = (failures, now + backoff_us(failures))
        if len(self._failures) > self.max_peers:
            self._shrink(now)

    def answered(self, peer: str) -> None:
        """``peer`` answered: it is asked as any other again."""
        self._failures.pop(peer, None)

    def resting(self, peer: str, now: int) -> bool:
        """Whether ``peer`` is passed over at ``now``."""
        entry = self._failures.get(peer)
        return entry is not None and now < entry[1]

    def failures(self, peer: str) -> int:
        """How many requests in a row ``peer`` failed."""
        return self._failures.get(peer, (0, 0))[0]

    def _shrink(self, now: int) -> None:
        for peer in [p for p, (_f, until) in self._failures.items() if until <= now]:
            del self._failures[peer]
        while len(self._failures) > self.max_peers:
            del self._failures[next(iter(self._failures))]

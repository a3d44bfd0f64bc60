"""Which peers a node dials, and when: bounded, backed off, and forgetful of the gone.

Two kinds of peers are dialled:

- *remembered* peers: ones that completed this network's hello with this
  node once (``NodeStore.known_peers``). One that does not answer is tried
  again after ``backoff_us(failures)`` (doubling from ``BACKOFF_BASE_US`` to
  ``BACKOFF_MAX_US``), and forgotten once it has not answered for
  ``FORGET_AFTER_US`` (seven days) since it was last seen;
- *candidates*: peers another node listed in its hello. At most
  ``MAX_CANDIDATES`` wait at a time (more offered are ignored), each is tried
  once, and it is remembered only if it completes a hello (so made-up and
  foreign peers are never stored, nor passed on). One that did not answer is
  not taken again while it is passed over (``conode.node.passed_over``: 30 s,
  doubling; a bounded book), however often hellos name it.

At most ``MAX_DIALS`` dials run at once, whatever the lists hold: a hello
listing thousands of peers, or hundreds of dead remembered peers, costs a
bounded number of sockets and never stalls the hello loop. The book is pure
bookkeeping: time is passed in (µs), the shell (``conode.node.dialer``) dials.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Final

from conode.dht.transport import PeerId
from conode.node.passed_over import BACKOFF_BASE_US, BACKOFF_MAX_US, PassedOver, backoff_us

__all__ = [
    "BACKOFF_BASE_US",
    "BACKOFF_MAX_US",
    "FORGET_AFTER_US",
    "MAX_CANDIDATES",
    "MAX_DIALS",
    "DialBook",
    "backoff_us",
    "stale",
]

MAX_DIALS: Final = 8
"""Dials in flight at once (each may hold a socket for up to the connect timeout)."""
MAX_CANDIDATES: Final = 64
"""Peers named in hellos waiting for their one dial."""
FORGET_AFTER_US: Final = 7 * 24 * 3_600_000_000
"""A remembered peer not seen for seven days, whose last dial failed, is forgotten."""


@dataclass(slots=True)
class _Tries:
    failures: int = 0
    next_at: int = 0


@dataclass(slots=True)
class DialBook:
    """The dials a node owes: remembered peers' backoff, hello candidates, dials in flight."""

    max_dials: int = MAX_DIALS
    max_candidates: int = MAX_CANDIDATES
    _tries: dict[str, _Tries] = field(default_factory=dict)
    _candidates: dict[str, list[str]] = field(default_factory=dict)
    _dialling: set[str] = field(default_factory=set)
    _unanswered: PassedOver = field(default_factory=PassedOver)
    """Candidates whose dial failed: not taken again while passed over."""

    def offer(self, peer: PeerId, addrs: Iterable[str], now: int) -> bool:
        """A peer a hello named: dial it once if there is room and it did not fail lately;
        whether it was taken."""
        if peer in self._candidates or peer in self._dialling or peer in self._tries:
            return False
        if self._unanswered.resting(peer, now):
            return False
        if len(self._candidates) >= self.max_candidates:
            return False
        self._candidates[peer] = list(addrs)
        return True

    def due(
        self,
        remembered: Iterable[tuple[str, list[str], int]],
        skip: Container[str],
        now: int,
    ) -> list[tuple[PeerId, list[str], bool]]:
        """The dials to start now, (peer, addrs, remembered?), at most the free slots: remembered
        peers whose backoff is over first, then candidates; ``skip``: connected peers and self.

        Each returned peer counts as in flight until ``done`` is called for it.
        """
        free = self.max_dials - len(self._dialling)
        out: list[tuple[PeerId, list[str], bool]] = []
        for peer, addrs, _seen in remembered:
            if len(out) >= free:
                break
            if peer in skip or peer in self._dialling or not addrs:
                continue
            tries = self._tries.get(peer)
            if tries is None or tries.next_at <= now:
                out.append((PeerId(peer), addrs, True))
        for peer in list(self._candidates):
            if len(out) >= free:
                break
            addrs = self._candidates.pop(peer)
            if peer not in skip:
                out.append((PeerId(peer), addrs, False))
        self._dialling.update(peer for peer, _a, _r in out)
        return out

    def done(self, peer: PeerId, answered: bool, now: int, *, remembered: bool) -> None:
        """A dial ended: a peer that answered starts afresh, a remembered one that did not waits
        longer (a candidate that did not answer is dropped, and passed over for a while)."""
        self._dialling.discard(peer)
        if answered:
            self._unanswered.answered(peer)
        elif not remembered:
            self._unanswered.failed(peer, now)
        if answered or not remembered:
            self._tries.pop(peer, None)
            return
        tries = self._tries.setdefault(peer, _Tries())
        tries.failures += 1
        tries.next_at = now + backoff_us(tries.failures)

    def forget(self, peer: PeerId) -> None:
        """Drop what is known of a forgotten peer."""
        self._tries.pop(peer, None)
        self._candidates.pop(peer, None)

    def failures(self, peer: str) -> int:
        """How many dials in a row ``peer`` did not answer."""
        tries = self._tries.get(peer)
        return 0 if tries is None else tries.failures

    def in_flight(self) -> int:
        """Dials running now."""
        return len(self._dialling)

    def waiting(self) -> int:
        """Candidates waiting for their dial."""
        return len(self._candidates)


def stale(seen: int, failures: int, now: int) -> bool:
    """A remembered peer to forget: not seen for ``FORGET_AFTER_US``, and its last dial failed."""
    return failures > 0 and now - seen > FORGET_AFTER_US

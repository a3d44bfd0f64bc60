"""How much a node keeps of records that arrive ahead of their chain (``pending``).

A correctly signed record ahead of its chain's next seq waits in
``pending`` while the gap is fetched. Anyone can sign such records, so what
they may make a node keep is bounded (issue 12, item 6):

- an author whose genesis this node holds may park at most
  ``PER_AUTHOR`` records, at most ``WINDOW`` seqs ahead of its chain, and
  all such authors together at most ``TOTAL``; they expire after
  ``EXPIRY_US`` (a gap that never came);
- an author whose genesis is not held (a *stranger*) shares a small pool of
  ``STRANGERS`` records, at most ``STRANGER_PER_AUTHOR`` each, that expires
  after ``STRANGER_EXPIRY_US``.

A record refused here is not lost: its chain is still fetched from the peer
that sent it (``chains``), which brings it in order. Pending records are
drained ``DRAIN_BATCH`` at a time, the store lock let go between batches.
Pure: counts and seqs in, a reason out.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DRAIN_BATCH",
    "EXPIRY_US",
    "PER_AUTHOR",
    "STRANGERS",
    "STRANGER_EXPIRY_US",
    "STRANGER_PER_AUTHOR",
    "TOTAL",
    "WINDOW",
    "refusal",
]

PER_AUTHOR: Final = 256
"""Most pending records of one author whose genesis is held."""
WINDOW: Final = 1_024
"""Furthest ahead of its chain's next seq a pending record may be."""
TOTAL: Final = 16_384
"""Most pending records in all (about 16 MiB at the largest record size seen)."""
STRANGERS: Final = 256
"""Most pending records of authors whose genesis is not held, together."""
STRANGER_PER_AUTHOR: Final = 16
"""Most pending records of one such author."""
EXPIRY_US: Final = 24 * 3_600_000_000
"""A pending record of a known author is dropped after a day."""
STRANGER_EXPIRY_US: Final = 600_000_000
"""A stranger's pending record is dropped after ten minutes."""
DRAIN_BATCH: Final = 64
"""Pending records taken in under one hold of the store lock."""


def refusal(
    *, stranger: bool, ahead: int, of_author: int, total: int, of_strangers: int
) -> str | None:
    """Why a pending record may not be kept (None: it may).

    ``ahead``: how far past its chain's next seq the record is (>= 1);
    ``of_author``, ``total``, ``of_strangers``: the pending records held now.
    """
    if ahead > WINDOW:
        return f"{ahead} seqs ahead of its chain (at most {WINDOW})"
    if total >= TOTAL:
        return f"{total} records pending in all (at most {TOTAL})"
    if stranger:
        if of_strangers >= STRANGERS:
            return f"{of_strangers} records of unknown authors pending (at most {STRANGERS})"
        if of_author >= STRANGER_PER_AUTHOR:
            return f"{of_author} records of this unknown author pending (at most {STRANGER_PER_AUTHOR})"
        return None
    if of_author >= PER_AUTHOR:
        return f"{of_author} records of this author pending (at most {PER_AUTHOR})"
    return None

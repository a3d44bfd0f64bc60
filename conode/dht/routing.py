"""Which peers are the authorities of a basis hash: the R nearest by XOR distance.

Pure: a peer's location is the blake2b-256 of its peer id, a basis's
location is its 32 raw bytes, and the R peers (this node included) whose
locations are nearest to the basis hold it. While the network has no more
than R peers, that is every peer: full replication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["authorities", "location"]


def location(peer_id: str) -> int:
    """A peer's place on the ring of 256-bit locations."""
    return int.from_bytes(hashlib.blake2b(peer_id.encode(), digest_size=32).digest(), "big")


def authorities(basis: bytes, peers: Iterable[str], replication: int) -> list[str]:
    """The ``replication`` peers nearest to ``basis`` (XOR distance), nearest first."""
    target = int.from_bytes(basis, "big")
    return sorted(set(peers), key=lambda p: (location(p) ^ target, p))[:replication]

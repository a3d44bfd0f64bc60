"""Where on the DHT's location ring a record is held: the locations of its ops (pure).

A record is one **chain op** at its author's location (the author's
activity authorities hold the whole chain, in order) and, if it is a link
whose entry names a base, one **link op** at the base's location (the base's
authorities answer ``links`` for it). There is no op at the record's own
hash: a record is found through its author, which every reference to
another chain's record names (a payment's positions, a genesis pin), or
through the peer that sent the record that needs it; holding every record a
second time at its hash would double what each node stores.

A location is the first 4 bytes, big-endian, of a hash's 32 raw bytes (an
agent key's too): the top 32 bits of the hash as a number, so the locations
``[a, b)`` are exactly the hashes whose raw bytes lie between ``a`` and
``b`` written as 4-byte prefixes (``conode.dht.arcs`` builds the ring on it).
"""

from __future__ import annotations

from typing import Final

from conode.chain.records import ActionKind, Record, link_base

__all__ = ["LOCATION_BYTES", "location", "op_locations"]

LOCATION_BYTES: Final = 4
"""A location is this many leading raw bytes of a hash, big-endian."""


def location(raw: bytes) -> int:
    """The location of a hash (or agent key) given its 32 raw bytes."""
    if len(raw) != 32:
        raise ValueError(f"a location is taken of 32 raw bytes, not {len(raw)}")
    return int.from_bytes(raw[:LOCATION_BYTES], "big")


def op_locations(record: Record) -> tuple[int, ...]:
    """The locations of ``record``'s ops: its author's, then its link base's if it names one.

    Distinct, so a link whose base sits at its author's location is one op.
    """
    found = [location(record.action.author.raw)]
    if record.action.kind is ActionKind.LINK:
        base = link_base(record.entry)
        if base is not None:
            at = location(base[1:])  # after the typed hash's kind byte
            if at != found[0]:
                found.append(at)
    return tuple(found)

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

from typing import Any, Final

from conode.chain.records import ActionKind, Record, link_base
from conode.errors import EncodingError
from conode.hashes import AgentKey, HashKind

__all__ = ["LOCATION_BYTES", "location", "named_agents", "op_locations"]

_MAX_NAMED: Final = 64
"""The most agents ``named_agents`` reports of one record (an entry names a few)."""

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


def named_agents(record: Record) -> tuple[AgentKey, ...]:
    """The agents ``record``'s entry names (typed agent keys anywhere in it), its author first.

    Where to look for what the record depends on: a payment names both
    parties, whose authorities hold their chains (a genesis, a previous
    credit); the order is the entry's, duplicates dropped, at most 64.
    """
    found = [record.action.author]
    if record.entry is None:
        return tuple(found)
    try:
        value = record.entry_value()
    except EncodingError:
        return tuple(found)
    stack: list[Any] = [value]
    while stack and len(found) < _MAX_NAMED:
        item = stack.pop()
        if type(item) is bytes:
            if len(item) == 33 and item[0] == HashKind.AGENT:
                key = AgentKey(item[1:])
                if key not in found:
                    found.append(key)
        elif type(item) is dict:
            stack.extend(reversed(list(item.values())))
        elif type(item) is list:
            stack.extend(reversed(item))
    return tuple(found)

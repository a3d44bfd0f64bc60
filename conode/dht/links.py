"""The link indexes of the DHT, the pure half: digests, pages, and what a reply may hold.

An authority of a base holds the link records at that base and answers
``links`` requests for them (``conode.node.links`` is the shell on both
sides). Here: the digest an asker and an answerer compare to learn that they
hold the same links at a base, how an answer is cut to a page, and the
checks on a reply before any of it is taken in. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conode.chain import ActionKind, Record, link_base
from conode.dht.messages import LINKS_DIGEST_SIZE, MAX_CHAIN_BATCH, RecordsPage
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import ActionHash, TypedHash

__all__ = ["Room", "check_links", "check_parts", "cut_page", "link_target", "links_digest"]


@dataclass(slots=True)
class Room:
    """What a links reply may still hold: records and bytes (it stops once past the bytes)."""

    records: int
    size: int


def links_digest(hashes: Iterable[ActionHash]) -> bytes:
    """What a ``links`` asker and responder compare to learn that they hold the same links at a
    base: a digest of the typed hashes in order (an asker holding none sends it too)."""
    data = b"".join(sorted(h.to_bytes() for h in hashes))
    return hashlib.blake2b(data, digest_size=LINKS_DIGEST_SIZE, person=b"conode-links").digest()


def cut_page(held: Sequence[tuple[ActionHash, bytes]], room: Room) -> tuple[list[bytes], bool]:
    """The blobs of ``held`` (read with one more than ``room.records``) that fit in ``room``
    (which shrinks by them), and whether more are held past them."""
    blobs: list[bytes] = []
    for _hash, blob in held[: room.records]:
        if room.size < 0:  # past the byte limit: the asker pages on
            break
        blobs.append(blob)
        room.size -= len(blob)
    room.records -= len(blobs)
    return blobs, len(blobs) < len(held)


def check_links(
    page: RecordsPage, base: TypedHash, link_type: str | None, after: ActionHash | None
) -> list[Record]:
    """The records of a ``links`` reply, each a link at ``base`` (of ``link_type``) in hash order
    after ``after``; ``RemoteProtocolError`` naming the first that is not."""
    if len(page.records) > MAX_CHAIN_BATCH:
        raise RemoteProtocolError(
            f"{len(page.records)} records, more than the {MAX_CHAIN_BATCH} asked"
        )
    records = page.read()
    last = b"" if after is None else after.raw
    want_base = base.to_bytes()
    for record in records:
        problem = None
        if record.action.kind is not ActionKind.LINK:
            problem = "is not a link"
        elif link_type is not None and record.action.entry_type != link_type:
            problem = f"is a {record.action.entry_type}, not {link_type}"
        elif link_base(record.entry) != want_base:
            problem = f"is not a link at {base.short()}"
        elif record.hash.raw <= last:
            problem = "is out of order or repeated"
        if problem is not None:  # named only then: a reply holds thousands of good ones
            raise RemoteProtocolError(f"record {record.hash.short()} {problem}")
        last = record.hash.raw
    return records


def check_parts(
    parts: Sequence[RecordsPage], bases: Sequence[TypedHash], link_type: str | None
) -> list[tuple[list[Record], bool]]:
    """The parts of a reply to a links request for ``bases``: each base's link records (as
    ``check_links`` checks them) and whether more are held there."""
    read = [
        (check_links(part, base, link_type, None), part.more)
        for base, part in zip(bases, parts, strict=True)
    ]
    total = sum(len(records) for records, _more in read)
    if total > MAX_CHAIN_BATCH:
        raise RemoteProtocolError(f"{total} records, more than the {MAX_CHAIN_BATCH} asked")
    return read


def link_target(link: Record) -> ActionHash | None:
    """The record a link points at, if its target is an action hash."""
    try:
        value = link.entry_value()
        return ActionHash.from_bytes(value["target"]) if type(value) is dict else None
    except (ValueError, KeyError, EncodingError):
        return None

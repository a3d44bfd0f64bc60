"""Limits, the request protocol and the record decoding every message shares.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Protocol, TypeVar

from conode.chain import Record
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import AgentKey

MAX_CHAIN_BATCH: Final = 2_000
"""The most records one reply holds (a chain, chains, fetch or links reply)."""
MAX_CHAIN_BYTES: Final = 2 << 20
"""A chain(s) or links reply stops adding records once past this many bytes."""
MAX_LINK_BASES: Final = 64
"""The most bases one links request may name."""
LINKS_DIGEST_SIZE: Final = 32
"""The size of a links ``have`` digest (``conode.dht.links.links_digest``)."""

Heads = dict[AgentKey, tuple[int, bytes]]
"""Chain heads by agent: (seq, the head's 32 raw hash bytes)."""

R_co = TypeVar("R_co", covariant=True)


class Request(Protocol[R_co]):
    """A request of one protocol, which reads its own reply."""

    @property
    def protocol(self) -> str:
        """The protocol's name (``conode.dht.wire``)."""

    def encode(self) -> bytes:
        """The request's wire bytes."""

    def read_reply(self, data: bytes) -> R_co:
        """The reply to this request, checked (``RemoteProtocolError`` if malformed)."""


def decode_record(blob: bytes) -> Record:
    """A record from a peer; ``RemoteProtocolError`` if its bytes are not one."""
    try:
        return Record.from_bytes(blob)
    except EncodingError as exc:
        raise RemoteProtocolError(f"a malformed record: {exc}") from exc


def _decode_records(blobs: Iterable[bytes]) -> list[Record]:
    return [decode_record(blob) for blob in blobs]


def _agent(raw: Any, what: str) -> AgentKey:
    try:
        return AgentKey.from_bytes(raw)
    except (EncodingError, TypeError) as exc:
        raise RemoteProtocolError(f"a bad {what}: {exc}") from exc

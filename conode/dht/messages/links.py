"""Links asked by base, whole or a page at a time.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from conode.chain.records import MAX_ENTRY_TYPE_LENGTH
from conode.dht import wire
from conode.dht.messages.common import (
    LINKS_DIGEST_SIZE,
    MAX_LINK_BASES,
)
from conode.dht.messages.records import RecordsPage
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import ActionHash, AgentKey, EntryHash, TypedHash

_LINK_BASES: Final = (EntryHash, ActionHash, AgentKey)
"""What a link's base may name: an entry (an anchor), a record, an agent."""


def _read_base(raw: Any) -> TypedHash:
    """A link base from the wire (33 typed-hash bytes); ``RemoteProtocolError`` otherwise."""
    for kind in _LINK_BASES:
        try:
            return kind.from_bytes(raw)
        except EncodingError:
            continue
    raise RemoteProtocolError("a link base is an entry, action or agent hash (33 bytes)")


def _read_have(raw: Any) -> bytes | None:
    """A links request's ``have``: null or a 32-byte digest; ``RemoteProtocolError`` otherwise."""
    if raw is not None and (type(raw) is not bytes or len(raw) != LINKS_DIGEST_SIZE):
        raise RemoteProtocolError("a links request's have is a 32-byte digest or nil")
    return raw


def _read_link_type(raw: Any) -> str | None:
    if raw is not None and (type(raw) is not str or not 0 < len(raw) <= MAX_ENTRY_TYPE_LENGTH):
        raise RemoteProtocolError("a links request's type is an entry type or nil")
    return raw


@dataclass(frozen=True, slots=True)
class BaseAsk:
    """One base of a links request, with the digest of the links the asker holds there."""

    base: TypedHash
    have: bytes | None


@dataclass(frozen=True, slots=True)
class LinksRequest:
    """The links at each of several bases (of one type, or any), from the start; none at a base
    where ``have`` is the digest of what the answerer holds there."""

    protocol: ClassVar[str] = wire.LINKS
    bases: tuple[BaseAsk, ...]
    link_type: str | None
    limit: int

    def encode(self) -> bytes:
        bases = [[ask.base.to_bytes(), ask.have] for ask in self.bases]
        return wire.dumps({"bases": bases, "type": self.link_type, "limit": self.limit})

    def read_reply(self, data: bytes) -> LinksReply:
        """The reply: one part per base, each checked by ``conode.dht.links.check_links``."""
        return LinksReply.decode(data, len(self.bases))


@dataclass(frozen=True, slots=True)
class LinksPageRequest:
    """The links at one base (of one type, or any) after the link ``after`` (None: the start)."""

    protocol: ClassVar[str] = wire.LINKS
    base: TypedHash
    link_type: str | None
    after: ActionHash | None
    limit: int
    have: bytes | None = None

    def encode(self) -> bytes:
        message: dict[str, Any] = {
            "base": self.base.to_bytes(),
            "type": self.link_type,
            "after": None if self.after is None else self.after.to_bytes(),
            "limit": self.limit,
        }
        if self.have is not None:
            message["have"] = self.have
        return wire.dumps(message)

    def read_reply(self, data: bytes) -> RecordsPage:
        return RecordsPage.decode(data)


def decode_links_request(data: bytes) -> LinksRequest | LinksPageRequest:
    """A links request of either form, checked."""
    message = wire.loads(data, {"limit"})
    link_type, limit = _read_link_type(message.get("type")), message["limit"]
    if type(limit) is not int or limit < 1:
        raise RemoteProtocolError("a links request takes a positive limit")
    if "bases" in message:
        return LinksRequest(_read_bases(message["bases"]), link_type, limit)
    if "base" not in message:
        raise RemoteProtocolError("a links request names its base or bases")
    base, after = _read_base(message["base"]), message.get("after")
    try:
        start = None if after is None else ActionHash.from_bytes(after)
    except (EncodingError, TypeError) as exc:
        raise RemoteProtocolError(f"a bad links request: {exc}") from exc
    return LinksPageRequest(base, link_type, start, limit, _read_have(message.get("have")))


def _read_bases(raw: Any) -> tuple[BaseAsk, ...]:
    """A links request's ``bases``: 1 to 64 ``[base, have]`` pairs."""
    if type(raw) is not list or not 0 < len(raw) <= MAX_LINK_BASES:
        raise RemoteProtocolError(f"a links request names 1 to {MAX_LINK_BASES} bases")
    pairs = []
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise RemoteProtocolError("each base of a links request is [base, have]")
        pairs.append(BaseAsk(_read_base(item[0]), _read_have(item[1])))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class LinksReply:
    """A reply to a ``LinksRequest``: one part per base, in the order asked."""

    parts: tuple[RecordsPage, ...]

    def encode(self) -> bytes:
        return wire.dumps({"indexes": [part.to_wire() for part in self.parts]})

    @classmethod
    def decode(cls, data: bytes, bases: int) -> LinksReply:
        parts = wire.loads(data, set()).get("indexes")
        if type(parts) is not list or len(parts) != bases:
            raise RemoteProtocolError(f"a links reply has one part for each of the {bases} bases")
        read = []
        for part in parts:
            if type(part) is not dict:
                raise RemoteProtocolError("a part of a links reply is a map")
            read.append(RecordsPage.from_wire(part))
        return cls(tuple(read))

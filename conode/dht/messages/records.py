"""Records: ``fetch``, ``chain`` and ``chains`` requests and their pages.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conode.chain import Record
from conode.dht import wire
from conode.dht.messages.common import (
    MAX_CHAIN_BATCH,
    _agent,
    _decode_records,
)
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import ActionHash, AgentKey


@dataclass(frozen=True, slots=True)
class Records:
    """A reply of records (their portable bytes): to ``fetch`` and ``chain``."""

    records: tuple[bytes, ...]

    def encode(self) -> bytes:
        return wire.dumps({"records": list(self.records)})

    @classmethod
    def decode(cls, data: bytes) -> Records:
        return cls(tuple(wire.bytes_list(wire.loads(data, set()), "records")))

    def read(self) -> list[Record]:
        """The records, decoded (``RemoteProtocolError`` naming the first malformed one)."""
        return _decode_records(self.records)


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """Records and whether more are held past them: a ``chains`` reply, a links reply's part."""

    records: tuple[bytes, ...]
    more: bool

    def to_wire(self) -> dict[str, Any]:
        return {"records": list(self.records), "more": self.more}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> RecordsPage:
        return cls(tuple(wire.bytes_list(message, "records")), message.get("more") is True)

    def encode(self) -> bytes:
        return wire.dumps(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> RecordsPage:
        return cls.from_wire(wire.loads(data, set()))

    def read(self) -> list[Record]:
        return _decode_records(self.records)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """Records by action hash (at most ``MAX_CHAIN_BATCH`` are read; the rest are ignored)."""

    protocol: ClassVar[str] = wire.FETCH
    hashes: tuple[ActionHash, ...]

    def encode(self) -> bytes:
        return wire.dumps({"hashes": [h.to_bytes() for h in self.hashes]})

    @classmethod
    def decode(cls, data: bytes) -> FetchRequest:
        raw = wire.bytes_list(wire.loads(data, {"hashes"}), "hashes")[:MAX_CHAIN_BATCH]
        try:
            return cls(tuple(ActionHash.from_bytes(h) for h in raw))
        except EncodingError as exc:
            raise RemoteProtocolError(str(exc)) from exc

    def read_reply(self, data: bytes) -> Records:
        return Records.decode(data)


@dataclass(frozen=True, slots=True)
class ChainRequest:
    """One chain's records from seq ``start`` on, at most ``limit``."""

    protocol: ClassVar[str] = wire.CHAIN
    author: AgentKey
    start: int
    limit: int

    def encode(self) -> bytes:
        return wire.dumps(
            {"author": self.author.to_bytes(), "from": self.start, "limit": self.limit}
        )

    @classmethod
    def decode(cls, data: bytes) -> ChainRequest:
        message = wire.loads(data, {"author", "from", "limit"})
        author = _agent(message["author"], "chain request")
        start, limit = message["from"], message["limit"]
        if not isinstance(start, int) or not isinstance(limit, int) or start < 0 or limit < 1:
            raise RemoteProtocolError("a chain request takes a seq and a positive limit")
        return cls(author, start, limit)

    def read_reply(self, data: bytes) -> Records:
        return Records.decode(data)


@dataclass(frozen=True, slots=True)
class ChainsRequest:
    """Several chains, each from its seq, in one reply of at most ``limit`` records."""

    protocol: ClassVar[str] = wire.CHAINS
    chains: tuple[tuple[AgentKey, int], ...]
    limit: int

    def encode(self) -> bytes:
        wants = [[agent.to_bytes(), seq] for agent, seq in self.chains]
        return wire.dumps({"chains": wants, "limit": self.limit})

    @classmethod
    def decode(cls, data: bytes) -> ChainsRequest:
        message = wire.loads(data, {"chains", "limit"})
        wanted, limit = message["chains"], message["limit"]
        if not isinstance(wanted, list) or not isinstance(limit, int) or limit < 1:
            raise RemoteProtocolError(
                "a chains request takes a list of chains and a positive limit"
            )
        return cls(tuple(_chain_want(item) for item in wanted), limit)

    def read_reply(self, data: bytes) -> RecordsPage:
        return RecordsPage.decode(data)


def _chain_want(item: Any) -> tuple[AgentKey, int]:
    """One ``[author, from]`` pair of a chains request."""
    if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int and item[1] >= 0):
        raise RemoteProtocolError("a chains request names each chain as [author, seq]")
    return _agent(item[0], "chains request"), item[1]

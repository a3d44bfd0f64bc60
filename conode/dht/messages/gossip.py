"""Gossip: heads, and warrants spread.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conode.dht import wire
from conode.dht.messages.common import (
    Heads,
    _agent,
)
from conode.errors import RemoteProtocolError


def _heads_wire(heads: Heads) -> list[list[Any]]:
    return [[agent.to_bytes(), seq, h] for agent, (seq, h) in heads.items()]


def _read_heads(message: dict[str, Any]) -> Heads:
    items = message.get("heads")
    if type(items) is not list:
        raise RemoteProtocolError("heads must be a list")
    heads = {}
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and type(item[1]) is int
            and type(item[2]) is bytes
        ):
            raise RemoteProtocolError("a head is [agent, seq, hash]")
        heads[_agent(item[0], "head")] = (item[1], item[2])
    return heads


@dataclass(frozen=True, slots=True)
class HeadsRequest:
    """The asker's chain heads and the hashes of the warrants it holds; ``warrants_only``: the
    asker wants warrants only (its chains are reconciliation's), so no heads come back."""

    protocol: ClassVar[str] = wire.HEADS
    heads: Heads
    warrants: tuple[bytes, ...]
    warrants_only: bool = False

    def encode(self) -> bytes:
        message: dict[str, Any] = {"heads": _heads_wire(self.heads), "warrants": list(self.warrants)}
        if self.warrants_only:
            message["only"] = "warrants"
        return wire.dumps(message)

    @classmethod
    def decode(cls, data: bytes) -> HeadsRequest:
        message = wire.loads(data, {"heads", "warrants"})
        only = message.get("only") == "warrants"
        return cls(_read_heads(message), tuple(wire.bytes_list(message, "warrants")), only)

    def read_reply(self, data: bytes) -> HeadsReply:
        return HeadsReply.decode(data)


@dataclass(frozen=True, slots=True)
class HeadsReply:
    """The answerer's chain heads and the warrants (their bytes) the asker did not name."""

    heads: Heads
    warrants: tuple[bytes, ...]

    def encode(self) -> bytes:
        return wire.dumps({"heads": _heads_wire(self.heads), "warrants": list(self.warrants)})

    @classmethod
    def decode(cls, data: bytes) -> HeadsReply:
        message = wire.loads(data, set())
        return cls(_read_heads(message), tuple(wire.bytes_list(message, "warrants")))


@dataclass(frozen=True, slots=True)
class Empty:
    """A reply that says only that the request was taken."""

    def encode(self) -> bytes:
        return wire.dumps({})

    @classmethod
    def decode(cls, data: bytes) -> Empty:
        wire.loads(data, set())
        return cls()


@dataclass(frozen=True, slots=True)
class WarrantRequest:
    """A warrant's bytes, passed on."""

    protocol: ClassVar[str] = wire.WARRANT
    warrant: bytes

    def encode(self) -> bytes:
        return wire.dumps({"warrant": self.warrant})

    @classmethod
    def decode(cls, data: bytes) -> WarrantRequest:
        raw = wire.loads(data, {"warrant"})["warrant"]
        if type(raw) is not bytes:
            raise RemoteProtocolError("a warrant is bytes")
        return cls(raw)

    def read_reply(self, data: bytes) -> Empty:
        return Empty.decode(data)

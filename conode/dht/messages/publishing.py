"""Publishing, receipts and the ``witness`` request.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from conode import encoding
from conode.chain import Record
from conode.crypto import SIG_RECEIPT, verify
from conode.dht import wire
from conode.dht.messages.common import (
    _decode_records,
    decode_record,
)
from conode.dht.messages.hello import Claim, _claims
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import ActionHash, AgentKey


def receipt_bytes(record: ActionHash, valid: bool, at: int) -> bytes:
    """What an authority signs in a receipt."""
    return encoding.encode([record.to_bytes(), valid, at])


@dataclass(frozen=True, slots=True)
class Receipt:
    """An authority's signed statement that it judged a record (valid or not) at ``at``."""

    record: ActionHash
    authority: AgentKey
    valid: bool
    at: int
    signature: bytes

    def to_wire(self) -> list[Any]:
        return [
            self.record.to_bytes(),
            self.valid,
            self.at,
            self.signature,
            self.authority.to_bytes(),
        ]

    @classmethod
    def from_wire(cls, item: Any) -> Receipt | None:
        """A receipt from the wire if it is well formed and its signature verifies, else None."""
        if not (isinstance(item, list) and len(item) == 5):
            return None
        raw_record, valid, at, signature, raw_authority = item
        try:
            record = ActionHash.from_bytes(raw_record)
            authority = AgentKey.from_bytes(raw_authority)
        except (EncodingError, TypeError):
            return None
        if type(valid) is not bool or type(at) is not int or type(signature) is not bytes:
            return None
        if not verify(authority.raw, SIG_RECEIPT, receipt_bytes(record, valid, at), signature):
            return None
        return cls(record, authority, valid, at, signature)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """Records for an authority to judge and hold."""

    protocol: ClassVar[str] = wire.PUBLISH
    records: tuple[bytes, ...]
    claims: tuple[Claim, ...] = ()
    """The hosting claims of the records' authors, for their authorities to answer ``host``."""

    def encode(self) -> bytes:
        message: dict[str, Any] = {"records": list(self.records)}
        if self.claims:
            message["claims"] = [c.to_wire() for c in self.claims]
        return wire.dumps(message)

    @classmethod
    def decode(cls, data: bytes) -> PublishRequest:
        message = wire.loads(data, {"records"})
        return cls(tuple(wire.bytes_list(message, "records")), _claims(message.get("claims") or []))

    def read(self) -> list[Record]:
        return _decode_records(self.records)

    def read_reply(self, data: bytes) -> PublishReply:
        return PublishReply.decode(data)


@dataclass(frozen=True, slots=True)
class PublishReply:
    """The authority's receipts (those malformed or not signed by their authority dropped)."""

    receipts: tuple[Receipt, ...]

    def encode(self) -> bytes:
        return wire.dumps({"receipts": [r.to_wire() for r in self.receipts]})

    @classmethod
    def decode(cls, data: bytes) -> PublishReply:
        items = wire.loads(data, set()).get("receipts") or []
        if not isinstance(items, list):
            return cls(())
        return cls(tuple(r for r in map(Receipt.from_wire, items) if r is not None))


@dataclass(frozen=True, slots=True)
class WitnessRequest:
    """A payer's record for one of its activity authorities to take in and hold at its place."""

    protocol: ClassVar[str] = wire.WITNESS
    record: bytes

    def encode(self) -> bytes:
        return wire.dumps({"record": self.record})

    @classmethod
    def decode(cls, data: bytes) -> WitnessRequest:
        raw = wire.loads(data, {"record"})["record"]
        if type(raw) is not bytes:
            raise RemoteProtocolError("a witness request carries a record's bytes")
        return cls(raw)

    def read(self) -> Record:
        return decode_record(self.record)

    def read_reply(self, data: bytes) -> WitnessReply:
        return WitnessReply.decode(data)


@dataclass(frozen=True, slots=True)
class WitnessReply:
    """The authority holds the record at its place (``receipt``), holds another record of the
    author's there (``held``), or cannot tell yet (neither)."""

    receipt: Receipt | None = None
    held: bytes | None = None

    def encode(self) -> bytes:
        if self.receipt is not None:
            return wire.dumps({"receipt": self.receipt.to_wire()})
        return wire.dumps({} if self.held is None else {"held": self.held})

    @classmethod
    def decode(cls, data: bytes) -> WitnessReply:
        message = wire.loads(data, set())
        if "receipt" in message:
            receipt = Receipt.from_wire(message["receipt"])
            if receipt is None:
                raise RemoteProtocolError("a witness receipt that does not verify")
            return cls(receipt=receipt)
        held = message.get("held")
        if held is not None and type(held) is not bytes:
            raise RemoteProtocolError("a witness's held record is bytes")
        return cls(held=held)

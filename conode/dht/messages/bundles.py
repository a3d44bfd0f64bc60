"""App bundles asked by hash.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from conode.dht import wire
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import BundleHash


@dataclass(frozen=True, slots=True)
class BundleRequest:
    """An app bundle by hash."""

    protocol: ClassVar[str] = wire.BUNDLE
    bundle: BundleHash

    def encode(self) -> bytes:
        return wire.dumps({"hash": self.bundle.to_bytes()})

    @classmethod
    def decode(cls, data: bytes) -> BundleRequest:
        message = wire.loads(data, {"hash"})
        try:
            return cls(BundleHash.from_bytes(message["hash"]))
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad bundle request: {exc}") from exc

    def read_reply(self, data: bytes) -> BundleReply:
        return BundleReply.decode(data)


@dataclass(frozen=True, slots=True)
class BundleReply:
    """The bundle's bytes, or None if the answerer does not keep it (the asker checks the hash)."""

    data: bytes | None

    def encode(self) -> bytes:
        return wire.dumps({"data": self.data})

    @classmethod
    def decode(cls, data: bytes) -> BundleReply:
        raw = wire.loads(data, set()).get("data")
        if raw is not None and type(raw) is not bytes:
            raise RemoteProtocolError("a bundle reply's data is bytes or nil")
        return cls(raw)

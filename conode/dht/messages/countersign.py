"""The ``countersign`` protocol: a session message for a hosted agent.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from conode.dht import wire
from conode.errors import EncodingError, RemoteProtocolError
from conode.hashes import AgentKey
from conode.validation import countersign as cs


@dataclass(frozen=True, slots=True)
class CountersignRequest:
    """A countersigning session message from agent ``sender`` to agent ``to``."""

    protocol: ClassVar[str] = wire.COUNTERSIGN
    sender: AgentKey
    to: AgentKey
    message: cs.Message

    def encode(self) -> bytes:
        return wire.dumps(
            {
                "from": self.sender.to_bytes(),
                "to": self.to.to_bytes(),
                "msg": cs.encode_message(self.message),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> CountersignRequest:
        message = wire.loads(data, {"from", "to", "msg"})
        try:
            sender = AgentKey.from_bytes(message["from"])
            to = AgentKey.from_bytes(message["to"])
            inner = cs.decode_message(message["msg"])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad countersigning message: {exc}") from exc
        return cls(sender, to, inner)

    def read_reply(self, data: bytes) -> CountersignReply:
        return CountersignReply.decode(data)


@dataclass(frozen=True, slots=True)
class CountersignReply:
    """The session's answer, if it has one."""

    message: cs.Message | None

    def encode(self) -> bytes:
        raw = None if self.message is None else cs.encode_message(self.message)
        return wire.dumps({"msg": raw})

    @classmethod
    def decode(cls, data: bytes) -> CountersignReply:
        raw = wire.loads(data, set()).get("msg")
        try:
            return cls(None if raw is None else cs.decode_message(raw))
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad countersigning message: {exc}") from exc

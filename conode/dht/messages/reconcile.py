"""``reconcile``: one message of a range-based set reconciliation session, and its reply.

Part of ``conode.dht.messages`` (its docstring says what a message is); pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

from conode.dht import wire
from conode.errors import RemoteProtocolError

SESSION_ID_SIZE: Final = 8
"""The size of a reconciliation session's id (the initiator's random choice)."""


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """One message of a reconciliation session (``conode.dht.reconcile``) from its initiator.

    ``session`` is the initiator's random id; ``globals`` says the session is over the
    data every node holds (the governance log) rather than over the two arcs' overlap.
    """

    protocol: ClassVar[str] = wire.RECONCILE
    session: bytes
    message: bytes
    globals: bool = False

    def encode(self) -> bytes:
        data: dict[str, Any] = {"session": self.session, "msg": self.message}
        if self.globals:
            data["set"] = "global"
        return wire.dumps(data)

    @classmethod
    def decode(cls, data: bytes) -> ReconcileRequest:
        message = wire.loads(data, {"session", "msg"})
        session, body, which = message["session"], message["msg"], message.get("set")
        if type(session) is not bytes or len(session) != SESSION_ID_SIZE:
            raise RemoteProtocolError(f"a reconciliation session id is {SESSION_ID_SIZE} bytes")
        if type(body) is not bytes:
            raise RemoteProtocolError("a reconciliation message is bytes")
        if which not in (None, "global"):
            raise RemoteProtocolError("a reconciliation set is 'global' or none")
        return cls(session, body, which == "global")

    def read_reply(self, data: bytes) -> ReconcileReply:
        return ReconcileReply.decode(data)


@dataclass(frozen=True, slots=True)
class ReconcileReply:
    """The responder's next message, or None when it is done."""

    message: bytes | None

    def encode(self) -> bytes:
        return wire.dumps({"msg": self.message})

    @classmethod
    def decode(cls, data: bytes) -> ReconcileReply:
        body = wire.loads(data, {"msg"})["msg"]
        if body is not None and type(body) is not bytes:
            raise RemoteProtocolError("a reconciliation reply is bytes or nil")
        return cls(body)

"""The built-in entry types: genesis, membership credential, payment, bill, chain migration.

Each type is a frozen dataclass with ``to_value``/``from_value`` (the one
place its shape is read). The rules that judge them are in ``credit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from conode import encoding
from conode.crypto import SIG_COUNTERSIGN, SIG_CREDENTIAL, SIGNATURE_SIZE, Signer, verify
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.validation.schema import (
    SchemaError,
    bytes_field,
    hash_field,
    int_field,
    map_value,
    opt_hash_field,
    str_field,
)

__all__ = [
    "BILL",
    "BILL_DECLINE",
    "CREDIT_FIELD",
    "DUE_FIELD",
    "MAX_ONCE",
    "ONCE_FIELD",
    "CreditMove",
    "addressee",
    "app_credit",
    "app_due",
    "app_once",
    "is_app_type",
    "EXCHANGE_OFFER",
    "MAX_AMOUNT",
    "MAX_MEMO",
    "payer_position",
    "PAYMENT",
    "ROTATION",
    "Bill",
    "BillDecline",
    "ChainClose",
    "ChainOpen",
    "Credential",
    "Genesis",
    "Payment",
    "PaymentBody",
    "Position",
    "Role",
    "Rotation",
]

PAYMENT: Final = "credit/payment"
BILL: Final = "credit/bill"
BILL_DECLINE: Final = "credit/bill-decline"
ROTATION: Final = "credit/rotation"
EXCHANGE_OFFER: Final = "exchange/offer"
"""The entry type a payment's ``offer`` names (judged by the exchange app; the engine checks its author)."""
MAX_AMOUNT: Final = 10**15
MAX_MEMO: Final = 280
_NAME_MAX: Final = 200


def _opt(h: ActionHash | None) -> bytes | None:
    return None if h is None else h.to_bytes()


class Role:
    """What an agent is in its network."""

    COOP = "coop"
    MEMBER = "member"
    FOUNDATION = "foundation"
    ALL: Final = frozenset({COOP, MEMBER, FOUNDATION})


@dataclass(frozen=True, slots=True)
class Credential:
    """A co-op's signed statement that ``member`` (named ``name``) is its member."""

    coop: AgentKey
    member: AgentKey
    name: str
    issued_at: int
    signature: bytes

    def signed_bytes(self) -> bytes:
        return encoding.encode(
            {
                "coop": self.coop.to_bytes(),
                "member": self.member.to_bytes(),
                "name": self.name,
                "issued_at": self.issued_at,
            }
        )

    @classmethod
    def issue(cls, coop: Signer, member: AgentKey, name: str, issued_at: int) -> Credential:
        """A credential signed by ``coop``."""
        unsigned = cls(AgentKey(coop.public_key), member, name, issued_at, b"")
        return cls(
            unsigned.coop,
            member,
            name,
            issued_at,
            coop.sign(SIG_CREDENTIAL, unsigned.signed_bytes()),
        )

    def signature_ok(self) -> bool:
        """True if the co-op's signature verifies."""
        return verify(self.coop.raw, SIG_CREDENTIAL, self.signed_bytes(), self.signature)

    def to_value(self) -> dict[str, Any]:
        return {
            "coop": self.coop.to_bytes(),
            "member": self.member.to_bytes(),
            "name": self.name,
            "issued_at": self.issued_at,
            "signature": self.signature,
        }

    @classmethod
    def from_value(cls, value: Any) -> Credential:
        m = map_value(value, "credential", {"coop", "member", "name", "issued_at", "signature"})
        return cls(
            hash_field(m, "coop", AgentKey),
            hash_field(m, "member", AgentKey),
            str_field(m, "name", _NAME_MAX, 1),
            int_field(m, "issued_at", 0),
            bytes_field(m, "signature", SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class Genesis:
    """The entry of an agent's genesis: network, role, named identity, membrane proof."""

    network: CharterHash
    role: str
    name: str
    registration: str | None = None
    credential: Credential | None = None
    rules: ActionHash | None = None

    def to_value(self) -> dict[str, Any]:
        identity: dict[str, Any] = {"name": self.name}
        if self.registration is not None:
            identity["registration"] = self.registration
        return {
            "network": self.network.to_bytes(),
            "role": self.role,
            "identity": identity,
            "membrane_proof": None if self.credential is None else self.credential.to_value(),
            "rules": _opt(self.rules),
        }

    @classmethod
    def from_value(cls, value: Any) -> Genesis:
        m = map_value(value, "genesis", {"network", "role", "identity", "membrane_proof", "rules"})
        role = str_field(m, "role", 16, 1)
        if role not in Role.ALL:
            raise SchemaError(f"unknown role {role!r}")
        identity = map_value(m["identity"], "identity", {"name"}, frozenset({"registration"}))
        registration = (
            str_field(identity, "registration", _NAME_MAX, 1)
            if "registration" in identity
            else None
        )
        proof = m["membrane_proof"]
        return cls(
            network=hash_field(m, "network", CharterHash),
            role=role,
            name=str_field(identity, "name", _NAME_MAX, 1),
            registration=registration,
            credential=None if proof is None else Credential.from_value(proof),
            rules=opt_hash_field(m, "rules", ActionHash),
        )


_POSITION_FIELDS: Final = {"agent", "genesis", "seq", "prev", "prev_credit", "balance_after"}
_BODY_FIELDS: Final = {
    *("network", "payer", "payee", "amount", "memo", "timestamp", "rules", "ref", "offer")
}


@dataclass(frozen=True, slots=True)
class Position:
    """One party's place in a countersigned payment: who, where it commits, and its balance after.

    ``genesis`` is the action hash of the party's chain's seq-0 record, so who
    the party is (role, co-op) is read from hash-linked data: a forked
    genesis cannot make the verdict depend on which one a peer holds.
    """

    agent: AgentKey
    genesis: ActionHash
    seq: int
    prev: ActionHash
    prev_credit: ActionHash | None
    balance_after: int

    def to_value(self) -> dict[str, Any]:
        return {
            "agent": self.agent.to_bytes(),
            "genesis": self.genesis.to_bytes(),
            "seq": self.seq,
            "prev": self.prev.to_bytes(),
            "prev_credit": _opt(self.prev_credit),
            "balance_after": self.balance_after,
        }

    @classmethod
    def from_value(cls, value: Any, what: str) -> Position:
        m = map_value(value, what, _POSITION_FIELDS)
        return cls(
            hash_field(m, "agent", AgentKey),
            hash_field(m, "genesis", ActionHash),
            int_field(m, "seq", 1),
            hash_field(m, "prev", ActionHash),
            opt_hash_field(m, "prev_credit", ActionHash),
            int_field(m, "balance_after", -MAX_AMOUNT, MAX_AMOUNT),
        )


@dataclass(frozen=True, slots=True)
class PaymentBody:
    """What both parties sign: who pays whom how much, where each commits, under which rules.

    ``ref`` names a bill it pays (or an app record); ``offer`` names the
    exchange offer (an ``exchange/offer`` by the payee) it buys from.
    """

    network: CharterHash
    payer: Position
    payee: Position
    amount: int
    memo: str
    timestamp: int
    rules: ActionHash | None
    ref: ActionHash | None = None
    offer: ActionHash | None = None

    def to_value(self) -> dict[str, Any]:
        return {
            "network": self.network.to_bytes(),
            "payer": self.payer.to_value(),
            "payee": self.payee.to_value(),
            "amount": self.amount,
            "memo": self.memo,
            "timestamp": self.timestamp,
            "rules": _opt(self.rules),
            "ref": _opt(self.ref),
            "offer": _opt(self.offer),
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes each party signs."""
        return encoding.encode(self.to_value())

    @classmethod
    def from_value(cls, value: Any) -> PaymentBody:
        m = map_value(value, "payment body", _BODY_FIELDS)
        return cls(
            network=hash_field(m, "network", CharterHash),
            payer=Position.from_value(m["payer"], "payer"),
            payee=Position.from_value(m["payee"], "payee"),
            amount=int_field(m, "amount", -MAX_AMOUNT, MAX_AMOUNT),
            memo=str_field(m, "memo", 10 * MAX_MEMO),
            timestamp=int_field(m, "timestamp", 0),
            rules=opt_hash_field(m, "rules", ActionHash),
            ref=opt_hash_field(m, "ref", ActionHash),
            offer=opt_hash_field(m, "offer", ActionHash),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PaymentBody:
        return cls.from_value(encoding.decode(data))

    def position_of(self, agent: AgentKey) -> Position | None:
        """The position of ``agent`` if it is a party."""
        if agent == self.payer.agent:
            return self.payer
        if agent == self.payee.agent:
            return self.payee
        return None


@dataclass(frozen=True, slots=True)
class Payment:
    """A countersigned payment entry: the body, as the exact bytes both parties signed, and their signatures.

    On the wire the body is a byte string inside the entry (like an action
    inside a record), so checking the signatures never re-encodes it.
    """

    body: PaymentBody
    payer_sig: bytes
    payee_sig: bytes
    body_bytes: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.body_bytes:
            object.__setattr__(self, "body_bytes", self.body.to_bytes())

    def to_value(self) -> dict[str, Any]:
        return {"body": self.body_bytes, "payer_sig": self.payer_sig, "payee_sig": self.payee_sig}

    @classmethod
    def from_value(cls, value: Any) -> Payment:
        m = map_value(value, "payment", {"body", "payer_sig", "payee_sig"})
        body_bytes = m["body"]
        if type(body_bytes) is not bytes:
            raise SchemaError("a payment's body is the byte string both parties signed")
        return cls(
            PaymentBody.from_bytes(body_bytes),
            bytes_field(m, "payer_sig", SIGNATURE_SIZE),
            bytes_field(m, "payee_sig", SIGNATURE_SIZE),
            body_bytes,
        )

    def signatures_ok(self) -> bool:
        """True if both parties signed this very body."""
        body = self.body_bytes
        return verify(self.body.payer.agent.raw, SIG_COUNTERSIGN, body, self.payer_sig) and verify(
            self.body.payee.agent.raw, SIG_COUNTERSIGN, body, self.payee_sig
        )


@dataclass(frozen=True, slots=True)
class Bill:
    """A payment request: the payee (its author) asks ``payer`` for ``amount`` until ``expires_at``.

    ``payer_genesis`` pins the payer's chain by its seq-0 record, as a payment's
    positions do, so who the payer is never depends on which genesis a peer
    holds (an agent that forked its genesis cannot get an honest payee's bill
    judged two ways).
    """

    payer: AgentKey
    payer_genesis: ActionHash
    amount: int
    memo: str
    expires_at: int
    rules: ActionHash | None

    def to_value(self) -> dict[str, Any]:
        return {
            "payer": self.payer.to_bytes(),
            "payer_genesis": self.payer_genesis.to_bytes(),
            "amount": self.amount,
            "memo": self.memo,
            "expires_at": self.expires_at,
            "rules": _opt(self.rules),
        }

    @classmethod
    def from_value(cls, value: Any) -> Bill:
        fields = {"payer", "payer_genesis", "amount", "memo", "expires_at", "rules"}
        m = map_value(value, "bill", fields)
        return cls(
            hash_field(m, "payer", AgentKey),
            hash_field(m, "payer_genesis", ActionHash),
            int_field(m, "amount", -MAX_AMOUNT, MAX_AMOUNT),
            str_field(m, "memo", 10 * MAX_MEMO),
            int_field(m, "expires_at", 0),
            opt_hash_field(m, "rules", ActionHash),
        )


@dataclass(frozen=True, slots=True)
class BillDecline:
    """The payer's refusal of a bill."""

    bill: ActionHash

    def to_value(self) -> dict[str, Any]:
        return {"bill": self.bill.to_bytes()}

    @classmethod
    def from_value(cls, value: Any) -> BillDecline:
        return cls(hash_field(map_value(value, "bill decline", {"bill"}), "bill", ActionHash))


@dataclass(frozen=True, slots=True)
class ChainClose:
    """The entry of a close-chain: who continues the chain, and the balance it carries."""

    successor: AgentKey
    last_credit: ActionHash | None
    balance: int

    def to_value(self) -> dict[str, Any]:
        return {
            "successor": self.successor.to_bytes(),
            "last_credit": _opt(self.last_credit),
            "balance": self.balance,
        }

    @classmethod
    def from_value(cls, value: Any) -> ChainClose:
        m = map_value(value, "chain close", {"successor", "last_credit", "balance"})
        return cls(
            hash_field(m, "successor", AgentKey),
            opt_hash_field(m, "last_credit", ActionHash),
            int_field(m, "balance", -MAX_AMOUNT, MAX_AMOUNT),
        )


@dataclass(frozen=True, slots=True)
class Rotation:
    """A co-op's ``credit/rotation`` entry: a member lost its key; ``new`` continues ``old``.

    ``old_head`` is the last action of the old chain the co-op vouches for;
    anything the old key signs after it is an offence.
    """

    old: AgentKey
    new: AgentKey
    old_head: ActionHash
    last_credit: ActionHash | None
    balance: int

    def to_value(self) -> dict[str, Any]:
        return {
            "old": self.old.to_bytes(),
            "new": self.new.to_bytes(),
            "old_head": self.old_head.to_bytes(),
            "last_credit": _opt(self.last_credit),
            "balance": self.balance,
        }

    @classmethod
    def from_value(cls, value: Any) -> Rotation:
        m = map_value(value, "rotation", {"old", "new", "old_head", "last_credit", "balance"})
        return cls(
            hash_field(m, "old", AgentKey),
            hash_field(m, "new", AgentKey),
            hash_field(m, "old_head", ActionHash),
            opt_hash_field(m, "last_credit", ActionHash),
            int_field(m, "balance", -MAX_AMOUNT, MAX_AMOUNT),
        )


@dataclass(frozen=True, slots=True)
class ChainOpen:
    """The entry of an open-chain: the agent continued, and the balance carried over."""

    predecessor: AgentKey
    balance: int

    def to_value(self) -> dict[str, Any]:
        return {"predecessor": self.predecessor.to_bytes(), "balance": self.balance}

    @classmethod
    def from_value(cls, value: Any) -> ChainOpen:
        m = map_value(value, "chain open", {"predecessor", "balance"})
        return cls(
            hash_field(m, "predecessor", AgentKey), int_field(m, "balance", -MAX_AMOUNT, MAX_AMOUNT)
        )


# -- what an app entry may carry for the built-in rules ------------------------------------------

CREDIT_FIELD: Final = "credit"
"""The field of an app entry that moves its author's balance (a ``CreditMove``)."""
ONCE_FIELD: Final = "once"
"""The field of an app entry holding a key its author may use once per entry type."""
MAX_ONCE: Final = 64
DUE_FIELD: Final = "due"
"""The field of an app entry that obliges its author: by this time (µs) it commits the next entry
of the same type, or it may not pay from then until it does (the activity rule ``overdue``)."""
_BUILTIN_PREFIXES: Final = ("credit/", "gov/")


@dataclass(frozen=True, slots=True)
class CreditMove:
    """An app entry's change to its author's balance, chained like a payment's position.

    ``delta`` is issued (or recovered) against the network's issuance account:
    the rules let only apps whose configuration says ``issues_credit`` do it,
    the author's balance stays within its limits, and the app's own rule says
    whether the amount is justified (a grant for an offer, say).
    """

    prev_credit: ActionHash | None
    delta: int
    balance_after: int

    def to_value(self) -> dict[str, Any]:
        return {
            "prev_credit": _opt(self.prev_credit),
            "delta": self.delta,
            "balance_after": self.balance_after,
        }

    @classmethod
    def from_value(cls, value: Any) -> CreditMove:
        # prev_credit may be absent (the SDK writes no null for an optional field) or null
        m = map_value(value, CREDIT_FIELD, {"delta", "balance_after"}, frozenset({"prev_credit"}))
        return cls(
            opt_hash_field(m, "prev_credit", ActionHash),
            int_field(m, "delta", -MAX_AMOUNT, MAX_AMOUNT),
            int_field(m, "balance_after", -MAX_AMOUNT, MAX_AMOUNT),
        )


def is_app_type(entry_type: str | None) -> bool:
    """Whether an entry type belongs to an app (not to the built-in ``credit``/``gov`` rules)."""
    return entry_type is not None and not entry_type.startswith(_BUILTIN_PREFIXES)


def app_credit(entry_type: str | None, entry: Any) -> CreditMove | None:
    """The credit move an app entry carries, or None; ``SchemaError`` if it is malformed."""
    if not is_app_type(entry_type) or not isinstance(entry, dict) or CREDIT_FIELD not in entry:
        return None
    return CreditMove.from_value(entry[CREDIT_FIELD])


def app_once(entry_type: str | None, entry: Any) -> bytes | None:
    """The once-per-author key an app entry carries (prefixed by its type), or None."""
    if not is_app_type(entry_type) or not isinstance(entry, dict) or ONCE_FIELD not in entry:
        return None
    assert entry_type is not None
    once = entry[ONCE_FIELD]
    if type(once) is not bytes or not 1 <= len(once) <= MAX_ONCE:
        raise SchemaError(f"{ONCE_FIELD} must be 1 to {MAX_ONCE} bytes")
    return entry_type.encode() + b"\x00" + once


def app_due(entry_type: str | None, entry: Any) -> int | None:
    """The time by which an app entry obliges its author to commit the next of its type, or None.

    ``SchemaError`` if it is not a timestamp.
    """
    if not is_app_type(entry_type) or not isinstance(entry, dict):
        return None
    due = entry.get(DUE_FIELD)
    if due is None:
        return None
    return int_field(entry, DUE_FIELD, 0)


def addressee(
    entry_type: str, entry: bytes | None, author_of: Callable[[ActionHash], AgentKey | None]
) -> AgentKey | None:
    """The agent a record is addressed to, whose node must see it whichever chains that node
    holds: a bill's payer, or a bill decline's payee (the author of the bill it names, as
    ``author_of`` finds it among the records held); None for any other record, a malformed
    entry or a bill not held."""
    if entry is None or entry_type not in (BILL, BILL_DECLINE):
        return None
    try:
        value = encoding.decode(entry)
        if entry_type == BILL:
            return Bill.from_value(value).payer
        return author_of(BillDecline.from_value(value).bill)
    except (EncodingError, ValueError, TypeError):  # SchemaError is an EncodingError
        return None


def payer_position(entry: bytes | None) -> tuple[AgentKey, int] | None:
    """The payer and seq a payment entry's body names; None if ``entry`` is not a well-formed
    payment (the store indexes what it holds this way and never refuses a record for it)."""
    if entry is None:
        return None
    try:
        body = Payment.from_value(encoding.decode(entry)).body
    except (EncodingError, ValueError, TypeError):  # SchemaError is an EncodingError
        return None
    return body.payer.agent, body.payer.seq

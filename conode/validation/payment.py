"""Building a countersigned payment, purely: positions from each party's activity, the body,
the signatures, and each party's record. The countersigning session (``countersign``)
carries these bytes between the parties; the rules (``credit``) judge the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from conode import encoding
from conode.chain import Action, ActionKind, Record, sign_record
from conode.crypto import SIG_COUNTERSIGN, Signer
from conode.hashes import ActionHash, AgentKey, CharterHash, EntryHash
from conode.validation.activity import Activity
from conode.validation.entries import MAX_AMOUNT, MAX_MEMO, PAYMENT, Payment, PaymentBody, Position
from conode.validation.schema import hash_field, int_field, map_value, opt_hash_field, str_field

__all__ = [
    "PaymentOffer",
    "commit_payment",
    "complete_offer",
    "completion_differs",
    "make_body",
    "offer_payment",
    "position_after",
    "sign_body",
]


def position_after(state: Activity, balance_change: int) -> Position:
    """The next position on a chain whose activity is ``state``, moving its balance by ``balance_change``."""
    head = state.head
    if head is None or state.genesis is None:
        raise ValueError("a chain needs its genesis before it can pay or be paid")
    return Position(
        agent=head.author,
        genesis=state.genesis,
        seq=head.seq + 1,
        prev=head.hash,
        prev_credit=state.last_credit,
        balance_after=state.balance + balance_change,
    )


def make_body(
    network: CharterHash,
    payer: Activity,
    payee: Activity,
    amount: int,
    *,
    timestamp: int,
    memo: str = "",
    rules: ActionHash | None = None,
    ref: ActionHash | None = None,
    offer: ActionHash | None = None,
) -> PaymentBody:
    """The body both parties sign, with each party's position taken from its activity."""
    return PaymentBody(
        network=network,
        payer=position_after(payer, -amount),
        payee=position_after(payee, +amount),
        amount=amount,
        memo=memo,
        timestamp=max(timestamp, _latest(payer), _latest(payee)),
        rules=rules,
        ref=ref,
        offer=offer,
    )


def sign_body(signer: Signer, body: PaymentBody) -> bytes:
    """One party's countersignature over the body."""
    return signer.sign(SIG_COUNTERSIGN, body.to_bytes())


def commit_payment(signer: Signer, payment: Payment) -> Record:
    """The record that commits ``payment`` on ``signer``'s chain, at the position fixed in it."""
    agent = AgentKey(signer.public_key)
    position = payment.body.position_of(agent)
    if position is None:
        raise ValueError("the signer is not a party to this payment")
    entry = encoding.encode(payment.to_value())
    action = Action(
        kind=ActionKind.CREATE,
        author=agent,
        seq=position.seq,
        prev=position.prev,
        timestamp=payment.body.timestamp,
        entry_type=PAYMENT,
        entry_hash=EntryHash.of(entry),
    )
    return sign_record(signer, action, entry)


def _latest(state: Activity) -> int:
    return 0 if state.head is None else state.head.timestamp


@dataclass(frozen=True, slots=True)
class PaymentOffer:
    """The payer's half of a payment body: what it offers before the payee fills in its position.

    Its ``offer`` field is the body's: the exchange offer the payment buys from, if any.
    """

    network: CharterHash
    payer: Position
    payee: AgentKey
    amount: int
    memo: str
    timestamp: int
    rules: ActionHash | None
    ref: ActionHash | None
    offer: ActionHash | None = None

    def to_bytes(self) -> bytes:
        return encoding.encode(
            {
                "network": self.network.to_bytes(),
                "payer": self.payer.to_value(),
                "payee": self.payee.to_bytes(),
                "amount": self.amount,
                "memo": self.memo,
                "timestamp": self.timestamp,
                "rules": None if self.rules is None else self.rules.to_bytes(),
                "ref": None if self.ref is None else self.ref.to_bytes(),
                "offer": None if self.offer is None else self.offer.to_bytes(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PaymentOffer:
        """Read an offer; ``EncodingError`` (a ``SchemaError``) if malformed."""
        fields = {"network", "payer", "payee", "amount", "memo", "timestamp", "rules"}
        m = map_value(encoding.decode(data), "payment offer", fields | {"ref", "offer"})
        return cls(
            network=hash_field(m, "network", CharterHash),
            payer=Position.from_value(m["payer"], "payer"),
            payee=hash_field(m, "payee", AgentKey),
            amount=int_field(m, "amount", 1, MAX_AMOUNT),
            memo=str_field(m, "memo", MAX_MEMO),
            timestamp=int_field(m, "timestamp", 0),
            rules=opt_hash_field(m, "rules", ActionHash),
            ref=opt_hash_field(m, "ref", ActionHash),
            offer=opt_hash_field(m, "offer", ActionHash),
        )


def offer_payment(
    network: CharterHash,
    payer: Activity,
    payee: AgentKey,
    amount: int,
    *,
    timestamp: int,
    memo: str = "",
    rules: ActionHash | None = None,
    ref: ActionHash | None = None,
    offer: ActionHash | None = None,
) -> PaymentOffer:
    """The payer's offer, its position taken from its activity (under the session's lock)."""
    return PaymentOffer(
        network=network,
        payer=position_after(payer, -amount),
        payee=payee,
        amount=amount,
        memo=memo,
        timestamp=max(timestamp, _latest(payer)),
        rules=rules,
        ref=ref,
        offer=offer,
    )


def complete_offer(offer: PaymentOffer, payee: Activity) -> PaymentBody | str:
    """The whole body, with the payee's position from its activity; or why the payee cannot sign."""
    head = payee.head
    if head is None or head.author != offer.payee:
        return "the payee's chain is not held here"
    if head.timestamp > offer.timestamp:
        return "the offer is dated before the payee's last action (a clock behind?)"
    return PaymentBody(
        network=offer.network,
        payer=offer.payer,
        payee=position_after(payee, +offer.amount),
        amount=offer.amount,
        memo=offer.memo,
        timestamp=offer.timestamp,
        rules=offer.rules,
        ref=offer.ref,
        offer=offer.offer,
    )


def completion_differs(offer: PaymentOffer, body: PaymentBody) -> str | None:
    """Why ``body`` is not a completion of ``offer`` (None if it is)."""
    same = (
        body.network == offer.network
        and body.payer == offer.payer
        and body.payee.agent == offer.payee
        and body.amount == offer.amount
        and body.memo == offer.memo
        and body.timestamp == offer.timestamp
        and body.rules == offer.rules
        and body.ref == offer.ref
        and body.offer == offer.offer
    )
    return None if same else "the completed body changes what was offered"

"""Building a countersigned payment, purely: positions from each party's activity, the body,
the signatures, and each party's record. The countersigning session (``countersign``)
carries these bytes between the parties; the rules (``credit``) judge the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from conode import encoding
from conode.chain import Action, ActionKind, Record, sign_record
from conode.crypto import SIG_ACTION, SIG_COUNTERSIGN, Signer, verify
from conode.errors import EncodingError
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
    "payer_record",
    "payer_signature_in",
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


def payer_record(signer: Signer, body: bytes, payer_sig: bytes, payee_sig: bytes) -> bytes:
    """The payer's chain record of the payment, in portable form (what a Complete carries):
    deterministic, so a payer that restarted sends the very same bytes."""
    payment = Payment(PaymentBody.from_bytes(body), payer_sig, payee_sig, body)
    return commit_payment(signer, payment).to_bytes()


def payer_signature_in(body: bytes, record: bytes) -> bytes | None:
    """The payer's countersignature, if ``record`` is the payer's own validly signed record of
    the payment ``body`` at the payer's position in it (seq, prev, time); else None.

    What a payee checks before it has the record witnessed: the record is the payer's act at
    that very position, so the witnesses can hold it and refuse any other there.
    """
    try:
        held = Record.from_bytes(record)
        parsed = PaymentBody.from_bytes(body)
        if held.entry is None or EntryHash.of(held.entry) != held.action.entry_hash:
            return None
        payment = Payment.from_value(held.entry_value())
    except (EncodingError, TypeError, ValueError):
        return None
    action, payer = held.action, parsed.payer
    same_place = (
        action.author == payer.agent
        and action.seq == payer.seq
        and action.prev == payer.prev
        and action.kind is ActionKind.CREATE
        and action.entry_type == PAYMENT
        and action.timestamp == parsed.timestamp
        and payment.body_bytes == body
    )
    if not same_place:
        return None
    if not verify(payer.agent.raw, SIG_ACTION, held.action_bytes, held.signature):
        return None
    return payment.payer_sig


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


def complete_offer(
    offer: PaymentOffer, payee: Activity, *, tolerance: int = 0
) -> PaymentBody | str:
    """The whole body, with the payee's position from its activity; or why the payee cannot sign.

    The body's timestamp is the offer's, or the payee's last action's if that is later by at
    most ``tolerance`` (the payee's clock runs ahead of the payer's: both chains' timestamps
    must not go backwards, and the payer accepts a body dated that much after its offer).
    """
    head = payee.head
    if head is None or head.author != offer.payee:
        return "the payee's chain is not held here"
    timestamp = max(offer.timestamp, head.timestamp)
    if timestamp - offer.timestamp > tolerance:
        return "the offer is dated before the payee's last action (a clock behind?)"
    return PaymentBody(
        network=offer.network,
        payer=offer.payer,
        payee=position_after(payee, +offer.amount),
        amount=offer.amount,
        memo=offer.memo,
        timestamp=timestamp,
        rules=offer.rules,
        ref=offer.ref,
        offer=offer.offer,
    )


def completion_differs(
    offer: PaymentOffer, body: PaymentBody, *, tolerance: int = 0
) -> str | None:
    """Why ``body`` is not a completion of ``offer`` (None if it is); the payee may date the
    body up to ``tolerance`` after the offer, never before."""
    same = (
        body.network == offer.network
        and body.payer == offer.payer
        and body.payee.agent == offer.payee
        and body.amount == offer.amount
        and body.memo == offer.memo
        and offer.timestamp <= body.timestamp <= offer.timestamp + tolerance
        and body.rules == offer.rules
        and body.ref == offer.ref
        and body.offer == offer.offer
    )
    return None if same else "the completed body changes what was offered"

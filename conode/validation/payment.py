"""Building a countersigned payment, purely: positions from each party's activity, the body,
the signatures, and each party's record. The countersigning session (``countersign``)
carries these bytes between the parties; the rules (``credit``) judge the result.
"""

from __future__ import annotations

from conode import encoding
from conode.chain import Action, ActionKind, Record, sign_record
from conode.crypto import SIG_COUNTERSIGN, Signer
from conode.hashes import ActionHash, AgentKey, CharterHash, EntryHash
from conode.validation.activity import Activity
from conode.validation.entries import PAYMENT, Payment, PaymentBody, Position

__all__ = ["commit_payment", "make_body", "position_after", "sign_body"]


def position_after(state: Activity, balance_change: int) -> Position:
    """The next position on a chain whose activity is ``state``, moving its balance by ``balance_change``."""
    head = state.head
    if head is None:
        raise ValueError("a chain needs its genesis before it can pay or be paid")
    return Position(
        agent=head.author,
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

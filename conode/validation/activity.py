"""Activity rules: what an agent's chain must satisfy as a whole, checked as an O(1) fold.

An agent-activity authority (and our own store) keeps an ``Activity`` per
chain and folds each new record into it with ``step``. The fold needs only
the records themselves, so every peer that folds the same chain reaches the
same state and the same first offence:

- the chain rules (``conode.chain.check_append``);
- a payment's position for the author names this chain's genesis (the
  seq-0 record it keeps), so who the author is in the payment is pinned by
  hash and judged the same on the counterparty's record of it;
- every credit-moving record (a payment, or an app entry's ``credit`` move)
  names the chain's previous credit action (``prev_credit``), and its
  balance follows from the kept balance;
- a close-chain carries exactly the kept balance and last credit action;
- a member's vote pins this chain's genesis, as a payment's position does;
- a co-op (or member) votes at most once on a proposal;
- a bill (or a Foundation disbursement) is paid at most once by its payer;
- a bill is settled once: its payer does not decline a bill it paid, pay a
  bill it declined, or decline one twice (both records are on the payer's
  chain, so the fold sees them in order whatever a peer holds);
- an app entry's ``once`` key is used at most once per author and type (one
  poll per item, one re-estimate per offer and month), a rule no record's
  own dependencies could show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from conode import encoding
from conode.chain import ActionKind, ChainHead, Record, check_append
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import (
    BILL_DECLINE,
    PAYMENT,
    BillDecline,
    ChainClose,
    ChainOpen,
    Payment,
    app_credit,
    app_once,
    is_app_type,
)
from conode.validation.governance import VOTE, Vote
from conode.validation.schema import SchemaError, int_field, list_field, map_value, opt_hash_field
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = ["Activity", "fold_chain", "step"]


@dataclass(frozen=True, slots=True)
class Activity:
    """Where a chain stands: its genesis and head, last credit action and balance, what it has used up.

    ``genesis`` (the action hash of the chain's seq-0 record) is set exactly when ``head`` is.
    """

    head: ChainHead | None = None
    genesis: ActionHash | None = None
    last_credit: ActionHash | None = None
    balance: int = 0
    votes: frozenset[ActionHash] = frozenset()
    bills_paid: frozenset[ActionHash] = frozenset()
    bills_declined: frozenset[ActionHash] = frozenset()
    """The bills this chain's author declined (``credit/bill-decline``)."""
    used: frozenset[bytes] = frozenset()
    """The once-per-author keys its app entries used (``entries.app_once``)."""

    @property
    def author(self) -> AgentKey | None:
        return None if self.head is None else self.head.author

    def to_bytes(self) -> bytes:
        """Everything but the head (which the store keeps in its own columns), canonically."""
        return encoding.encode(
            {
                "genesis": None if self.genesis is None else self.genesis.to_bytes(),
                "last_credit": None if self.last_credit is None else self.last_credit.to_bytes(),
                "balance": self.balance,
                "votes": sorted(v.to_bytes() for v in self.votes),
                "bills_paid": sorted(b.to_bytes() for b in self.bills_paid),
                # written only once a key is used, so states kept before apps used keys still read
                **({"used": sorted(self.used)} if self.used else {}),
                # likewise written only once a bill is declined (store schema v7 fills it in)
                **(
                    {"bills_declined": sorted(b.to_bytes() for b in self.bills_declined)}
                    if self.bills_declined
                    else {}
                ),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, head: ChainHead | None) -> Activity:
        """The state kept by ``to_bytes``, with its head put back."""
        fields = {"genesis", "last_credit", "balance", "votes", "bills_paid"}
        optional = frozenset({"used", "bills_declined"})
        m = map_value(encoding.decode(data), "activity", fields, optional)
        used = list_field(m, "used", 1 << 20) if "used" in m else []
        if any(type(key) is not bytes for key in used) or ("used" in m and not used):
            raise SchemaError("used is a non-empty list of keys when present")
        declined = list_field(m, "bills_declined", 1 << 20) if "bills_declined" in m else []
        if "bills_declined" in m and not declined:
            raise SchemaError("bills_declined is a non-empty list when present")
        return cls(
            head=head,
            genesis=opt_hash_field(m, "genesis", ActionHash),
            last_credit=opt_hash_field(m, "last_credit", ActionHash),
            balance=int_field(m, "balance"),
            votes=frozenset(ActionHash.from_bytes(v) for v in list_field(m, "votes", 1 << 20)),
            bills_paid=frozenset(
                ActionHash.from_bytes(b) for b in list_field(m, "bills_paid", 1 << 20)
            ),
            bills_declined=frozenset(ActionHash.from_bytes(b) for b in declined),
            used=frozenset(used),
        )


def step(state: Activity, record: Record) -> tuple[Activity, Verdict]:
    """Fold ``record`` into ``state``: the new state, or the old one with the offence."""
    violation = check_append(state.head, record)
    if violation is not None:
        return state, Invalid(violation.rule, violation.reason)
    try:
        return _step(state, record)
    except (SchemaError, EncodingError, ValueError) as exc:
        return state, Invalid("schema", str(exc))


def _step(state: Activity, record: Record) -> tuple[Activity, Verdict]:
    action = record.action
    moved = replace(state, head=ChainHead.after(record))
    if action.kind is ActionKind.GENESIS:
        return replace(moved, genesis=record.hash), VALID
    if action.kind is ActionKind.OPEN_CHAIN:
        opened = ChainOpen.from_value(record.entry_value())
        return replace(moved, last_credit=record.hash, balance=opened.balance), VALID
    if action.kind is ActionKind.CLOSE_CHAIN:
        close = ChainClose.from_value(record.entry_value())
        if (close.last_credit, close.balance) != (state.last_credit, state.balance):
            return state, Invalid(
                "prev-credit", f"the close carries {close.balance}, the chain holds {state.balance}"
            )
        return moved, VALID
    if record.entry is None:
        return moved, VALID
    if is_app_type(action.entry_type):
        return _step_app(state, moved, record)
    if action.kind is not ActionKind.CREATE:
        return moved, VALID
    if action.entry_type == PAYMENT:
        body = Payment.from_value(record.entry_value()).body
        position = body.position_of(action.author)
        if position is None:
            return state, Invalid("attribution", "the author is not a party to the payment")
        if position.genesis != state.genesis:
            return state, Invalid(
                "genesis", "the author's position names another genesis than its chain's"
            )
        if position.prev_credit != state.last_credit:
            return state, Invalid(
                "prev-credit", "the payment does not follow the chain's previous credit action"
            )
        sign = -1 if position is body.payer else +1
        if position.balance_after != state.balance + sign * body.amount:
            return state, Invalid(
                "balance", f"the balance after does not follow from {state.balance}"
            )
        bills = state.bills_paid
        if body.ref is not None and position is body.payer:
            if body.ref in bills:
                return state, Invalid("paid-once", "this bill or disbursement was already paid")
            if body.ref in state.bills_declined:
                return state, Invalid("bill-settled", "this bill was declined: it cannot be paid")
            bills = bills | {body.ref}
        return replace(
            moved, last_credit=record.hash, balance=position.balance_after, bills_paid=bills
        ), VALID
    if action.entry_type == BILL_DECLINE:
        bill = BillDecline.from_value(record.entry_value()).bill
        if bill in state.bills_paid:
            return state, Invalid("bill-settled", "this bill was paid: it cannot be declined")
        if bill in state.bills_declined:
            return state, Invalid("bill-settled", "this bill was already declined")
        return replace(moved, bills_declined=state.bills_declined | {bill}), VALID
    if action.entry_type == VOTE:
        vote = Vote.from_value(record.entry_value())
        if vote.genesis is not None and vote.genesis != state.genesis:
            return state, Invalid("genesis", "the vote pins another genesis than its chain's")
        if vote.proposal in state.votes:
            return state, Invalid("double-vote", "this voter already voted on the proposal")
        return replace(moved, votes=state.votes | {vote.proposal}), VALID
    return moved, VALID


def _step_app(state: Activity, moved: Activity, record: Record) -> tuple[Activity, Verdict]:
    """An app entry: a once-per-author key used at most once, a credit move chained to the last."""
    entry = record.entry_value()
    action = record.action
    used = state.used
    once = app_once(action.entry_type, entry)
    if once is not None:
        if once in used:
            return state, Invalid("duplicate", f"the author already made this {action.entry_type}")
        used = used | {once}
    move = app_credit(action.entry_type, entry)
    if move is None:
        return replace(moved, used=used), VALID
    if move.prev_credit != state.last_credit:
        return state, Invalid(
            "prev-credit", "the credit move does not follow the chain's previous credit action"
        )
    if move.balance_after != state.balance + move.delta:
        return state, Invalid("balance", f"the balance after does not follow from {state.balance}")
    return replace(
        moved, last_credit=record.hash, balance=move.balance_after, used=used
    ), VALID


def fold_chain(
    records: Iterable[Record], state: Activity | None = None
) -> tuple[Activity, Invalid | None, int]:
    """Fold a whole chain: the final state, the first offence (or None), and where it is."""
    current = state or Activity()
    for position, record in enumerate(records):
        current, verdict = step(current, record)
        if isinstance(verdict, Invalid):
            return current, verdict, position
    return current, None, -1

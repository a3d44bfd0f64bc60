"""Activity rules: what an agent's chain must satisfy as a whole, checked as an O(1) fold.

An agent-activity authority (and our own store) keeps an ``Activity`` per
chain and folds each new record into it with ``step``. The fold needs only
the records themselves, so every peer that folds the same chain reaches the
same state and the same first offence:

- the chain rules (``conode.chain.check_append``);
- every credit-moving record names the chain's previous credit action
  (``prev_credit``), and its balance follows from the kept balance;
- a close-chain carries exactly the kept balance and last credit action;
- a co-op votes at most once on a proposal;
- a bill is paid at most once by its payer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from conode import encoding
from conode.chain import ActionKind, ChainHead, Record, check_append
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import PAYMENT, ChainClose, ChainOpen, Payment
from conode.validation.governance import VOTE, Vote
from conode.validation.schema import SchemaError, int_field, list_field, map_value, opt_hash_field
from conode.validation.verdict import VALID, Invalid, Verdict

__all__ = ["Activity", "fold_chain", "step"]


@dataclass(frozen=True, slots=True)
class Activity:
    """Where a chain stands: its head, its last credit action and balance, what it has used up."""

    head: ChainHead | None = None
    last_credit: ActionHash | None = None
    balance: int = 0
    votes: frozenset[ActionHash] = frozenset()
    bills_paid: frozenset[ActionHash] = frozenset()

    @property
    def author(self) -> AgentKey | None:
        return None if self.head is None else self.head.author

    def to_bytes(self) -> bytes:
        """Everything but the head (which the store keeps in its own columns), canonically."""
        return encoding.encode(
            {
                "last_credit": None if self.last_credit is None else self.last_credit.to_bytes(),
                "balance": self.balance,
                "votes": sorted(v.to_bytes() for v in self.votes),
                "bills_paid": sorted(b.to_bytes() for b in self.bills_paid),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, head: ChainHead | None) -> Activity:
        """The state kept by ``to_bytes``, with its head put back."""
        m = map_value(
            encoding.decode(data), "activity", {"last_credit", "balance", "votes", "bills_paid"}
        )
        return cls(
            head=head,
            last_credit=opt_hash_field(m, "last_credit", ActionHash),
            balance=int_field(m, "balance"),
            votes=frozenset(ActionHash.from_bytes(v) for v in list_field(m, "votes", 1 << 20)),
            bills_paid=frozenset(
                ActionHash.from_bytes(b) for b in list_field(m, "bills_paid", 1 << 20)
            ),
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
    if action.kind is not ActionKind.CREATE or record.entry is None:
        return moved, VALID
    if action.entry_type == PAYMENT:
        body = Payment.from_value(record.entry_value()).body
        position = body.position_of(action.author)
        if position is None:
            return state, Invalid("attribution", "the author is not a party to the payment")
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
                return state, Invalid("bill", "this bill was already paid")
            bills = bills | {body.ref}
        return replace(
            moved, last_credit=record.hash, balance=position.balance_after, bills_paid=bills
        ), VALID
    if action.entry_type == VOTE:
        proposal = Vote.from_value(record.entry_value()).proposal
        if proposal in state.votes:
            return state, Invalid("double-vote", "this co-op already voted on the proposal")
        return replace(moved, votes=state.votes | {proposal}), VALID
    return moved, VALID


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

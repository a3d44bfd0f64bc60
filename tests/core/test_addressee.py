"""Which agent a record is addressed to (``entries.addressee``): the agent whose node must see it
whichever chains that node holds, so that a bill reaches its payer and its answer its payee; and
the payer position read from a peer's payment before it is judged."""

from __future__ import annotations

from conode import encoding
from conode.hashes import ActionHash, AgentKey
from conode.validation.entries import (
    BILL,
    BILL_DECLINE,
    PAYMENT,
    Bill,
    BillDecline,
    addressee,
    payer_position,
)

PAYEE = AgentKey(b"\x01" * 32)
PAYER = AgentKey(b"\x02" * 32)
BILL_HASH = ActionHash(b"\x03" * 32)


def held(h: ActionHash) -> AgentKey | None:
    """The author of the one bill held: the payee's."""
    return PAYEE if h == BILL_HASH else None


def test_a_bill_is_addressed_to_its_payer() -> None:
    bill = Bill(PAYER, ActionHash(b"\x04" * 32), 200, "eggs", 10**9, None)
    assert addressee(BILL, encoding.encode(bill.to_value()), held) == PAYER


def test_a_decline_is_addressed_to_the_payee_of_the_bill_it_names_if_that_bill_is_held() -> None:
    assert addressee(BILL_DECLINE, encoding.encode(BillDecline(BILL_HASH).to_value()), held) == PAYEE
    other = BillDecline(ActionHash(b"\x05" * 32))
    assert addressee(BILL_DECLINE, encoding.encode(other.to_value()), held) is None


def test_other_records_and_malformed_entries_are_addressed_to_nobody() -> None:
    bill = Bill(PAYER, ActionHash(b"\x04" * 32), 200, "eggs", 10**9, None)
    assert addressee(PAYMENT, encoding.encode(bill.to_value()), held) is None
    assert addressee(BILL, b"\xff\x00", held) is None
    assert addressee(BILL, encoding.encode({"payer": b"short"}), held) is None
    assert addressee(BILL, None, held) is None


def test_a_malformed_payment_entry_names_no_payer_position_rather_than_raising() -> None:
    # a peer's record is asked its payer's position before it is judged (the payer's
    # authorities check it for equivocation): malformed bytes answer None, not an error
    assert payer_position(b"\xff\x00") is None
    assert payer_position(encoding.encode({"body": 1})) is None

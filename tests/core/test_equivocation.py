"""Equivocation by a payer is provable from two records, and only a payer's signature binds.

The attack of a modified node: the payer countersigns its one chain position over to a
payee (who commits its side) and then puts something else at that position, or signs the
same position over to another payee. The payee's record carries the payer's signature on
a body naming that position; with any other record of the payer's there, anyone can check
the warrant.
"""

from __future__ import annotations

import dataclasses

from conode.chain import ActionKind, author_record
from conode.crypto import Signer
from conode.testing.ledger import Ledger
from conode.validation.charter import Limits
from conode.validation.entries import Payment
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.verdict import Invalid, Valid
from conode.validation.warrants import Warrant, check_warrant, equivocates

ISSUER = Signer(bytes([9]) * 32)


def two_payees_at_one_position() -> tuple[Ledger, Payment, Payment]:
    """The payer signs payments to two payees from the same position (neither committed)."""
    ledger = Ledger(member_limits=Limits(500, 10_000))
    payer = ledger["coop0-m0"]
    bodies = [
        make_body(
            ledger.charter.network_id, payer.activity, ledger[payee].activity, 400,
            timestamp=ledger.now(),
        )
        for payee in ("coop0-m1", "coop1-m0")
    ]  # fmt: skip
    payments = [
        Payment(body, sign_body(payer.signer, body), sign_body(ledger[name].signer, body))
        for body, name in zip(bodies, ("coop0-m1", "coop1-m0"), strict=True)
    ]
    return ledger, payments[0], payments[1]


def test_a_payees_record_and_another_payer_record_at_that_seq_prove_equivocation() -> None:
    ledger, first, second = two_payees_at_one_position()
    payee_record = commit_payment(ledger["coop0-m1"].signer, first)
    payer_other = commit_payment(ledger["coop0-m0"].signer, second)
    assert equivocates(payer_other, payee_record)
    warrant = Warrant.issue(
        ISSUER, "equivocation", ledger["coop0-m0"].key, (payer_other, payee_record), ledger.now()
    )
    decoded = Warrant.from_bytes(warrant.to_bytes())
    assert isinstance(check_warrant(decoded, ledger.engine, ledger.held), Valid)


def test_a_chain_moved_past_the_position_with_another_kind_of_record_is_equivocation() -> None:
    ledger, first, _ = two_payees_at_one_position()
    payer = ledger["coop0-m0"]
    payee_record = commit_payment(ledger["coop0-m1"].signer, first)
    note = author_record(
        payer.signer, payer.activity.head, kind=ActionKind.CREATE, timestamp=ledger.now(),
        entry={"text": "something else"}, entry_type="note",
    )  # fmt: skip
    assert note.action.seq == first.body.payer.seq
    assert equivocates(note, payee_record)


def test_the_payers_own_record_of_the_payment_is_not_equivocation() -> None:
    ledger, first, _ = two_payees_at_one_position()
    payer_record = commit_payment(ledger["coop0-m0"].signer, first)
    payee_record = commit_payment(ledger["coop0-m1"].signer, first)
    assert not equivocates(payer_record, payee_record)
    warrant = Warrant.issue(
        ISSUER, "equivocation", payer_record.action.author, (payer_record, payee_record), 1
    )
    verdict = check_warrant(warrant, ledger.engine, ledger.held)
    assert isinstance(verdict, Invalid) and verdict.rule == "warrant"


def test_a_payees_signature_alone_does_not_bind_it() -> None:
    """A payee signs first; if the payer then abandons the body, the payee may use its position."""
    ledger, first, _ = two_payees_at_one_position()
    payee = ledger["coop0-m1"]
    payee_record_of_first = commit_payment(payee.signer, first)
    other = author_record(
        payee.signer, payee.activity.head, kind=ActionKind.CREATE, timestamp=ledger.now(),
        entry={"text": "moved on"}, entry_type="note",
    )  # fmt: skip
    assert other.action.seq == first.body.payee.seq
    assert not equivocates(other, payee_record_of_first)


def test_a_forged_payment_record_cannot_frame_an_honest_payer() -> None:
    """Whatever the other record's action claims, only the payer's countersignature over a body
    at that seq, with a different entry, is evidence."""
    ledger, first, second = two_payees_at_one_position()
    payer = ledger["coop0-m0"]
    honest = commit_payment(payer.signer, first)
    # a forger carries the honest payment's entry under an action that names the second's hash
    payee_of_second = commit_payment(ledger["coop1-m0"].signer, second)
    framed = dataclasses.replace(payee_of_second, entry=honest.entry)
    assert framed.action.entry_hash != honest.action.entry_hash
    assert not equivocates(honest, framed)
    # and a body the payer did not sign (its signature replaced by the payee's) is no evidence
    unsigned = Payment(second.body, second.payee_sig, second.payee_sig, second.body_bytes)
    assert not equivocates(honest, commit_payment(ledger["coop1-m0"].signer, unsigned))
    # while the genuine second payee's record is
    assert equivocates(honest, payee_of_second)


def test_the_audit_of_all_chains_names_the_payer_that_spent_its_position_twice() -> None:
    """The attack before witnesses: two payees committed, the payer's chain holds only one.
    The books say who did it (not only "zero sum: NO"): the payer, for equivocation; the
    payment only the payee holds is not money, so what is matched still sums to zero."""
    ledger, first, second = two_payees_at_one_position()
    payer = ledger["coop0-m0"]
    payee_record = commit_payment(ledger["coop0-m1"].signer, first)
    assert isinstance(ledger.commit("coop0-m1", payee_record), Valid)
    assert isinstance(ledger.commit_both(second), Valid)  # the payer's chain holds the second
    report = ledger.audit()
    (found,) = [v for v in report.violations if v.rule == "equivocation"]
    assert found.agent == payer.key and found.seq == first.body.payer.seq
    assert payee_record.hash.short() in found.reason
    assert [(u.agent, u.seq, u.delta) for u in report.unmatched] == [
        (ledger["coop0-m1"].key, payee_record.action.seq, 400)
    ]
    assert report.zero_sum and not report.ok
    # counted as money, the books would be 400 over: that is what the unmatched record is
    assert sum(report.balances.values()) == 400


def test_the_audit_names_the_payer_of_a_payment_its_payee_never_took() -> None:
    """The payer's chain holds a payment the payee's does not (the payee moved on): not money;
    the payer is named (its position was found taken elsewhere, or the payee's operator forced
    its signed position free: the reason says both)."""
    ledger, first, _ = two_payees_at_one_position()
    payee = ledger["coop0-m1"]
    assert isinstance(ledger.commit("coop0-m0", commit_payment(ledger["coop0-m0"].signer, first)), Valid)
    moved_on = author_record(
        payee.signer, payee.activity.head, kind=ActionKind.CREATE, timestamp=ledger.now(),
        entry={"text": "elsewhere"}, entry_type="note",
    )  # fmt: skip
    payee.chain.append(moved_on)  # held as the payee's next record (the rules aside)
    report = ledger.audit()
    (half,) = [v for v in report.violations if v.rule == "half-payment"]
    assert (half.agent, half.seq) == (ledger["coop0-m0"].key, first.body.payer.seq)
    assert payee.key.short() in half.reason and "forced" in half.reason
    assert report.zero_sum


def test_a_payment_the_other_chain_does_not_reach_yet_is_in_flight_not_a_finding() -> None:
    ledger, first, _ = two_payees_at_one_position()
    assert isinstance(ledger.commit("coop0-m0", commit_payment(ledger["coop0-m0"].signer, first)), Valid)
    report = ledger.audit()
    assert [u.finding for u in report.unmatched] == [None]
    assert report.zero_sum and not [v for v in report.violations if v.rule == "half-payment"]


def test_an_honest_network_audits_without_unmatched_payments() -> None:
    ledger = Ledger()
    for payer, payee, amount in (("coop0-m0", "coop1-m0", 30), ("coop1-m0", "coop0-m1", 7)):
        assert isinstance(ledger.pay(payer, payee, amount), Valid)
    report = ledger.audit()
    assert report.ok and report.violations == []

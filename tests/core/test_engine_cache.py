"""The engine's verdict cache is keyed so that a forged copy of a record cannot borrow or poison a verdict."""

from __future__ import annotations

import dataclasses

from conode.chain import Record
from conode.testing import Ledger
from conode.validation.charter import Limits
from conode.validation.engine import Engine
from conode.validation.governance import ProposalKind, Rules
from conode.validation.verdict import Invalid, Valid


def _payment_record_and_forgery() -> tuple[Ledger, object, object]:
    ledger = Ledger()
    assert isinstance(ledger.pay("coop0-m0", "coop1-m0", 10), Valid)
    genuine = ledger["coop0-m0"].chain[-1]
    forged = dataclasses.replace(genuine, signature=bytes(64))
    assert forged.hash == genuine.hash  # the signature is not part of the action hash
    return ledger, genuine, forged


def test_a_forged_signature_does_not_poison_the_genuine_records_verdict() -> None:
    ledger, genuine, forged = _payment_record_and_forgery()
    engine = Engine(ledger.charter)
    assert isinstance(engine.validate_record(forged, ledger.held), Invalid)  # type: ignore[arg-type]
    assert isinstance(engine.validate_record(genuine, ledger.held), Valid)  # type: ignore[arg-type]


def test_a_forged_signature_does_not_borrow_the_genuine_records_verdict() -> None:
    ledger, genuine, forged = _payment_record_and_forgery()
    engine = Engine(ledger.charter)
    assert isinstance(engine.validate_record(genuine, ledger.held), Valid)  # type: ignore[arg-type]
    verdict = engine.validate_record(forged, ledger.held)  # type: ignore[arg-type]
    assert isinstance(verdict, Invalid) and verdict.rule == "signature"


def test_validate_judges_every_op_kind_by_the_record_it_carries() -> None:
    from conode.validation.engine import Op, OpKind

    ledger, genuine, forged = _payment_record_and_forgery()
    engine = Engine(ledger.charter)
    for kind in OpKind:
        assert isinstance(engine.validate(Op(kind, genuine), ledger.held), Valid)  # type: ignore[arg-type]
        verdict = engine.validate(Op(kind, forged), ledger.held)  # type: ignore[arg-type]
        assert isinstance(verdict, Invalid) and verdict.rule == "signature"



def _amend_member_credit(ledger: Ledger, credit: int) -> Record:
    """Both co-ops pass an amendment of the member credit limit: its ratification record."""
    body = {"param": "member_limits", "value": Limits(credit, 10_000).to_value()}
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, body)
    votes = [ledger.vote(coop, proposal.hash)[0].hash for coop in ("coop0", "coop1")]
    ledger.advance(ledger.rules_now().params.voting_period_us + 1)
    record, verdict = ledger.ratify("coop0", proposal.hash, votes)
    assert isinstance(verdict, Valid), verdict
    return record


def test_rules_at_one_head_are_right_at_every_time_whatever_order_they_are_asked_in() -> None:
    """The engine keeps rules per (head, decisions in force at the time): asking late times
    first and early ones after must still give each time the rules of its own part of the log."""
    ledger = Ledger()
    charter_credit = ledger.rules_now().params.member_limits.credit
    first, second = (_amend_member_credit(ledger, credit) for credit in (700, 900))
    t1, t2 = first.action.timestamp, second.action.timestamp
    expected = {t1 - 1: charter_credit, t1: 700, t2 - 1: 700, t2: 900, t2 + 10**9: 900}
    engine = Engine(ledger.charter)
    for at in [*sorted(expected, reverse=True), *sorted(expected)]:
        rules = engine.rules_at(second.hash, at, ledger.held)
        assert isinstance(rules, Rules), rules
        assert rules.params.member_limits.credit == expected[at], at

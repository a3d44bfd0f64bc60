"""The engine's verdict cache is keyed so that a forged copy of a record cannot borrow or poison a verdict."""

from __future__ import annotations

import dataclasses

from conode.testing import Ledger
from conode.validation.engine import Engine
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

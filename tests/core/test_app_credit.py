"""Credit moved by app entries: chained by the fold, judged by every peer, booked to issuance."""

from __future__ import annotations

import pytest

from conode import encoding
from conode.apps.sdk import App, EntryType, Int
from conode.testing.ledger import Ledger
from conode.validation.activity import Activity
from conode.validation.schema import SchemaError
from conode.validation.verdict import Invalid, Valid, Verdict

app = App("grants", "0.1", [EntryType("grant", {"n": Int(0, 9)}, moves_credit=True)])


def grant(ledger: Ledger, name: str, delta: int) -> Verdict:
    activity = ledger[name].activity
    entry = app.prepare(
        "grant", {"n": 1, "credit": delta}, last_credit=activity.last_credit, balance=activity.balance
    )
    return ledger.create(name, "grants/grant", entry)[1]


def test_an_audit_books_what_apps_issued_to_the_issuance_account_and_still_sums_to_zero() -> None:
    ledger = Ledger(apps={"grants": app}, app_config={"grants": {"issues_credit": True}})
    assert isinstance(grant(ledger, "coop0", 300), Valid)
    assert isinstance(ledger.pay("coop0", "coop1-m0", 120), Valid)
    assert isinstance(grant(ledger, "coop1", 50), Valid)
    assert isinstance(grant(ledger, "coop0", -20), Valid)
    report = ledger.audit()
    assert report.ok, report.violations
    assert report.issued == 330 and report.issuance == -330
    assert report.total == 330 and report.zero_sum


def test_a_peer_without_the_apps_code_still_checks_the_move_and_the_limits() -> None:
    ledger = Ledger(apps={"grants": app}, app_config={"grants": {"issues_credit": True}})
    assert isinstance(grant(ledger, "coop0", 300), Valid)
    record = ledger["coop0"].chain[-1]
    # the balance after it comes from the move itself, not from the app's code (a node that has
    # not approved the app holds its records unjudged, and must still follow the chain)
    assert ledger.engine.balance_after(record, ledger["coop0"].key, ledger.held) == 300
    over = ledger.charter.params.coop_limits.cap
    verdict = grant(ledger, "coop0", over)
    assert isinstance(verdict, Invalid) and verdict.rule == "balance-cap"


def test_the_used_keys_round_trip_and_an_empty_list_is_never_written() -> None:
    state = Activity(balance=5, used=frozenset({b"a/b\x00k1", b"a/b\x00k2"}))
    assert Activity.from_bytes(state.to_bytes(), None) == state
    assert b"used" not in Activity(balance=5).to_bytes()
    spelled = encoding.decode(Activity(balance=5).to_bytes())
    with pytest.raises(SchemaError):
        Activity.from_bytes(encoding.encode({**spelled, "used": []}), None)

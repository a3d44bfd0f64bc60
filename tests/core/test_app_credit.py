"""Credit moved by app entries: chained by the fold, judged by every peer, booked to issuance."""

from __future__ import annotations

import pytest

from conode import encoding
from conode.apps.sdk import App, EntryType, Int
from conode.testing.ledger import DAY, Ledger
from conode.validation.activity import Activity
from conode.validation.governance import ProposalKind
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


# -- dues: an app entry obliging its author (the ``duty`` hook) -------------------------------------

owing = App(
    "owing",
    "0.1",
    [
        EntryType("report", {"n": Int(0, 9)}, moves_credit=True, duty=True),
        EntryType("note", {"n": Int(0, 9)}),
    ],
)


def report(ledger: Ledger, name: str, due: int | None, delta: int = 0) -> Verdict:
    activity = ledger[name].activity
    values = {"n": 1, "credit": delta, "due": due}
    entry = owing.prepare(
        "report", values, last_credit=activity.last_credit, balance=activity.balance
    )
    return ledger.create(name, "owing/report", entry)[1]


def test_an_author_owing_an_entry_may_be_paid_but_not_pay_until_it_commits_the_next() -> None:
    ledger = Ledger(apps={"owing": owing}, app_config={"owing": {"issues_credit": True}})
    due = ledger.clock + 10_000_000
    assert isinstance(report(ledger, "coop0", due, delta=500), Valid)
    assert isinstance(ledger.pay("coop0", "coop1", 10), Valid)  # before the due: free
    ledger.advance(10_000_000)
    refused = ledger.pay("coop0", "coop1", 10)
    assert isinstance(refused, Invalid) and refused.rule == "overdue"
    assert "owing/report" in refused.reason
    assert isinstance(ledger.pay("coop1", "coop0", 10), Valid)  # being paid is not paying
    note = owing.entry("note", n=1)
    assert isinstance(ledger.create("coop0", "owing/note", note)[1], Valid)  # another type
    assert isinstance(ledger.pay("coop0", "coop1", 10), Invalid)  # ... clears nothing
    assert isinstance(report(ledger, "coop0", ledger.clock + 5_000_000), Valid)
    assert isinstance(ledger.pay("coop0", "coop1", 10), Valid)  # the next one moved the due
    ledger.advance(5_000_000)
    assert isinstance(ledger.pay("coop0", "coop1", 10), Invalid)
    assert isinstance(report(ledger, "coop0", None), Valid)  # one carrying none clears it
    assert isinstance(ledger.pay("coop0", "coop1", 10), Valid)
    assert ledger.audit().ok


def test_the_dues_round_trip_and_none_are_never_written() -> None:
    state = Activity(balance=5, dues=(("a/b", 7), ("a/c", 9)))
    assert Activity.from_bytes(state.to_bytes(), None) == state
    assert state.overdue(8) == ("a/b", 7) and state.overdue(6) is None
    assert b"dues" not in Activity(balance=5).to_bytes()
    spelled = encoding.decode(Activity(balance=5).to_bytes())
    for bad in ([], [["a/c", 9], ["a/b", 7]], [["a/b", 7], ["a/b", 8]], [["a/b", "7"]]):
        with pytest.raises(SchemaError):
            Activity.from_bytes(encoding.encode({**spelled, "dues": bad}), None)


def test_a_move_of_nothing_or_back_inside_the_limits_is_always_allowed() -> None:
    """So an entry clearing a due can always be written: without ``issues_credit``, or with a
    balance left outside limits an amendment tightened."""
    ledger = Ledger(apps={"grants": app}, app_config={"grants": {}})
    assert isinstance(grant(ledger, "coop0", 0), Valid)
    refused = grant(ledger, "coop0", 1)
    assert isinstance(refused, Invalid) and refused.rule == "credit-app"

    ledger = Ledger(apps={"grants": app}, app_config={"grants": {"issues_credit": True}})
    limits = ledger.charter.params.coop_limits
    assert isinstance(grant(ledger, "coop0", limits.cap), Valid)
    halved = {"param": "coop_limits", "value": {"credit": limits.credit, "cap": limits.cap // 2}}
    proposal, verdict = ledger.propose("coop1", ProposalKind.AMEND, halved)
    assert isinstance(verdict, Valid)
    votes = [ledger.vote(coop, proposal.hash)[0].hash for coop in ("coop0", "coop1")]
    ledger.advance(DAY + 1)
    assert isinstance(ledger.ratify("coop1", proposal.hash, votes)[1], Valid)

    def moved(delta: int) -> Verdict:  # under the amended rules (the entry names the new head)
        activity = ledger["coop0"].activity
        values = {"n": 1, "credit": delta, "rules": ledger.gov_head}
        entry = app.prepare(
            "grant", values, last_credit=activity.last_credit, balance=activity.balance
        )
        return ledger.create("coop0", "grants/grant", entry)[1]

    assert isinstance(moved(0), Valid)  # above the new cap, and staying: moves nothing
    assert isinstance(moved(-10), Valid)  # back towards the cap, still above it
    over = moved(1)
    assert isinstance(over, Invalid) and over.rule == "balance-cap"  # further out: refused

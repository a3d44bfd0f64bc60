"""The Foundation at the rule level: it pays only ratified disbursements, to co-ops, once; the app's
comments and reports; the pure proposals view; and governance's adversarial cases.

Every record here is real and signed, judged by ``conode.testing.Ledger`` with
the engine and activity fold a peer runs. Each attack has its honest twin.
"""

from __future__ import annotations

from typing import Any

from conode.apps.foundation import COMMENT, REPORT, app, proposals
from conode.chain import Record
from conode.hashes import ActionHash
from conode.testing import Ledger
from conode.testing.ledger import DAY
from conode.validation.foundation import disbursement_data
from conode.validation.governance import Proposal, ProposalKind, Rules
from conode.validation.verdict import VALID, Invalid, Verdict


def ledger() -> Ledger:
    """Three co-ops (so a vote is one of three), two members each, and a Foundation funded by co-op 0."""
    led = Ledger(coops=3, members=2, foundation=True, apps={"foundation": app})
    assert led.pay("coop0", "foundation", 900) == VALID  # anyone may pay the Foundation
    return led


def ratified(
    led: Ledger, coop: str, amount: int, purpose: str = "apprenticeships", votes: int = 3
) -> ActionHash:
    """A disbursement to ``coop`` proposed by coop1, voted yes by ``votes`` co-ops, ratified."""
    proposal, verdict = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led[coop].key, amount, purpose)
    )
    assert verdict == VALID, verdict
    cast = [led.vote(f"coop{i}", proposal.hash)[0].hash for i in range(votes)]
    led.advance(DAY + 1)
    _, verdict = led.ratify("coop1", proposal.hash, cast)
    assert verdict == VALID, verdict
    return proposal.hash


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), verdict
    return verdict.rule


# -- the spending rule -----------------------------------------------------------------------------


def test_the_foundation_pays_a_ratified_disbursement_to_its_co_op() -> None:
    led = ledger()
    proposal = ratified(led, "coop2", 300)
    assert led.pay("foundation", "coop2", 300, ref=proposal) == VALID
    assert led["foundation"].balance == 600 and led["coop2"].balance == 300
    assert led.audit().ok


def test_a_foundation_payment_without_a_ratification_is_refused() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 300, "tools")
    )
    for i in range(3):
        led.vote(f"coop{i}", proposal.hash)
    led.advance(DAY + 1)  # it would pass, but nobody ratified it
    assert rule(led.pay("foundation", "coop2", 300, ref=proposal.hash)) == "foundation"
    assert rule(led.pay("foundation", "coop2", 300)) == "foundation"  # and naming nothing
    assert led["foundation"].balance == 900


def test_a_foundation_payment_to_a_member_is_refused_even_if_ratified() -> None:
    led = ledger()
    # a disbursement naming a member can be proposed (opaque bodies are the app's) and ratified...
    proposal = ratified(led, "coop2-m0", 100)
    # ...but the Foundation pays only co-ops
    assert rule(led.pay("foundation", "coop2-m0", 100, ref=proposal)) == "foundation"
    assert led["coop2-m0"].balance == 0


def test_a_ratified_disbursement_is_paid_once() -> None:
    led = ledger()
    proposal = ratified(led, "coop2", 300)
    assert led.pay("foundation", "coop2", 300, ref=proposal) == VALID
    assert rule(led.pay("foundation", "coop2", 300, ref=proposal)) == "paid-once"  # once per ref
    assert rule(led.pay("foundation", "coop2", 1, ref=proposal)) == "paid-once"
    assert led["foundation"].balance == 600


def test_a_foundation_payment_above_the_amount_approved_or_to_another_co_op_is_refused() -> None:
    led = ledger()
    proposal = ratified(led, "coop2", 300)
    assert rule(led.pay("foundation", "coop2", 301, ref=proposal)) == "foundation"
    assert rule(led.pay("foundation", "coop1", 300, ref=proposal)) == "foundation"
    assert led.pay("foundation", "coop2", 250, ref=proposal) == VALID  # less is allowed


def test_the_foundation_cannot_pay_more_than_it_holds() -> None:
    led = ledger()
    proposal = ratified(led, "coop2", 1_000)
    assert rule(led.pay("foundation", "coop2", 1_000, ref=proposal)) == "credit-limit"


def test_a_foundation_payment_naming_a_proposal_that_is_not_a_disbursement_is_refused() -> None:
    led = ledger()
    amend, _ = led.propose(
        "coop1", ProposalKind.AMEND, {"param": "voting_period_us", "value": 2 * DAY}
    )
    cast = [led.vote(f"coop{i}", amend.hash)[0].hash for i in range(3)]
    led.advance(DAY + 1)
    assert led.ratify("coop1", amend.hash, cast)[1] == VALID
    assert rule(led.pay("foundation", "coop2", 10, ref=amend.hash)) == "foundation"


# -- governance: the adversarial cases ---------------------------------------------------------------


def test_a_co_op_votes_once_on_a_proposal() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    assert led.vote("coop0", proposal.hash, "yes")[1] == VALID
    assert rule(led.vote("coop0", proposal.hash, "no")[1]) == "double-vote"
    assert led.vote("coop2", proposal.hash, "no")[1] == VALID  # another co-op still may


def test_a_vote_after_the_deadline_is_refused() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    led.advance(DAY + 1)
    assert rule(led.vote("coop0", proposal.hash)[1]) == "deadline"


def test_a_member_may_not_vote_but_may_comment() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    assert rule(led.vote("coop0-m0", proposal.hash)[1]) == "not-a-coop"
    comment = app.entry(COMMENT, proposal=proposal.hash, text="we would use the tools too")
    assert led.create("coop0-m0", COMMENT, comment)[1] == VALID
    assert led.create("coop0", COMMENT, comment)[1] == VALID


def test_a_ratification_before_the_deadline_or_of_a_failed_proposal_is_refused() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    yes = [led.vote(f"coop{i}", proposal.hash)[0].hash for i in range(3)]
    assert rule(led.ratify("coop1", proposal.hash, yes)[1]) == "ratification"  # too early
    lost, _ = led.propose("coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 9, "y"))
    no = [led.vote(f"coop{i}", lost.hash, "no")[0].hash for i in range(3)]
    led.advance(DAY + 1)
    assert rule(led.ratify("coop1", lost.hash, no)[1]) == "tally"
    assert led.ratify("coop1", proposal.hash, yes)[1] == VALID


# -- the app's entries ---------------------------------------------------------------------------------


def paid_disbursement(led: Ledger) -> tuple[ActionHash, Record]:
    """A disbursement to coop2, paid: the proposal and coop2's record of the payment."""
    proposal = ratified(led, "coop2", 300)
    assert led.pay("foundation", "coop2", 300, ref=proposal) == VALID
    return proposal, led["coop2"].chain[-1]


def report(led: Ledger, name: str, payment: ActionHash, used: int | None = 200) -> Verdict:
    entry = app.entry(REPORT, payment=payment, text="trained four apprentices", used=used)
    return led.create(name, REPORT, entry)[1]


def test_the_funded_co_op_reports_on_its_payment() -> None:
    led = ledger()
    _, payment = paid_disbursement(led)
    assert report(led, "coop2", payment.hash) == VALID
    assert (
        report(led, "coop2", led["foundation"].chain[-1].hash, used=None) == VALID
    )  # either record
    assert led.audit().ok


def test_only_the_payee_reports_and_never_more_than_was_paid() -> None:
    led = ledger()
    _, payment = paid_disbursement(led)
    assert rule(report(led, "coop1", payment.hash)) == "payee"
    assert rule(report(led, "coop2-m0", payment.hash)) == "role"
    assert rule(report(led, "coop2", payment.hash, used=301)) == "used"
    assert report(led, "coop2", payment.hash, used=300) == VALID


def test_a_report_on_a_payment_the_foundation_did_not_make_is_refused() -> None:
    led = ledger()
    assert led.pay("coop1", "coop2", 50) == VALID
    assert rule(report(led, "coop2", led["coop2"].chain[-1].hash, used=10)) == "foundation"
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    assert rule(report(led, "coop2", proposal.hash)) == "reference"  # not a payment at all


def test_a_comment_names_a_proposal() -> None:
    led = ledger()
    assert led.pay("coop1", "coop2", 50) == VALID
    entry = app.entry(COMMENT, proposal=led["coop2"].chain[-1].hash, text="hm")
    assert rule(led.create("coop0", COMMENT, entry)[1]) == "reference"


# -- the pure view --------------------------------------------------------------------------------------


def all_records(led: Ledger) -> list[Record]:
    return [r for chain in led.chains() for r in chain]


def rules_at(led: Ledger) -> Any:
    def at(record: Record, proposal: Proposal) -> Rules | None:
        rules = led.engine.rules_at(proposal.rules, record.action.timestamp, led.held)
        return rules if isinstance(rules, Rules) else None

    return at


def test_the_view_follows_a_proposal_from_open_to_executed() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 300, "solar panels")
    )
    votes = [led.vote("coop0", proposal.hash, "yes")[0].hash]

    def view(**kw: Any) -> Any:
        (only,) = proposals(all_records(led), rules_at=rules_at(led), now=led.clock, **kw)
        return only

    first = view()
    assert (first.status, first.tally.yes, first.tally.electorate) == ("open", 1, 3)
    assert first.to_value()["kind"] == "disburse" and not first.executed
    votes.append(led.vote("coop2", proposal.hash, "yes")[0].hash)
    led.advance(DAY + 1)
    assert view().status == "passed"
    ratification, _ = led.ratify("coop1", proposal.hash, votes)
    ratified_view = view(ratified={proposal.hash: ratification.hash})
    assert ratified_view.status == "ratified" and not ratified_view.executed  # not paid yet
    assert led.pay("foundation", "coop2", 300, ref=proposal.hash) == VALID
    paid = led["foundation"].chain[-1].hash
    report(led, "coop2", led["coop2"].chain[-1].hash)
    done = view(
        ratified={proposal.hash: ratification.hash},
        paid={proposal.hash: paid},
        get=led.held.get_record,
    )
    assert done.executed and len(done.reports) == 1 and done.reports[0].used == 200
    assert done.to_value()["disbursement"]["paid_by"] == str(paid)


def test_a_proposal_that_misses_the_quorum_fails() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    led.vote("coop1", proposal.hash, "yes")  # 1 of 3 co-ops: below the 50 % quorum
    led.advance(DAY + 1)
    (only,) = proposals(all_records(led), rules_at=rules_at(led), now=led.clock)
    assert only.status == "failed" and "not ratified" in only.tally.reason


def test_the_view_counts_each_held_record_once() -> None:
    led = ledger()
    proposal, _ = led.propose(
        "coop1", ProposalKind.OPAQUE, disbursement_data(led["coop2"].key, 5, "x")
    )
    first = led.vote("coop0", proposal.hash, "no")[0]
    twice = [*all_records(led), first, proposal]
    (only,) = proposals(twice, rules_at=rules_at(led), now=led.clock)
    assert [v.hash for v in only.votes] == [first.hash] and only.tally.no == 1

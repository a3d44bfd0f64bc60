"""Stale rules: trading under a governance head from before one's revocation is warrantable.

A record is judged under the head it names, so a revoked member and a
colluder can name the head from before the revocation and the record itself
stays valid. ``stale-rules`` warrants close that: the evidence is the record
and a ratification that follows its head and was made at least
``rules_grace_us`` earlier (see ``conode.validation.stale``).
"""

from __future__ import annotations

from typing import Any

from conode.chain import Record
from conode.hashes import ActionHash
from conode.testing.ledger import Ledger
from conode.validation.charter import DEFAULT_RULES_GRACE_US, Limits
from conode.validation.entries import Payment
from conode.validation.governance import ProposalKind
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.stale import stale_evidence
from conode.validation.verdict import Invalid, Valid, Verdict
from conode.validation.warrants import Warrant, check_warrant

GRACE = DEFAULT_RULES_GRACE_US


def _ratified(ledger: Ledger, kind: str, body: dict[str, Any]) -> Record:
    proposal, _ = ledger.propose("coop0", kind, body)
    votes = [ledger.vote(coop, proposal.hash)[0].hash for coop in ("coop0", "coop1")]
    ledger.advance(ledger.rules_now().params.voting_period_us + 1)
    record, verdict = ledger.ratify("coop0", proposal.hash, votes)
    assert isinstance(verdict, Valid), verdict
    return record


def _stale_payment(
    ledger: Ledger, payer: str, payee: str, amount: int, rules: ActionHash | None
) -> tuple[Record, Record]:
    """A payment both parties sign and commit under ``rules`` (valid under that head)."""
    a, b = ledger[payer], ledger[payee]
    body = make_body(
        ledger.charter.network_id, a.activity, b.activity, amount, timestamp=ledger.now(), rules=rules
    )
    payment = Payment(body, sign_body(a.signer, body), sign_body(b.signer, body))
    assert isinstance(ledger.commit_both(payment), Valid)
    return ledger[payer].chain[-1], ledger[payee].chain[-1]


def _warrant(ledger: Ledger, record: Record, ratification: Record) -> Verdict:
    warrant = Warrant.issue(
        ledger["coop1"].signer, "stale-rules", record.action.author, (record, ratification), ledger.now()
    )
    # what travels is bytes: judge the warrant a peer would read
    return check_warrant(Warrant.from_bytes(warrant.to_bytes()), ledger.engine, ledger.held)


def _revoked_member(ledger: Ledger) -> Record:
    return _ratified(ledger, ProposalKind.REVOKE, {"agent": ledger["coop0-m0"].key.to_bytes(), "reason": "left"})


def test_a_revoked_member_trading_under_the_rules_from_before_its_revocation_is_warranted() -> None:
    ledger = Ledger()
    revocation = _revoked_member(ledger)
    ledger.advance(GRACE)
    paid, _ = _stale_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)
    assert isinstance(_warrant(ledger, paid, revocation), Valid)
    # an honest node finds the same evidence from its own governance head
    found = stale_evidence(ledger.engine, paid, ledger.gov_head, ledger.held)
    assert found is not None
    assert found[0].hash == revocation.hash and found[1].rule == "revoked"


def test_within_the_grace_after_the_ratification_a_stale_record_is_not_warrantable() -> None:
    ledger = Ledger()
    revocation = _revoked_member(ledger)
    ledger.advance(GRACE // 2)
    paid, _ = _stale_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)
    verdict = _warrant(ledger, paid, revocation)
    assert isinstance(verdict, Invalid) and verdict.rule == "warrant"
    assert stale_evidence(ledger.engine, paid, ledger.gov_head, ledger.held) is None


def test_the_counterparty_of_a_revoked_member_is_not_warranted_for_the_revocation() -> None:
    ledger = Ledger()
    revocation = _revoked_member(ledger)
    ledger.advance(GRACE)
    _, received = _stale_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)
    verdict = _warrant(ledger, received, revocation)
    assert isinstance(verdict, Invalid) and verdict.rule == "warrant"


def test_a_stale_record_the_newer_rules_still_allow_is_not_warrantable() -> None:
    ledger = Ledger()
    amendment = _ratified(ledger, ProposalKind.AMEND, {"param": "replication", "value": 5})
    ledger.advance(GRACE)
    paid, _ = _stale_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)
    assert isinstance(_warrant(ledger, paid, amendment), Invalid)


def test_a_balance_beyond_a_lowered_credit_limit_under_an_old_head_is_warranted() -> None:
    ledger = Ledger(member_limits=Limits(100, 10_000))
    lowered = _ratified(
        ledger, ProposalKind.AMEND, {"param": "member_limits", "value": {"credit": 10, "cap": 10_000}}
    )
    ledger.advance(GRACE)
    paid, _ = _stale_payment(ledger, "coop0-m0", "coop0-m1", 50, rules=None)
    verdict = check_warrant(
        Warrant.issue(ledger["coop1"].signer, "stale-rules", paid.action.author, (paid, lowered), 1),
        ledger.engine,
        ledger.held,
    )
    assert isinstance(verdict, Valid)
    found = stale_evidence(ledger.engine, paid, ledger.gov_head, ledger.held)
    assert found is not None and found[1].rule == "credit-limit"


def test_evidence_that_is_not_newer_than_the_records_rules_proves_nothing() -> None:
    ledger = Ledger()
    first = _revoked_member(ledger)
    second = _ratified(ledger, ProposalKind.AMEND, {"param": "replication", "value": 5})
    ledger.advance(GRACE)
    # coop0-m1 trades under the newest head: the older ratification is behind it, not ahead
    paid, _ = _stale_payment(ledger, "coop0-m1", "coop0", 1, rules=second.hash)
    for evidence in (first, second):
        verdict = _warrant(ledger, paid, evidence)
        assert isinstance(verdict, Invalid) and verdict.rule == "warrant", evidence


def test_a_stale_rules_warrant_whose_second_record_is_not_a_ratification_is_refused() -> None:
    ledger = Ledger()
    _revoked_member(ledger)
    ledger.advance(GRACE)
    paid, received = _stale_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)
    verdict = _warrant(ledger, paid, received)
    assert isinstance(verdict, Invalid) and verdict.rule == "warrant"


def test_a_stale_record_by_a_member_of_a_revoked_coop_is_warranted() -> None:
    ledger = Ledger()
    revocation = _ratified(
        ledger, ProposalKind.REVOKE, {"agent": ledger["coop1"].key.to_bytes(), "reason": "dissolved"}
    )
    ledger.advance(GRACE)
    record = commit_payment(
        ledger["coop1-m0"].signer,
        Payment(
            body := make_body(
                ledger.charter.network_id,
                ledger["coop1-m0"].activity,
                ledger["coop1-m1"].activity,
                1,
                timestamp=ledger.now(),
                rules=None,
            ),
            sign_body(ledger["coop1-m0"].signer, body),
            sign_body(ledger["coop1-m1"].signer, body),
        ),
    )
    verdict = _warrant(ledger, record, revocation)
    assert isinstance(verdict, Valid)

"""Named attacks on the credit rules: each is refused, and by the rule that names it.

Every case drives real, correctly signed records through the same activity
fold and engine a peer runs (``Ledger.judge`` / ``commit``), so that the
refusal comes from the rule under test and not from a broken signature. The
honest variant of most attacks is checked too, so a test fails if the rule
refuses everything as well as if it refuses nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from conode import encoding
from conode.chain import Action, ActionKind, Record, author_record, sign_record
from conode.crypto import SIG_ACTION, Signer, verify
from conode.hashes import ActionHash, AgentKey
from conode.testing.ledger import DAY, Agent, Ledger
from conode.validation.activity import Activity, step
from conode.validation.charter import Limits
from conode.validation.engine import Engine
from conode.validation.entries import (
    PAYMENT,
    ROTATION,
    ChainClose,
    ChainOpen,
    Credential,
    Genesis,
    Payment,
    Role,
    Rotation,
)
from conode.validation.governance import ProposalKind, Vote
from conode.validation.memory import HeldRecords
from conode.validation.payment import commit_payment, make_body, sign_body
from conode.validation.verdict import Invalid, Missing, Valid, Verdict
from conode.validation.warrants import Warrant, check_warrant

# --- helpers --------------------------------------------------------------------------------------


def rule(verdict: Verdict) -> str:
    """The rule an ``Invalid`` verdict names (fails the test on any other verdict)."""
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def valid(verdict: Verdict) -> bool:
    return isinstance(verdict, Valid)


def signer(label: str) -> Signer:
    return Signer(hashlib.blake2b(label.encode(), digest_size=32).digest())


def next_record(
    ledger: Ledger,
    name: str,
    kind: ActionKind,
    entry: Any,
    *,
    entry_type: str | None = None,
    ref: ActionHash | None = None,
    timestamp: int | None = None,
) -> Record:
    """The next record of ``name``'s chain, correctly signed by it (not committed)."""
    agent = ledger[name]
    return author_record(
        agent.signer,
        agent.activity.head,
        kind=kind,
        timestamp=ledger.now() if timestamp is None else timestamp,
        entry=entry,
        entry_type=entry_type,
        ref=ref,
    )


def smuggle(ledger: Ledger, name: str, who: Signer, genesis: Genesis, *, held: bool = True) -> Record:
    """Give ``name`` a chain starting with ``genesis`` whatever the rules say of it.

    This is what a peer faces when someone else's (perhaps invalid) chain is
    published: the record exists and may be fetched, but was never accepted.
    With ``held=False`` the genesis exists but this peer has not fetched it.
    """
    record = author_record(who, None, kind=ActionKind.GENESIS, timestamp=ledger.now(), entry=genesis.to_value())
    agent = Agent(name, who, genesis.role)
    agent.activity, verdict = step(Activity(), record)
    assert valid(verdict), verdict  # the chain rules hold; only the credit rules are in question
    agent.chain.append(record)
    ledger.agents[name] = agent
    if held:
        ledger.held.add([record])
    return record


def ratified(
    ledger: Ledger, kind: str, body: dict[str, Any], voters: tuple[str, ...] = ("coop0", "coop1")
) -> Record:
    """Propose, vote yes with ``voters``, wait out the deadline, ratify: the ratification record."""
    proposal, verdict = ledger.propose(voters[0], kind, body)
    assert valid(verdict), verdict
    votes = []
    for coop in voters:
        vote, verdict = ledger.vote(coop, proposal.hash)
        assert valid(verdict), verdict
        votes.append(vote.hash)
    ledger.advance(DAY + 1)
    record, verdict = ledger.ratify(voters[0], proposal.hash, votes)
    assert valid(verdict), verdict
    return record


def signed_payment(ledger: Ledger, payer: str, payee: str, amount: int, **kw: Any) -> Payment:
    """A payment from the parties' current activity, signed by both, with explicit body options."""
    a, b = ledger[payer], ledger[payee]
    kw.setdefault("timestamp", ledger.now())
    kw.setdefault("rules", ledger.gov_head)
    body = make_body(ledger.charter.network_id, a.activity, b.activity, amount, **kw)
    return Payment(body, sign_body(a.signer, body), sign_body(b.signer, body))


# --- balance limits -------------------------------------------------------------------------------


def test_payment_beyond_the_payers_credit_limit_is_refused_by_credit_limit() -> None:
    ledger = Ledger(member_limits=Limits(100, 10_000))
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 101)) == "credit-limit"
    assert ledger.balances()["coop0-m0"] == 0 == ledger.balances()["coop0-m1"]
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 100))  # exactly at the limit is allowed
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 1)) == "credit-limit"


def test_a_limit_refusal_names_the_amounts_in_major_units_with_the_currency() -> None:
    ledger = Ledger(member_limits=Limits(100, 150))
    refused = ledger.pay("coop0-m0", "coop0-m1", 101)
    assert isinstance(refused, Invalid)
    assert refused.reason == "coop0-m0 would be at -1.01 CXT, below -1.00 CXT"
    refused = ledger.pay("coop0", "coop0-m0", 151)
    assert isinstance(refused, Invalid)
    assert refused.reason == "coop0-m0 would be at 1.51 CXT, above 1.50 CXT"


def test_payment_beyond_the_payees_balance_cap_is_refused_by_balance_cap() -> None:
    ledger = Ledger(coop_limits=Limits(1_000, 100_000), member_limits=Limits(100, 150))
    assert rule(ledger.pay("coop0", "coop0-m0", 151)) == "balance-cap"
    assert valid(ledger.pay("coop0", "coop0-m0", 150))
    assert rule(ledger.pay("coop1", "coop0-m0", 1)) == "balance-cap"
    assert ledger.balances()["coop0-m0"] == 150


def test_coop_limits_apply_to_coops_and_member_limits_to_members() -> None:
    ledger = Ledger(coop_limits=Limits(500, 100_000), member_limits=Limits(100, 10_000))
    assert valid(ledger.pay("coop0", "coop1", 500))
    assert rule(ledger.pay("coop0", "coop1", 1)) == "credit-limit"
    assert rule(ledger.pay("coop1-m0", "coop1", 101)) == "credit-limit"


# --- co-op provenance -----------------------------------------------------------------------------


def test_payment_to_an_agent_vouched_for_by_an_unregistered_key_is_refused_by_provenance() -> None:
    ledger = Ledger()
    rogue, outsider = signer("rogue co-op"), signer("outsider")
    credential = Credential.issue(rogue, AgentKey(outsider.public_key), "Outsider", ledger.now())
    genesis = smuggle(
        ledger, "outsider", outsider, Genesis(ledger.charter.network_id, Role.MEMBER, "Outsider", credential=credential)
    )
    assert rule(ledger.engine.validate_record(genesis, ledger.held)) == "provenance"
    assert rule(ledger.pay("coop0-m0", "outsider", 10)) == "provenance"
    assert rule(ledger.pay("outsider", "coop0-m0", 10)) == "provenance"
    assert ledger.balances()["coop0-m0"] == 0


def test_payment_to_an_agent_whose_genesis_is_not_held_is_missing_until_it_is_fetched() -> None:
    ledger = Ledger()
    ghost = signer("ghost")
    credential = Credential.issue(ledger["coop0"].signer, AgentKey(ghost.public_key), "Ghost", ledger.now())
    genesis = smuggle(
        ledger, "ghost", ghost, Genesis(ledger.charter.network_id, Role.MEMBER, "Ghost", credential=credential),
        held=False,
    )
    payment = ledger.payment("coop0-m0", "ghost", 10)
    verdict = ledger.commit_both(payment)
    assert isinstance(verdict, Missing)
    assert verdict.dependencies == (genesis.hash,)  # the genesis the payee's position pins
    ledger.held.add([genesis])  # fetched: the same payment is now judged on its merits
    assert valid(ledger.commit_both(payment))
    assert ledger.balances()["ghost"] == 10


def test_revoked_member_can_no_longer_trade_but_its_history_audits_clean() -> None:
    ledger = Ledger()
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 30))
    assert valid(ledger.pay("coop1-m0", "coop0-m0", 5))
    ratified(ledger, ProposalKind.REVOKE, {"agent": ledger["coop0-m0"].key.to_bytes(), "reason": "left"})
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 1)) == "revoked"
    assert rule(ledger.pay("coop0-m1", "coop0-m0", 1)) == "revoked"
    assert valid(ledger.pay("coop0-m1", "coop1-m0", 1))  # everyone else still trades
    report = ledger.audit()
    assert report.violations == []
    assert report.zero_sum
    assert report.balances[ledger["coop0-m0"].key] == -25


# --- countersigned transactions -------------------------------------------------------------------


def test_payment_with_a_forged_countersignature_is_refused_by_countersignature() -> None:
    ledger = Ledger()
    honest = ledger.payment("coop0-m0", "coop0-m1", 10)
    body = honest.body
    other_body = make_body(
        ledger.charter.network_id, ledger["coop0-m0"].activity, ledger["coop0-m1"].activity, 11,
        timestamp=body.timestamp,
    )
    forgeries = [
        sign_body(ledger["coop1-m0"].signer, body),  # someone else's key
        sign_body(ledger["coop0-m1"].signer, other_body),  # the payee's key, another body
        ledger["coop0-m1"].signer.sign(SIG_ACTION, body.to_bytes()),  # the payee's key, another purpose
        honest.payer_sig,  # the payer's signature passed off as the payee's
    ]
    for forged in forgeries:
        payment = Payment(body, honest.payer_sig, forged)
        assert rule(ledger.commit_both(payment)) == "countersignature"
    assert rule(ledger.commit_both(Payment(body, honest.payee_sig, honest.payee_sig))) == "countersignature"
    assert valid(ledger.commit_both(honest))


def test_replayed_payment_at_a_later_position_is_refused() -> None:
    ledger = Ledger()
    payment = ledger.payment("coop0-m0", "coop0-m1", 10)
    assert valid(ledger.commit_both(payment))
    replay = next_record(ledger, "coop0-m0", ActionKind.CREATE, payment.to_value(), entry_type=PAYMENT)
    # A record authority sees the payment committed away from the position both parties fixed...
    assert rule(ledger.engine.validate_record(replay, ledger.held)) == "position"
    # ...and the payer's activity sees a payment that does not follow its last credit action.
    assert rule(ledger.judge("coop0-m0", replay)) == "prev-credit"
    # The very same record again is a second record at one seq.
    assert rule(ledger.judge("coop0-m0", ledger["coop0-m0"].chain[-1])) == "seq"
    assert ledger.balances()["coop0-m0"] == -10


def test_payment_replayed_on_another_network_is_refused_by_network() -> None:
    here = Ledger(seed="twin")
    there = Ledger(seed="twin", member_limits=Limits(101, 10_000))  # same keys, another charter
    assert here["coop0-m0"].key == there["coop0-m0"].key
    assert here.charter.network_id != there.charter.network_id
    assert valid(here.pay("coop0-m0", "coop0-m1", 10))
    for name in ("coop0-m0", "coop0-m1"):
        replay = here[name].chain[-1]
        assert rule(there.engine.validate_record(replay, there.held)) == "network"


def test_double_spend_by_forking_is_refused_as_next_of_chain_and_leaves_a_provable_fork() -> None:
    ledger = Ledger(member_limits=Limits(100, 10_000))
    payer = ledger["coop0-m0"]
    before = payer.activity
    first = ledger.payment("coop0-m0", "coop0-m1", 80)
    assert valid(ledger.commit_both(first))
    # The payer signs a second payment of the same balance, from the same place on its chain.
    body = make_body(
        ledger.charter.network_id, before, ledger["coop1-m0"].activity, 80, timestamp=ledger.now()
    )
    second = Payment(body, sign_body(payer.signer, body), sign_body(ledger["coop1-m0"].signer, body))
    a, b = payer.chain[-1], commit_payment(payer.signer, second)
    assert rule(ledger.judge("coop0-m0", b)) == "seq"
    assert rule(ledger.commit_both(second)) == "seq"
    # Together the two records are the proof: one position, two different records, both signed.
    assert (a.action.seq, a.action.prev) == (b.action.seq, b.action.prev)
    assert a.hash != b.hash
    for record in (a, b):
        assert record.action.author == payer.key
        assert verify(payer.key.raw, SIG_ACTION, record.action_bytes, record.signature)
    assert payer.balance == -80


# --- governance -----------------------------------------------------------------------------------


def test_second_vote_by_a_coop_is_refused_by_double_vote() -> None:
    ledger = Ledger()
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    assert valid(ledger.vote("coop1", proposal.hash, "no")[1])
    assert rule(ledger.vote("coop1", proposal.hash, "yes")[1]) == "double-vote"
    assert rule(ledger.vote("coop1", proposal.hash, "no")[1]) == "double-vote"


def test_vote_by_a_member_is_refused_by_not_a_coop() -> None:
    ledger = Ledger()
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    assert rule(ledger.vote("coop0-m0", proposal.hash)[1]) == "not-a-coop"
    assert rule(ledger.propose("coop0-m0", ProposalKind.AMEND, {"param": "replication", "value": 5})[1]) == "not-a-coop"


def test_vote_after_the_deadline_is_refused_by_deadline() -> None:
    ledger = Ledger()
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    deadline = ledger.clock + DAY
    ledger.clock = deadline - 1_000  # the vote is cast exactly at the deadline: still counts
    assert valid(ledger.vote("coop0", proposal.hash)[1])
    assert rule(ledger.vote("coop1", proposal.hash)[1]) == "deadline"


def test_ratification_with_too_few_votes_is_refused_by_tally() -> None:
    ledger = Ledger(coops=3)
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    yes, _ = ledger.vote("coop0", proposal.hash, "yes")
    ledger.advance(DAY + 1)
    assert rule(ledger.ratify("coop0", proposal.hash, [yes.hash])[1]) == "tally"  # 1 of 3: no quorum
    no, _ = ledger.vote("coop1", proposal.hash, "no")  # too late to count, and refused anyway
    assert rule(ledger.judge("coop1", no)) == "deadline"


def test_ratification_with_an_even_split_is_refused_by_tally() -> None:
    ledger = Ledger(coops=2)
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    yes, _ = ledger.vote("coop0", proposal.hash, "yes")
    no, _ = ledger.vote("coop1", proposal.hash, "no")
    ledger.advance(DAY + 1)
    assert rule(ledger.ratify("coop0", proposal.hash, [yes.hash, no.hash])[1]) == "tally"
    assert ledger.gov_head is None


def test_ratification_before_the_deadline_is_refused() -> None:
    ledger = Ledger()
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    votes = [ledger.vote(c, proposal.hash)[0].hash for c in ("coop0", "coop1")]
    assert rule(ledger.ratify("coop0", proposal.hash, votes)[1]) == "ratification"
    ledger.advance(DAY)
    assert valid(ledger.ratify("coop0", proposal.hash, votes)[1])
    assert ledger.rules_now().params.replication == 5


def test_ratification_counting_a_coop_twice_is_refused_by_tally() -> None:
    ledger = Ledger(coops=3)
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    yes0, _ = ledger.vote("coop0", proposal.hash, "yes")
    # coop0 forks its chain to vote again: each vote is a valid record, the second is a second vote.
    yes0_again = next_record(
        ledger, "coop0", ActionKind.CREATE, Vote(proposal.hash, "yes", None).to_value(), entry_type="gov/vote"
    )
    assert rule(ledger.judge("coop0", yes0_again)) == "double-vote"
    ledger.held.add([yes0_again])
    ledger.advance(DAY + 1)
    verdict = ledger.ratify("coop0", proposal.hash, [yes0.hash, yes0_again.hash])[1]
    assert rule(verdict) == "tally"
    assert "second vote" in verdict.reason
    assert rule(ledger.ratify("coop0", proposal.hash, [yes0.hash, yes0.hash])[1]) == "tally"


def test_ratification_counting_a_vote_by_a_non_coop_is_refused() -> None:
    ledger = Ledger(coops=2)
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    yes0, _ = ledger.vote("coop0", proposal.hash, "yes")
    member_vote = next_record(
        ledger, "coop0-m0", ActionKind.CREATE, Vote(proposal.hash, "yes", None).to_value(), entry_type="gov/vote"
    )
    ledger.held.add([member_vote])
    ledger.advance(DAY + 1)
    verdict = ledger.ratify("coop0", proposal.hash, [yes0.hash, member_vote.hash])[1]
    # The member's vote is itself an invalid record, so the ratification fails on it as a dependency.
    assert rule(verdict) == "dependency"
    assert "not-a-coop" in verdict.reason
    assert ledger.gov_head is None


def test_amendment_does_not_apply_before_its_ratification_time() -> None:
    ledger = Ledger(member_limits=Limits(100, 10_000))
    ratification = ratified(
        ledger, ProposalKind.AMEND, {"param": "member_limits", "value": Limits(500, 10_000).to_value()}
    )
    at = ratification.action.timestamp

    def attempt(timestamp: int, rules: ActionHash | None) -> Verdict:
        payment = signed_payment(ledger, "coop0-m0", "coop0-m1", 200, timestamp=timestamp, rules=rules)
        assert payment.body.timestamp == timestamp
        return ledger.commit_both(payment)

    # Within the new limit but over the old, made before the ratification while citing it:
    assert rule(attempt(at - 1, ratification.hash)) == "credit-limit"
    # After it, but under the log head before it: the old limit still applies.
    assert rule(attempt(at, None)) == "credit-limit"
    # From the ratification's own time on, under the new head, the new limit applies.
    assert valid(attempt(at, ratification.hash))
    assert ledger.balances()["coop0-m0"] == -200


# --- bills ----------------------------------------------------------------------------------------


def test_bill_paid_twice_is_refused_by_paid_once() -> None:
    ledger = Ledger()
    bill, verdict = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert valid(verdict)
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash))
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash)) == "paid-once"
    assert ledger.balances()["coop0-m0"] == -20


def test_bill_paid_with_the_wrong_amount_is_refused_by_bill() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 19, ref=bill.hash)) == "bill"
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 21, ref=bill.hash)) == "bill"
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash))


def test_bill_paid_after_it_expired_is_refused_by_bill() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20, expires_in=10_000)
    ledger.advance(10_000)
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash)) == "bill"


def test_bill_paid_by_or_to_someone_else_is_refused_by_bill() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert rule(ledger.pay("coop1-m0", "coop0-m1", 20, ref=bill.hash)) == "bill"
    assert rule(ledger.pay("coop0-m0", "coop1-m0", 20, ref=bill.hash)) == "bill"


def test_declining_a_paid_bill_is_refused_by_bill_settled() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash))
    assert rule(ledger.decline("coop0-m0", bill.hash)[1]) == "bill-settled"
    other, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert valid(ledger.decline("coop0-m0", other.hash)[1])  # an open bill may still be declined


def test_paying_a_declined_bill_is_refused_by_bill_settled() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert valid(ledger.decline("coop0-m0", bill.hash)[1])
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 20, ref=bill.hash)) == "bill-settled"
    assert rule(ledger.decline("coop0-m0", bill.hash)[1]) == "bill-settled"  # nor twice
    assert ledger.balances()["coop0-m0"] == 0
    other, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 20, ref=other.hash))


def test_the_kept_activity_state_remembers_declines_across_a_round_trip() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    ledger.decline("coop0-m0", bill.hash)
    state = ledger["coop0-m0"].activity
    assert state.bills_declined == {bill.hash}
    assert Activity.from_bytes(state.to_bytes(), state.head) == state
    plain = ledger["coop1-m0"].activity  # nothing declined: the bytes carry no such field
    assert b"bills_declined" not in plain.to_bytes()


def test_decline_by_anyone_but_the_bills_payer_is_refused_by_bill() -> None:
    ledger = Ledger()
    bill, _ = ledger.bill("coop0-m1", "coop0-m0", 20)
    assert rule(ledger.decline("coop1-m0", bill.hash)[1]) == "bill"
    assert rule(ledger.decline("coop0-m1", bill.hash)[1]) == "bill"  # not even the payee
    assert valid(ledger.decline("coop0-m0", bill.hash)[1])


# --- admission and membership ---------------------------------------------------------------------


def _admit(ledger: Ledger, name: str) -> tuple[Agent, dict[str, Any]]:
    newcomer = Agent(name, signer(f"new co-op {name}"), Role.COOP)
    ledger.agents[name] = newcomer
    body = {"agent": newcomer.key.to_bytes(), "legal_name": f"{name} Ltd", "registration": f"REG-{name}"}
    return newcomer, body


def test_coop_admitted_by_vote_opens_a_valid_chain_and_admits_members() -> None:
    ledger = Ledger()
    newcomer, body = _admit(ledger, "coop9")
    network = ledger.charter.network_id
    before = author_record(
        newcomer.signer, None, kind=ActionKind.GENESIS, timestamp=ledger.now(),
        entry=Genesis(network, Role.COOP, "coop9 Ltd", "REG-coop9").to_value(),
    )
    assert rule(ledger.judge("coop9", before)) == "provenance"  # not admitted yet
    ratification = ratified(ledger, ProposalKind.ADMIT, body)
    early = Genesis(network, Role.COOP, "coop9 Ltd", "REG-coop9", rules=ratification.hash)
    early_record = author_record(
        newcomer.signer, None, kind=ActionKind.GENESIS, timestamp=ratification.action.timestamp - 1,
        entry=early.to_value(),
    )
    assert rule(ledger.judge("coop9", early_record)) == "provenance"  # dated before the admission
    renamed = Genesis(network, Role.COOP, "Someone Else Ltd", "REG-coop9", rules=ratification.hash)
    assert rule(ledger.commit_genesis(newcomer, renamed)) == "identity"
    admitted = Genesis(network, Role.COOP, "coop9 Ltd", "REG-coop9", rules=ratification.hash)
    assert valid(ledger.commit_genesis(newcomer, admitted))
    assert valid(ledger.add_member("coop9", "coop9-m0"))
    assert valid(ledger.pay("coop9-m0", "coop0-m0", 10))
    assert ledger.audit().ok


def test_coop_genesis_without_admission_is_refused_by_provenance() -> None:
    ledger = Ledger()
    newcomer, _ = _admit(ledger, "coop9")
    genesis = Genesis(ledger.charter.network_id, Role.COOP, "coop9 Ltd", "REG-coop9", rules=ledger.gov_head)
    assert rule(ledger.commit_genesis(newcomer, genesis)) == "provenance"
    # Nor may it pose as a founding co-op by copying one's name and registration.
    copy = Genesis(ledger.charter.network_id, Role.COOP, "coop0 Ltd", "REG-0")
    assert rule(ledger.commit_genesis(newcomer, copy)) == "provenance"


def test_member_genesis_with_a_credential_for_another_agent_is_refused_by_provenance() -> None:
    ledger = Ledger()
    network = ledger.charter.network_id
    coop = ledger["coop0"].signer
    mallory = Agent("mallory", signer("mallory"), Role.MEMBER, "coop0")
    ledger.agents["mallory"] = mallory
    stolen = ledger["coop0-m0"].chain[0]
    credential = Genesis.from_value(stolen.entry_value()).credential
    assert credential is not None

    def member(name: str, credential: Credential | None) -> Verdict:
        return ledger.commit_genesis(mallory, Genesis(network, Role.MEMBER, name, credential=credential))

    assert rule(member("coop0-m0", credential)) == "provenance"
    # An altered credential (its signature no longer verifies) and a late-dated one fail too.
    forged = Credential(credential.coop, mallory.key, "mallory", credential.issued_at, credential.signature)
    assert rule(member("mallory", forged)) == "provenance"
    future = Credential.issue(coop, mallory.key, "mallory", ledger.clock + 10 * DAY)
    assert rule(member("mallory", future)) == "provenance"
    own = Credential.issue(coop, mallory.key, "mallory", ledger.clock)
    assert rule(member("Alice", own)) == "identity"
    assert rule(member("mallory", None)) == "provenance"
    assert valid(member("mallory", own))


# --- key rotation ---------------------------------------------------------------------------------


def _trading_member(ledger: Ledger) -> Agent:
    """coop0-m0 after two credit actions, at balance 25, with a fresh key ready as coop0-m0-new."""
    assert valid(ledger.pay("coop0-m1", "coop0-m0", 40))
    assert valid(ledger.pay("coop0-m0", "coop1-m0", 15))
    assert valid(ledger.add_member("coop0", "coop0-m0-new"))
    return ledger["coop0-m0"]


def test_close_chain_and_open_chain_carry_the_balance_and_audit_counts_it_once() -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    new = ledger["coop0-m0-new"]
    close = next_record(
        ledger, "coop0-m0", ActionKind.CLOSE_CHAIN,
        ChainClose(new.key, old.activity.last_credit, old.balance).to_value(),
    )
    assert valid(ledger.commit("coop0-m0", close))
    opened = next_record(
        ledger, "coop0-m0-new", ActionKind.OPEN_CHAIN, ChainOpen(old.key, 25).to_value(), ref=close.hash
    )
    assert valid(ledger.commit("coop0-m0-new", opened))
    assert new.balance == 25
    report = ledger.audit()
    assert report.violations == []
    assert report.continued == {old.key}
    assert report.balances[old.key] == 25 == report.balances[new.key]
    assert report.total == 0
    # The balance moves on under the new key; the old chain is closed for good.
    assert valid(ledger.pay("coop0-m0-new", "coop0-m1", 5))
    assert rule(ledger.pay("coop0-m0", "coop0-m1", 5)) == "closed"
    assert new.balance == 20
    assert ledger.audit().ok


def test_coop_rotation_of_a_lost_key_then_open_chain_is_valid() -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    new = ledger["coop0-m0-new"]
    assert old.activity.head is not None
    rotation = Rotation(old.key, new.key, old.activity.head.hash, old.activity.last_credit, old.balance)
    record, verdict = ledger.create("coop0", ROTATION, rotation.to_value())
    assert valid(verdict)
    opened = next_record(
        ledger, "coop0-m0-new", ActionKind.OPEN_CHAIN, ChainOpen(old.key, 25).to_value(), ref=record.hash
    )
    assert valid(ledger.commit("coop0-m0-new", opened))
    report = ledger.audit()
    assert report.violations == []
    assert report.continued == {old.key}
    assert report.zero_sum


def test_wrong_carried_balance_is_refused() -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    new = ledger["coop0-m0-new"]
    assert old.activity.head is not None
    # A co-op rotation that misstates the old chain's balance.
    lying = Rotation(old.key, new.key, old.activity.head.hash, old.activity.last_credit, 26)
    assert rule(ledger.create("coop0", ROTATION, lying.to_value())[1]) == "rotation"
    # A close-chain that misstates it: the old chain's own activity refuses it.
    bad_close = next_record(
        ledger, "coop0-m0", ActionKind.CLOSE_CHAIN, ChainClose(new.key, old.activity.last_credit, 26).to_value()
    )
    assert rule(ledger.judge("coop0-m0", bad_close)) == "prev-credit"
    # An open-chain that claims more than the close carried.
    close = next_record(
        ledger, "coop0-m0", ActionKind.CLOSE_CHAIN, ChainClose(new.key, old.activity.last_credit, 25).to_value()
    )
    assert valid(ledger.commit("coop0-m0", close))
    for claimed in (26, 24, 0):
        opened = next_record(
            ledger, "coop0-m0-new", ActionKind.OPEN_CHAIN, ChainOpen(old.key, claimed).to_value(), ref=close.hash
        )
        assert rule(ledger.judge("coop0-m0-new", opened)) == "rotation"


def test_rotation_must_carry_the_balance_at_the_old_head_not_an_earlier_one() -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    new = ledger["coop0-m0-new"]
    assert old.activity.head is not None
    first_credit = old.chain[1]  # +40, before the -15 that followed
    stale = Rotation(old.key, new.key, old.activity.head.hash, first_credit.hash, 40)
    assert rule(ledger.create("coop0", ROTATION, stale.to_value())[1]) == "rotation"
    from_nothing = Rotation(old.key, new.key, old.activity.head.hash, None, 0)
    assert rule(ledger.create("coop0", ROTATION, from_nothing.to_value())[1]) == "rotation"
    # Vouching for an earlier head is allowed, with the balance at that head.
    at_first = Rotation(old.key, new.key, first_credit.hash, first_credit.hash, 40)
    assert valid(ledger.create("coop0", ROTATION, at_first.to_value())[1])


def test_rotation_by_another_coop_or_to_another_agent_is_refused_by_rotation() -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    new = ledger["coop0-m0-new"]
    assert old.activity.head is not None
    rotation = Rotation(old.key, new.key, old.activity.head.hash, old.activity.last_credit, 25)
    assert rule(ledger.create("coop1", ROTATION, rotation.to_value())[1]) == "rotation"
    record, verdict = ledger.create("coop0", ROTATION, rotation.to_value())
    assert valid(verdict)
    assert valid(ledger.add_member("coop0", "coop0-m0-thief"))
    hijack = next_record(
        ledger, "coop0-m0-thief", ActionKind.OPEN_CHAIN, ChainOpen(old.key, 25).to_value(), ref=record.hash
    )
    assert rule(ledger.judge("coop0-m0-thief", hijack)) == "rotation"


@pytest.mark.parametrize("kind", [ActionKind.CREATE, ActionKind.GENESIS])
def test_open_chain_must_refer_to_a_close_or_a_rotation(kind: ActionKind) -> None:
    ledger = Ledger()
    old = _trading_member(ledger)
    target = old.chain[-1] if kind is ActionKind.CREATE else old.chain[0]
    opened = next_record(
        ledger, "coop0-m0-new", ActionKind.OPEN_CHAIN, ChainOpen(old.key, 25).to_value(), ref=target.hash
    )
    assert rule(ledger.judge("coop0-m0-new", opened)) == "rotation"


# --- what the author signed -----------------------------------------------------------------------


def test_a_record_carrying_an_entry_its_author_did_not_sign_gets_no_verdict_and_frames_no_one() -> None:
    ledger = Ledger()
    assert valid(ledger.pay("coop0-m0", "coop0-m1", 10))
    genuine = ledger["coop0-m0"].chain[-1]
    swapped = dataclasses.replace(genuine, entry=encoding.encode({"junk": 1}))
    held = HeldRecords(r for chain in ledger.chains() for r in chain)
    engine = Engine(ledger.charter)
    # Seen first, the swapped record is judged as a record whose entry is still to be fetched...
    verdict = engine.validate_record(swapped, held)
    assert isinstance(verdict, Missing)
    assert verdict.dependencies == (genuine.action.entry_hash,)
    # ...so it poisons nothing: the genuine record, arriving next, is valid.
    assert valid(engine.validate_record(genuine, held))
    # Nor can anyone warrant the author with it.
    warrant = Warrant.issue(ledger["coop1"].signer, "invalid", genuine.action.author, (swapped,), ledger.now())
    assert not valid(check_warrant(warrant, Engine(ledger.charter), held))
    # A peer holding the swapped copy as a dependency waits for the real entry.
    tampered_store = HeldRecords(r for chain in ledger.chains() for r in chain)
    tampered_store.add([swapped])
    follow_up = ledger.payment("coop0-m0", "coop0-m1", 1)
    record = commit_payment(ledger["coop0-m0"].signer, follow_up)
    verdict = Engine(ledger.charter).validate_record(record, tampered_store)
    assert isinstance(verdict, Missing)


def test_an_action_without_the_entry_its_kind_needs_is_refused_by_schema() -> None:
    ledger = Ledger()
    payer = ledger["coop0-m0"]
    assert payer.activity.head is not None
    action = Action(ActionKind.CREATE, payer.key, 1, payer.activity.head.hash, ledger.now(), PAYMENT, None)
    record = sign_record(payer.signer, action, None)
    assert rule(ledger.engine.validate_record(record, ledger.held)) == "schema"
    assert rule(ledger.judge("coop0-m0", record)) == "kind"


# --- former known gaps (each was a strict xfail until it was fixed) -------------------------------


def test_a_revoked_member_citing_the_rules_from_before_its_revocation_is_judged_under_them() -> None:
    """The record stays valid under the head it names; a stale-rules warrant is what bars the
    author once the grace has passed (tests/core/test_stale_rules.py)."""
    ledger = Ledger()
    ratified(ledger, ProposalKind.REVOKE, {"agent": ledger["coop0-m0"].key.to_bytes(), "reason": "left"})
    assert rule(ledger.commit_both(signed_payment(ledger, "coop0-m0", "coop0-m1", 1))) == "revoked"
    assert valid(ledger.commit_both(signed_payment(ledger, "coop0-m0", "coop0-m1", 1, rules=None)))


def test_a_forked_genesis_does_not_make_a_counterpartys_verdict_depend_on_arrival_order() -> None:
    ledger = Ledger()
    genuine = ledger["coop0-m1"].chain[0]
    credential = Credential.issue(signer("rogue"), ledger["coop0-m1"].key, "coop0-m1", ledger.now())
    forked = author_record(
        ledger["coop0-m1"].signer, None, kind=ActionKind.GENESIS, timestamp=ledger.now(),
        entry=Genesis(ledger.charter.network_id, Role.MEMBER, "coop0-m1", credential=credential).to_value(),
    )
    record = commit_payment(ledger["coop0-m0"].signer, ledger.payment("coop0-m0", "coop0-m1", 10))
    rest = [r for chain in ledger.chains() for r in chain if r.hash != genuine.hash]
    verdicts = [
        Engine(ledger.charter).validate_record(record, HeldRecords([*rest, *pair]))
        for pair in ((genuine, forked), (forked, genuine))
    ]
    assert verdicts[0] == verdicts[1]
    assert valid(verdicts[0])  # the payment pins the genuine genesis, whichever is held first

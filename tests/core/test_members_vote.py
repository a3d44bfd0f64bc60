"""Members vote where the charter says so (``members_vote``): who counts, and how the tally counts them.

With the switch off (the default) only co-ops vote, as before. With it on, a
member's vote pins its genesis and counts if its co-op was in the proposal's
electorate, the member was not revoked and had joined by then; quorum stays
counted over co-ops, the threshold over every counted vote. Every case drives
real, correctly signed records through the activity fold and the engine a
peer runs (``Ledger``), and the honest variant is checked beside each refusal.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import Signer
from conode.testing.ledger import DAY, Agent, Ledger
from conode.validation.charter import Parameters
from conode.validation.engine import Engine
from conode.validation.entries import Credential, Genesis, Role
from conode.validation.governance import VOTE, ProposalKind, Vote, rules_from_charter, tally
from conode.validation.memory import HeldRecords
from conode.validation.schema import SchemaError
from conode.validation.verdict import Invalid, Missing, Valid, Verdict

AMEND_REPLICATION = {"param": "replication", "value": 5}


def rule(verdict: Verdict) -> str:
    """The rule an ``Invalid`` verdict names (fails the test on any other verdict)."""
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def valid(verdict: Verdict) -> bool:
    return isinstance(verdict, Valid)


def propose(ledger: Ledger, coop: str = "coop0", body: dict[str, Any] | None = None) -> Record:
    record, verdict = ledger.propose(coop, ProposalKind.AMEND, body or AMEND_REPLICATION)
    assert valid(verdict), verdict
    return record


def cast(ledger: Ledger, name: str, proposal: Record, choice: str = "yes") -> Record:
    """A valid vote by ``name`` (a member's pins its genesis: ``Ledger.vote``)."""
    record, verdict = ledger.vote(name, proposal.hash, choice)
    assert valid(verdict), verdict
    return record


def vote_record(
    ledger: Ledger, name: str, proposal: Record, *, pin: Any = None, choice: str = "yes",
    timestamp: int | None = None,
) -> Record:
    """A vote by ``name`` as the next record of its chain (not committed), pinning ``pin``."""
    agent = ledger[name]
    return author_record(
        agent.signer, agent.activity.head, kind=ActionKind.CREATE,
        timestamp=ledger.now() if timestamp is None else timestamp,
        entry=Vote(proposal.hash, choice, ledger.gov_head, pin).to_value(), entry_type=VOTE,
    )  # fmt: skip


def genesis_of(ledger: Ledger, name: str) -> Record:
    return ledger[name].chain[0]


def ratify(ledger: Ledger, proposal: Record, votes: list[Record]) -> tuple[Record, Verdict]:
    """Wait out the deadline; the proposer ratifies naming ``votes``."""
    ledger.advance(DAY + 1)
    return ledger.ratify(ledger.name_of(proposal.action.author), proposal.hash, [v.hash for v in votes])


def amend_on(ledger: Ledger) -> Record:
    """Ratify ``members_vote = true`` with every co-op's vote: the ratification record."""
    proposal = propose(ledger, body={"param": "members_vote", "value": True})
    votes = [cast(ledger, c, proposal) for c in ledger.agents if ledger[c].role == "coop"]
    record, verdict = ratify(ledger, proposal, votes)
    assert valid(verdict), verdict
    return record


# --- the switch ---------------------------------------------------------------------------------


def test_a_charter_without_the_switch_keeps_its_network_id() -> None:
    # known answer: the id the same charter had before members_vote existed
    assert str(Ledger().charter.network_id) == "chr_zuoy4l6r5qcool3etmr6s5cpwo2bb746wyhjdfg2az6ulwasdphisckyfi"
    assert "members_vote" not in Ledger().charter.params.to_value()
    assert Ledger(members_vote=True).charter.network_id != Ledger().charter.network_id


def test_the_switch_round_trips_and_a_spelled_out_default_or_a_non_boolean_is_refused() -> None:
    on = Ledger(members_vote=True).charter.params
    assert on.to_value()["members_vote"] is True
    assert Parameters.from_value(on.to_value()) == on
    off = Ledger().charter.params
    with pytest.raises(SchemaError, match="default"):
        Parameters.from_value({**off.to_value(), "members_vote": False})
    with pytest.raises(SchemaError, match="true or false"):
        Parameters.from_value({**off.to_value(), "members_vote": 1})
    assert off.amended("members_vote", True).members_vote is True
    with pytest.raises(SchemaError, match="true or false"):
        off.amended("members_vote", "yes")


# --- switch off: only co-ops --------------------------------------------------------------------


def test_with_the_switch_off_a_members_vote_is_refused_by_not_a_coop_pinned_or_not() -> None:
    ledger = Ledger()
    proposal = propose(ledger)
    pinned = vote_record(ledger, "coop0-m0", proposal, pin=genesis_of(ledger, "coop0-m0").hash)
    unpinned = vote_record(ledger, "coop0-m0", proposal)
    assert rule(ledger.judge("coop0-m0", pinned)) == "not-a-coop"
    assert rule(ledger.judge("coop0-m0", unpinned)) == "not-a-coop"
    # and the tally ignores it, though it holds the genesis it pins
    geneses = {genesis_of(ledger, "coop0-m0").hash: genesis_of(ledger, "coop0-m0")}
    result = tally(proposal, proposal.action.timestamp + DAY, [pinned], ledger.rules_now(), geneses)
    assert result.counted == () and result.members == 0


# --- switch on: who counts ----------------------------------------------------------------------


def test_a_members_vote_counts_beside_its_coops_and_a_ratification_naming_both_is_valid() -> None:
    ledger = Ledger(coops=2, members=2, members_vote=True)
    proposal = propose(ledger)
    votes = [cast(ledger, "coop0", proposal), cast(ledger, "coop0-m0", proposal),
             cast(ledger, "coop0-m1", proposal, "no"), cast(ledger, "coop1-m0", proposal)]  # fmt: skip
    _, verdict = ratify(ledger, proposal, votes)
    assert valid(verdict), verdict
    assert ledger.rules_now().params.replication == 5
    geneses = {genesis_of(ledger, n).hash: genesis_of(ledger, n) for n in ("coop0-m0", "coop0-m1", "coop1-m0")}
    result = tally(proposal, proposal.action.timestamp + DAY, votes, rules_from_charter(ledger.charter), geneses)
    assert (result.yes, result.no, result.members, result.took_part, result.electorate) == (3, 1, 3, 2, 2)
    assert "3 by members" in result.reason


def test_a_coops_vote_pins_no_genesis() -> None:
    ledger = Ledger(members_vote=True)
    proposal = propose(ledger)
    pinned = vote_record(ledger, "coop0", proposal, pin=genesis_of(ledger, "coop0").hash)
    assert rule(ledger.judge("coop0", pinned)) == "vote"
    assert valid(ledger.vote("coop0", proposal.hash)[1])


def test_a_members_second_vote_does_not_count() -> None:
    ledger = Ledger(coops=3, members=1, members_vote=True)
    proposal = propose(ledger)
    first = cast(ledger, "coop0-m0", proposal)
    again = vote_record(ledger, "coop0-m0", proposal, pin=genesis_of(ledger, "coop0-m0").hash, choice="no")
    assert rule(ledger.judge("coop0-m0", again)) == "double-vote"  # on its own chain: the fold
    # on a fork of its chain (a valid record on its own), the tally counts only the first
    fork = author_record(
        ledger["coop0-m0"].signer, _head_before(ledger, "coop0-m0", first), kind=ActionKind.CREATE,
        timestamp=first.action.timestamp + 1,
        entry=Vote(proposal.hash, "no", None, genesis_of(ledger, "coop0-m0").hash).to_value(), entry_type=VOTE,
    )  # fmt: skip
    assert valid(ledger.engine.validate_record(fork, ledger.held))
    ledger.held.add([fork])
    coop1 = cast(ledger, "coop1", proposal)
    _, verdict = ratify(ledger, proposal, [first, fork, coop1])
    assert rule(verdict) == "tally" and "second vote" in verdict.reason  # type: ignore[union-attr]
    assert valid(ledger.ratify("coop0", proposal.hash, [first.hash, coop1.hash])[1])


def _head_before(ledger: Ledger, name: str, record: Record) -> ChainHead:
    """The chain head just before ``record`` (to author a fork at its position)."""
    chain = ledger[name].chain
    return ChainHead.after(chain[chain.index(record) - 1])


def test_a_member_whose_coop_was_admitted_after_the_proposal_does_not_vote() -> None:
    ledger = Ledger(coops=2, members=1, members_vote=True)
    newcomer = Agent("coop9", Signer(hashlib.blake2b(b"new co-op coop9", digest_size=32).digest()), Role.COOP)
    ledger.agents["coop9"] = newcomer
    body = {"agent": newcomer.key.to_bytes(), "legal_name": "coop9 Ltd", "registration": "REG-coop9"}
    admission, _ = ledger.propose("coop0", ProposalKind.ADMIT, body)
    admission_votes = [cast(ledger, c, admission) for c in ("coop0", "coop1")]
    ledger.advance(DAY + 1)
    proposal = propose(ledger)  # made before the admission is ratified: coop9 is not in its electorate
    assert valid(ledger.ratify("coop0", admission.hash, [v.hash for v in admission_votes])[1])
    network = ledger.charter.network_id
    genesis = Genesis(network, Role.COOP, "coop9 Ltd", "REG-coop9", rules=ledger.gov_head)
    assert valid(ledger.commit_genesis(newcomer, genesis))
    assert valid(ledger.add_member("coop9", "coop9-m0"))
    verdict = ledger.vote("coop9-m0", proposal.hash)[1]
    assert rule(verdict) == "electorate" and "co-op was not in the electorate" in verdict.reason  # type: ignore[union-attr]
    assert rule(ledger.vote("coop9", proposal.hash)[1]) == "not-a-coop"
    later = propose(ledger)  # a proposal made after the admission: both vote
    assert valid(ledger.vote("coop9-m0", later.hash)[1])
    assert valid(ledger.vote("coop9", later.hash)[1])


def test_a_revoked_member_and_the_members_of_a_revoked_coop_do_not_vote() -> None:
    ledger = Ledger(coops=3, members=1, members_vote=True)
    for target in ("coop0-m0", "coop2"):
        body = {"agent": ledger[target].key.to_bytes(), "reason": "gone"}
        revocation, _ = ledger.propose("coop0", ProposalKind.REVOKE, body)
        votes = [cast(ledger, c, revocation) for c in ("coop0", "coop1")]
        ledger.advance(DAY + 1)
        assert valid(ledger.ratify("coop0", revocation.hash, [v.hash for v in votes])[1])
    proposal = propose(ledger)
    assert rule(ledger.vote("coop0-m0", proposal.hash)[1]) == "revoked"
    assert rule(ledger.vote("coop2-m0", proposal.hash)[1]) == "electorate"
    assert valid(ledger.vote("coop1-m0", proposal.hash)[1])


def test_a_member_who_joined_after_the_proposal_does_not_vote_on_it() -> None:
    ledger = Ledger(members_vote=True)
    proposal = propose(ledger)
    assert valid(ledger.add_member("coop0", "coop0-late"))
    verdict = ledger.vote("coop0-late", proposal.hash)[1]
    assert rule(verdict) == "electorate" and "joined after" in verdict.reason  # type: ignore[union-attr]
    assert valid(ledger.vote("coop0-late", propose(ledger).hash)[1])


def test_a_vote_pinning_another_agents_genesis_or_a_non_genesis_is_refused_by_genesis() -> None:
    ledger = Ledger(members_vote=True)
    proposal = propose(ledger)
    cast(ledger, "coop0-m1", propose(ledger, "coop1"))  # a record of its own after its genesis
    someone_else = genesis_of(ledger, "coop0-m0").hash
    not_a_genesis = ledger["coop0-m1"].chain[1].hash
    for pin in (someone_else, not_a_genesis):
        record = vote_record(ledger, "coop0-m1", proposal, pin=pin)
        assert rule(ledger.judge("coop0-m1", record)) == "genesis"  # the fold: not its chain's genesis
        # the record rule alone (what a peer holding no chain state runs) says the same
        assert rule(Engine(ledger.charter).validate_record(record, ledger.held)) == "genesis"
    assert valid(ledger.vote("coop0-m1", proposal.hash)[1])


def test_a_vote_pinning_its_authors_other_forked_genesis_is_refused_by_the_fold() -> None:
    ledger = Ledger(members_vote=True)
    member, coop = ledger["coop0-m0"], ledger["coop0"]
    # the member signs a second, valid genesis (a fork of its chain at seq 0) before the proposal
    credential = Credential.issue(coop.signer, member.key, "coop0-m0", ledger.now())
    genesis = Genesis(ledger.charter.network_id, Role.MEMBER, "coop0-m0", credential=credential)
    forked = author_record(member.signer, None, kind=ActionKind.GENESIS, timestamp=ledger.now(),
                           entry=genesis.to_value())  # fmt: skip
    proposal = propose(ledger)
    assert forked.hash != genesis_of(ledger, "coop0-m0").hash
    ledger.held.add([forked])
    record = vote_record(ledger, "coop0-m0", proposal, pin=forked.hash)
    # the record rule alone accepts it (it is the author's genesis), the chain's fold does not
    assert valid(Engine(ledger.charter).validate_record(record, ledger.held))
    assert rule(ledger.judge("coop0-m0", record)) == "genesis"


def test_a_ratification_counting_a_members_vote_is_missing_until_the_pinned_genesis_is_held() -> None:
    ledger = Ledger(members_vote=True)
    proposal = propose(ledger)
    votes = [cast(ledger, "coop0", proposal), cast(ledger, "coop1-m0", proposal)]
    record, verdict = ratify(ledger, proposal, votes)
    assert valid(verdict), verdict
    pin = genesis_of(ledger, "coop1-m0").hash
    # a peer that holds the votes (already judged valid) but not the member's genesis
    others = [r for chain in ledger.chains() for r in chain if r.hash != pin]
    peer = HeldRecords(others, trusted=True)
    judged = Engine(ledger.charter).validate_record(record, peer)
    assert isinstance(judged, Missing) and pin in judged.dependencies
    peer.add([genesis_of(ledger, "coop1-m0")])
    assert valid(Engine(ledger.charter).validate_record(record, peer))


# --- the tally: quorum over co-ops, threshold over votes ----------------------------------------


def test_quorum_counts_a_coop_whose_members_voted_though_it_did_not() -> None:
    ledger = Ledger(coops=4, members=1, members_vote=True)  # quorum 50 %: two co-ops of four
    proposal = propose(ledger)
    alone = [cast(ledger, "coop0", proposal)]
    by_member = cast(ledger, "coop1-m0", proposal)
    rules = rules_from_charter(ledger.charter)
    geneses = {genesis_of(ledger, "coop1-m0").hash: genesis_of(ledger, "coop1-m0")}
    deadline = proposal.action.timestamp + DAY
    assert not tally(proposal, deadline, alone, rules, geneses).ratified  # one co-op of four
    result = tally(proposal, deadline, [*alone, by_member], rules, geneses)
    assert result.ratified and result.took_part == 2
    # two members of one co-op are still one co-op taking part
    ledger2 = Ledger(coops=4, members=2, members_vote=True)
    p2 = propose(ledger2)
    two = [cast(ledger2, "coop0-m0", p2), cast(ledger2, "coop0-m1", p2)]
    g2 = {genesis_of(ledger2, n).hash: genesis_of(ledger2, n) for n in ("coop0-m0", "coop0-m1")}
    crowd = tally(p2, p2.action.timestamp + DAY, two, rules_from_charter(ledger2.charter), g2)
    assert (crowd.took_part, crowd.yes, crowd.ratified) == (1, 2, False)
    assert valid(ratify(ledger, proposal, [*alone, by_member])[1])


def test_the_threshold_is_over_every_counted_vote_members_included() -> None:
    ledger = Ledger(coops=2, members=3, members_vote=True)
    proposal = propose(ledger)
    votes = [cast(ledger, "coop0", proposal), cast(ledger, "coop1", proposal)]  # two co-ops: yes
    votes += [cast(ledger, f"coop0-m{j}", proposal, "no") for j in range(3)]  # three members: no
    geneses = {genesis_of(ledger, f"coop0-m{j}").hash: genesis_of(ledger, f"coop0-m{j}") for j in range(3)}
    result = tally(proposal, proposal.action.timestamp + DAY, votes, rules_from_charter(ledger.charter), geneses)
    assert (result.yes, result.no, result.ratified) == (2, 3, False)
    assert rule(ratify(ledger, proposal, votes)[1]) == "tally"


def test_a_members_vote_whose_genesis_is_not_given_is_not_counted() -> None:
    ledger = Ledger(members_vote=True)
    proposal = propose(ledger)
    vote = cast(ledger, "coop0-m0", proposal)
    result = tally(proposal, proposal.action.timestamp + DAY, [vote], rules_from_charter(ledger.charter))
    assert result.counted == () and "not held" in dict(result.ignored)[vote.hash]


@pytest.fixture(scope="module")
def member_ballot() -> tuple[Ledger, Record, list[Record], dict[Any, Record]]:
    """Three co-ops with two members each voting, plus forks, a late vote and an outsider."""
    ledger = Ledger(coops=3, members=2, members_vote=True)
    proposal = propose(ledger)
    t = proposal.action.timestamp + 1_000
    votes = []
    for i, name in enumerate(["coop0", "coop0-m0", "coop0-m1", "coop1-m0", "coop2", "coop2-m1"]):
        pin = genesis_of(ledger, name).hash if "-m" in name else None
        choice = ("yes", "no", "abstain")[i % 3]
        votes.append(vote_record(ledger, name, proposal, pin=pin, choice=choice, timestamp=t + i))
    pin = genesis_of(ledger, "coop0-m0").hash
    votes.append(vote_record(ledger, "coop0-m0", proposal, pin=pin, choice="yes", timestamp=t + 10))  # second
    votes.append(vote_record(ledger, "coop1-m1", proposal, pin=genesis_of(ledger, "coop1-m1").hash,
                             timestamp=proposal.action.timestamp + DAY + 1))  # too late  # fmt: skip
    ledger.add_member("coop1", "coop1-late")
    votes.append(vote_record(ledger, "coop1-late", proposal, pin=genesis_of(ledger, "coop1-late").hash,
                             timestamp=t + 20))  # joined after  # fmt: skip
    geneses = {r.hash: r for chain in ledger.chains() for r in chain[:1]}
    return ledger, proposal, votes, geneses


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_tally_with_member_votes_is_independent_of_vote_order(member_ballot: Any, rnd: Any) -> None:
    ledger, proposal, votes, geneses = member_ballot
    rules = rules_from_charter(ledger.charter)
    deadline = proposal.action.timestamp + DAY
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    expected = tally(proposal, deadline, votes, rules, geneses)
    assert tally(proposal, deadline, shuffled, rules, geneses) == expected
    assert (len(expected.counted), expected.members, expected.took_part) == (6, 4, 3)
    assert len(expected.ignored) == 3


# --- the switch amended on ----------------------------------------------------------------------


def test_the_switch_amended_on_applies_to_proposals_made_after_its_ratification() -> None:
    ledger = Ledger(coops=2, members=1)
    before = propose(ledger, body={"param": "replication", "value": 4})
    assert rule(ledger.vote("coop0-m0", before.hash)[1]) == "not-a-coop"
    amend_on(ledger)
    assert ledger.rules_now().params.members_vote
    # the earlier proposal keeps the electorate of its time: co-ops only
    assert rule(ledger.vote("coop0-m0", before.hash)[1]) == "not-a-coop"
    after = propose(ledger)
    votes = [cast(ledger, "coop0-m0", after), cast(ledger, "coop1-m0", after)]
    _, verdict = ratify(ledger, after, votes)
    assert valid(verdict), verdict
    assert ledger.rules_now().params.replication == 5


def test_an_amendment_of_the_switch_to_a_non_boolean_is_refused_when_proposed() -> None:
    ledger = Ledger()
    _, verdict = ledger.propose("coop0", ProposalKind.AMEND, {"param": "members_vote", "value": 1})
    assert rule(verdict) == "proposal"

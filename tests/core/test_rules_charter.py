"""The charter and governance: one byte form, a network id that names every field, refused
parameters, rules in force only from their effective time, and a tally that ignores vote order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conode import encoding
from conode.chain import ActionKind, Record, author_record
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, BundleHash
from conode.testing.ledger import DAY, Ledger
from conode.validation.charter import (
    DEFAULT_RULES_GRACE_US,
    AppPin,
    Charter,
    FoundingCoop,
    Limits,
    Parameters,
)
from conode.validation.governance import (
    VOTE,
    Decision,
    ProposalKind,
    Rules,
    Vote,
    log_rank,
    rules_from_charter,
    rules_in_force,
    tally,
)
from conode.validation.schema import SchemaError
from conode.validation.verdict import Invalid, Valid

T0 = 1_700_000_000_000_000


def key(n: int) -> AgentKey:
    return AgentKey(bytes([n]) * 32)


PARAMS = Parameters(
    coop_limits=Limits(1_000, 100_000),
    member_limits=Limits(100, 10_000),
    foundation_share_bp=1_000,
    quorum_bp=5_000,
    threshold_bp=5_001,
    voting_period_us=DAY,
    replication=3,
    apps=(AppPin("exchange", "1.0.0", BundleHash.of(b"exchange")),),
)
CHARTER = Charter(
    name="Test network",
    currency="CXT",
    scale=2,
    founding=(FoundingCoop(key(1), "One Ltd", "REG-1"), FoundingCoop(key(2), "Two Ltd", "REG-2")),
    params=PARAMS,
    created_at=T0,
    foundation=key(9),
)

# --- strategies -----------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
amounts = st.integers(0, 10**15)
limits = st.builds(Limits, amounts, amounts)
apps = st.lists(
    st.builds(AppPin, st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8),
              st.binary(min_size=32, max_size=32).map(BundleHash)),
    max_size=3, unique_by=lambda a: a.id,
).map(tuple)
parameters = st.builds(
    Parameters,
    coop_limits=limits,
    member_limits=limits,
    foundation_share_bp=st.integers(0, 5_000),
    quorum_bp=st.integers(1, 10_000),
    threshold_bp=st.integers(1, 10_000),
    voting_period_us=st.integers(1, 366 * 86_400 * 10**6),
    replication=st.integers(1, 100),
    apps=apps,
)
agent_keys = st.binary(min_size=32, max_size=32).map(AgentKey)
charters = st.builds(
    Charter,
    name=names,
    currency=st.text(min_size=1, max_size=12),
    scale=st.integers(0, 8),
    founding=st.lists(st.builds(FoundingCoop, agent_keys, names, names), min_size=1, max_size=4,
                      unique_by=lambda c: c.agent).map(tuple),
    params=parameters,
    created_at=st.integers(0, 2**62),
    foundation=st.none() | agent_keys,
)


# --- one byte form and the network id -------------------------------------------------------------


@settings(max_examples=150)
@given(charters)
def test_charter_canonical_bytes_round_trip(charter: Charter) -> None:
    data = charter.to_bytes()
    again = Charter.from_bytes(data)
    assert again == charter
    assert again.to_bytes() == data
    assert again.network_id == charter.network_id


def _variants() -> dict[str, Charter]:
    """``CHARTER`` with one field changed, for every field of the charter and its parameters."""
    p = PARAMS
    params = {
        "coop_limits.credit": dataclasses.replace(p, coop_limits=Limits(1_001, 100_000)),
        "coop_limits.cap": dataclasses.replace(p, coop_limits=Limits(1_000, 100_001)),
        "member_limits.credit": dataclasses.replace(p, member_limits=Limits(101, 10_000)),
        "member_limits.cap": dataclasses.replace(p, member_limits=Limits(100, 10_001)),
        "foundation_share_bp": dataclasses.replace(p, foundation_share_bp=1_001),
        "quorum_bp": dataclasses.replace(p, quorum_bp=5_001),
        "threshold_bp": dataclasses.replace(p, threshold_bp=5_000),
        "voting_period_us": dataclasses.replace(p, voting_period_us=DAY + 1),
        "replication": dataclasses.replace(p, replication=4),
        "apps": dataclasses.replace(p, apps=()),
        "apps.version": dataclasses.replace(p, apps=(dataclasses.replace(p.apps[0], version="1.0.1"),)),
        "apps.id": dataclasses.replace(p, apps=(dataclasses.replace(p.apps[0], id="exchang3"),)),
        "apps.code_hash": dataclasses.replace(
            p, apps=(dataclasses.replace(p.apps[0], code_hash=BundleHash.of(b"other")),)
        ),
        "rules_grace_us": dataclasses.replace(p, rules_grace_us=DAY),
        "members_vote": dataclasses.replace(p, members_vote=True),
        "app_config": dataclasses.replace(p, app_config={"exchange": {"grant_cap": 5}}),
        "app_config.value": dataclasses.replace(p, app_config={"exchange": {"grant_cap": 6}}),
        "session_timeout_us": dataclasses.replace(p, session_timeout_us=90_000_000),
        "clock_tolerance_us": dataclasses.replace(p, clock_tolerance_us=60_000_000),
    }
    c = CHARTER
    one, two = c.founding
    variants = {
        "name": dataclasses.replace(c, name="Test network 2"),
        "currency": dataclasses.replace(c, currency="CXU"),
        "scale": dataclasses.replace(c, scale=3),
        "founding": dataclasses.replace(c, founding=(one,)),
        "founding.order": dataclasses.replace(c, founding=(two, one)),
        "founding.agent": dataclasses.replace(c, founding=(dataclasses.replace(one, agent=key(3)), two)),
        "founding.legal_name": dataclasses.replace(c, founding=(dataclasses.replace(one, legal_name="Uno Ltd"), two)),
        "founding.registration": dataclasses.replace(
            c, founding=(dataclasses.replace(one, registration="REG-1b"), two)
        ),
        "created_at": dataclasses.replace(c, created_at=T0 + 1),
        "foundation": dataclasses.replace(c, foundation=key(8)),
        "foundation.none": dataclasses.replace(c, foundation=None),
    }
    variants.update({f"params.{name}": dataclasses.replace(c, params=v) for name, v in params.items()})
    return variants


def test_network_id_changes_with_any_field() -> None:
    variants = _variants()
    touched = {name.split(".")[0] for name in variants}
    touched |= {name.split(".")[1] for name in variants if name.startswith("params.")}
    for cls in (Charter, Parameters):
        missing = {f.name for f in dataclasses.fields(cls)} - touched
        assert not missing, f"no variant changes {cls.__name__}.{missing}"
    ids = {name: v.network_id for name, v in variants.items()}
    ids["original"] = CHARTER.network_id
    assert len(set(ids.values())) == len(ids), "two different charters share a network id"
    assert dataclasses.replace(CHARTER).network_id == CHARTER.network_id


# --- refused parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"foundation_share_bp": 5_001},
        {"foundation_share_bp": 10_000},
        {"foundation_share_bp": -1},
        {"quorum_bp": 0},
        {"quorum_bp": 10_001},
        {"threshold_bp": 0},
        {"threshold_bp": 10_001},
        {"voting_period_us": 0},
        {"replication": 0},
        {"session_timeout_us": 0},
        {"session_timeout_us": 3_600 * 10**6 + 1},
        {"clock_tolerance_us": -1},
        {"apps": (PARAMS.apps[0], PARAMS.apps[0])},
    ],
    ids=lambda c: "=".join(map(str, next(iter(c.items()))))[:40],
)
def test_invalid_parameters_are_refused_however_they_arrive(changes: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        dataclasses.replace(PARAMS, **changes)
    # Decoded from bytes: the same refusal, not a charter with a bad parameter.
    value = CHARTER.to_value()
    name, bad = next(iter(changes.items()))
    value["params"][name] = [a.to_value() for a in bad] if name == "apps" else bad
    with pytest.raises(EncodingError):
        Charter.from_bytes(encoding.encode(value))
    # Amended: refused as well.
    with pytest.raises(SchemaError):
        PARAMS.amended(name, value["params"][name])


def test_foundation_share_may_be_anything_up_to_half() -> None:
    for share in (0, 1, 4_999, 5_000):
        assert dataclasses.replace(PARAMS, foundation_share_bp=share).foundation_share_bp == share


def test_charter_without_a_founding_coop_is_refused() -> None:
    with pytest.raises(SchemaError):
        dataclasses.replace(CHARTER, founding=())
    value = CHARTER.to_value()
    value["founding"] = []
    with pytest.raises(EncodingError):
        Charter.from_bytes(encoding.encode(value))


def test_charter_naming_a_coop_twice_is_refused() -> None:
    one = CHARTER.founding[0]
    for twin in (one, dataclasses.replace(one, legal_name="Other Ltd", registration="REG-X")):
        with pytest.raises(SchemaError):
            dataclasses.replace(CHARTER, founding=(one, twin))
    value = CHARTER.to_value()
    value["founding"] = [one.to_value(), one.to_value()]
    with pytest.raises(EncodingError):
        Charter.from_bytes(encoding.encode(value))


def test_unknown_parameter_cannot_be_amended() -> None:
    with pytest.raises(SchemaError):
        PARAMS.amended("network", 1)
    with pytest.raises(SchemaError):
        PARAMS.amended("member_limits", {"credit": -1, "cap": 5})


def test_proposal_to_give_the_foundation_more_than_half_is_refused_by_the_engine() -> None:
    ledger = Ledger()
    _, verdict = ledger.propose("coop0", ProposalKind.AMEND, {"param": "foundation_share_bp", "value": 5_001})
    assert isinstance(verdict, Invalid) and verdict.rule == "proposal"
    _, verdict = ledger.propose("coop0", ProposalKind.AMEND, {"param": "foundation_share_bp", "value": 5_000})
    assert isinstance(verdict, Valid)


# --- rules in force -------------------------------------------------------------------------------

T1, T2, T3 = T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY
DECISIONS = (
    Decision(T1, ActionHash.of(b"p1"), ProposalKind.AMEND,
             {"param": "member_limits", "value": Limits(500, 10_000).to_value()}),
    Decision(T2, ActionHash.of(b"p2"), ProposalKind.ADMIT,
             {"agent": key(3).to_bytes(), "legal_name": "Three Ltd", "registration": "REG-3"}),
    Decision(T2, ActionHash.of(b"p3"), ProposalKind.REVOKE, {"agent": key(1).to_bytes(), "reason": "dissolved"}),
    Decision(T3, ActionHash.of(b"p4"), ProposalKind.AMEND, {"param": "replication", "value": 7}),
)


def _view(rules: Rules) -> tuple[Any, ...]:
    return (rules.params, dict(rules.coops), dict(rules.revoked), rules.log_length)


def test_rules_in_force_apply_each_decision_from_its_effective_time_on() -> None:
    before = rules_in_force(CHARTER, DECISIONS, T1 - 1)
    assert _view(before) == _view(rules_from_charter(CHARTER))
    at_t1 = rules_in_force(CHARTER, DECISIONS, T1)
    assert at_t1.params.member_limits == Limits(500, 10_000)
    assert at_t1.log_length == 1
    assert not at_t1.is_registered_coop(key(3))
    at_t2 = rules_in_force(CHARTER, DECISIONS, T2)
    assert at_t2.is_registered_coop(key(3))
    assert at_t2.coops[key(3)].since == T2
    assert not at_t2.is_registered_coop(key(1))
    assert at_t2.revoked == {key(1): T2}
    assert at_t2.electorate() == {key(2), key(3)}
    assert at_t2.params.replication == 3
    assert rules_in_force(CHARTER, DECISIONS, T3).params.replication == 7


@settings(max_examples=100)
@given(st.integers(T0, T3 + DAY))
def test_rules_in_force_at_any_time_are_the_charter_plus_exactly_the_decisions_effective_by_then(at: int) -> None:
    expected = rules_in_force(CHARTER, [d for d in DECISIONS if d.effective_at <= at], T3 + 10 * DAY)
    assert _view(rules_in_force(CHARTER, DECISIONS, at)) == _view(expected)
    assert rules_in_force(CHARTER, DECISIONS, at).log_length == sum(d.effective_at <= at for d in DECISIONS)


# --- the tally ------------------------------------------------------------------------------------


def _vote_record(ledger: Ledger, name: str, proposal: ActionHash, choice: str, timestamp: int) -> Record:
    """A vote by ``name`` (a fork of its chain, if it voted before: the tally does not care)."""
    agent = ledger[name]
    return author_record(
        agent.signer, agent.activity.head, kind=ActionKind.CREATE, timestamp=timestamp,
        entry=Vote(proposal, choice, None).to_value(), entry_type=VOTE,
    )


@pytest.fixture(scope="module")
def ballot() -> tuple[Ledger, Record, int, list[Record]]:
    """Five co-ops; a proposal; four counted votes and four that must be ignored."""
    ledger = Ledger(coops=5, members=1)
    proposal, _ = ledger.propose("coop0", ProposalKind.AMEND, {"param": "replication", "value": 5})
    other, _ = ledger.propose("coop1", ProposalKind.AMEND, {"param": "replication", "value": 6})
    deadline = proposal.action.timestamp + DAY
    t = proposal.action.timestamp + 1_000
    votes = [
        _vote_record(ledger, "coop0", proposal.hash, "yes", t + 1),
        _vote_record(ledger, "coop1", proposal.hash, "no", t + 2),
        _vote_record(ledger, "coop2", proposal.hash, "abstain", t + 3),
        _vote_record(ledger, "coop3", proposal.hash, "yes", deadline),  # on the deadline: counts
        _vote_record(ledger, "coop0", proposal.hash, "no", t + 4),  # a second vote: ignored
        _vote_record(ledger, "coop0-m0", proposal.hash, "yes", t + 5),  # a member: ignored
        _vote_record(ledger, "coop4", other.hash, "yes", t + 6),  # another proposal: ignored
        _vote_record(ledger, "coop4", proposal.hash, "no", deadline + 1),  # too late: ignored
    ]
    return ledger, proposal, deadline, votes


def test_tally_counts_one_vote_per_coop_and_ignores_the_rest(ballot: Any) -> None:
    ledger, proposal, deadline, votes = ballot
    result = tally(proposal, deadline, votes, rules_from_charter(ledger.charter))
    assert (result.yes, result.no, result.abstain, result.electorate) == (2, 1, 1, 5)
    assert set(result.counted) == {v.hash for v in votes[:4]}
    assert {h for h, _ in result.ignored} == {v.hash for v in votes[4:]}
    assert result.ratified  # 4 of 5 voted; 2 yes of 3 yes + no


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_tally_is_independent_of_the_order_of_votes(ballot: Any, rnd: Any) -> None:
    ledger, proposal, deadline, votes = ballot
    rules = rules_from_charter(ledger.charter)
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    assert tally(proposal, deadline, shuffled, rules) == tally(proposal, deadline, votes, rules)


@settings(max_examples=50, deadline=None)
@given(choices=st.lists(st.sampled_from(["yes", "no", "abstain"]), min_size=1, max_size=6),
       data=st.randoms(use_true_random=False))
def test_a_coop_voting_many_times_counts_once_with_its_earliest_vote(
    ballot: Any, choices: list[str], data: Any
) -> None:
    ledger, proposal, deadline, _ = ballot
    t = proposal.action.timestamp + 1_000
    repeated = [_vote_record(ledger, "coop2", proposal.hash, c, t + i) for i, c in enumerate(choices)]
    data.shuffle(repeated)
    result = tally(proposal, deadline, repeated, rules_from_charter(ledger.charter))
    assert (result.yes, result.no, result.abstain) == tuple(int(choices[0] == c) for c in ("yes", "no", "abstain"))
    assert len(result.counted) == 1
    assert len(result.ignored) == len(choices) - 1


def test_tally_quorum_and_threshold_boundaries(ballot: Any) -> None:
    ledger, proposal, deadline, _ = ballot
    rules = rules_from_charter(ledger.charter)  # quorum 50 %, threshold 50.01 %, five co-ops
    t = proposal.action.timestamp + 1_000

    def outcome(*cast: tuple[str, str]) -> bool:
        records = [_vote_record(ledger, c, proposal.hash, choice, t + i) for i, (c, choice) in enumerate(cast)]
        return tally(proposal, deadline, records, rules).ratified

    assert not outcome(("coop0", "yes"), ("coop1", "yes"))  # 2 of 5 voted: no quorum
    assert outcome(("coop0", "yes"), ("coop1", "yes"), ("coop2", "abstain"))  # 3 of 5: quorum, 2 yes
    assert not outcome(("coop0", "yes"), ("coop1", "no"), ("coop2", "abstain"))  # 50 % is not a majority
    assert not outcome(("coop0", "abstain"), ("coop1", "abstain"), ("coop2", "abstain"))  # nobody said yes


def test_parameters_left_at_their_defaults_are_not_written_so_older_charters_keep_their_id() -> None:
    value = PARAMS.to_value()
    assert "rules_grace_us" not in value and "app_config" not in value
    assert Parameters.from_value(value) == PARAMS


@pytest.mark.parametrize(
    "extra", [{"rules_grace_us": DEFAULT_RULES_GRACE_US}, {"app_config": {}}], ids=["grace", "config"]
)
def test_a_default_spelled_out_is_refused_so_each_charter_has_one_encoding(extra: dict[str, Any]) -> None:
    with pytest.raises(SchemaError, match="default"):
        Parameters.from_value({**PARAMS.to_value(), **extra})


def test_one_apps_configuration_is_amended_or_removed_by_name() -> None:
    amended = PARAMS.amended("app_config/exchange", {"categories": ["food"]})
    assert amended.app_settings("exchange") == {"categories": ["food"]}
    assert Parameters.from_value(amended.to_value()) == amended
    assert amended.amended("app_config/exchange", None).app_settings("exchange") is None
    with pytest.raises(SchemaError, match="app id"):
        PARAMS.amended("app_config/" + "x" * 40, 1)


@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.binary(min_size=32, max_size=32)),
        min_size=1, max_size=12, unique_by=lambda t: t[1],
    ),
    st.randoms(use_true_random=False),
)
def test_fork_choice_picks_the_longest_log_then_the_lowest_head_whatever_the_order_heard(
    tips: list[tuple[int, bytes]], rnd: Any
) -> None:
    """Nodes that hold the same ratifications, heard in any order, follow the same head."""
    def follow(order: list[tuple[int, bytes]]) -> tuple[int, bytes]:
        head = order[0]
        for tip in order[1:]:  # as a node does: switch only to a higher-ranked ratification
            if log_rank(tip[0], ActionHash(tip[1])) > log_rank(head[0], ActionHash(head[1])):
                head = tip
        return head

    shuffled = list(tips)
    rnd.shuffle(shuffled)
    longest = max(n for n, _ in tips)
    expected = (longest, min(raw for n, raw in tips if n == longest))
    assert follow(tips) == follow(shuffled) == expected

"""Governance: proposals, votes, the deterministic tally, ratification, and the rules in force.

How it works:

- A **proposal** is an entry (``gov/proposal``) on a co-op's chain. Its
  deadline is fixed when it is made: its timestamp plus the voting period in
  force then. Its electorate is the set of co-ops registered (and not
  revoked) at that moment.
- A **vote** (``gov/vote``) is an entry on a co-op's chain naming the
  proposal and a choice. **One co-op one vote**: a vote counts only if its
  author is in the electorate, it is no later than the deadline, and it is
  that co-op's first vote on the proposal (a second vote on the same chain is
  itself invalid; see the activity rules).
- **Members vote too** where the rules in force when the proposal was made
  say so (``Parameters.members_vote``; off by default, and then a member's
  vote is invalid, ``not-a-coop``). A member's vote **pins its author's
  genesis by hash** (``Vote.genesis``; a co-op's vote pins none: the rules
  name the co-op), so who the member is never depends on which genesis of a
  forked agent a peer holds; the activity fold checks the pin is the chain's
  own seq-0 record. It counts (``member_voter``) if the member's co-op (the
  credential of that genesis) was in the electorate, the member was not
  revoked when the proposal was made, and **its genesis is no later than the
  proposal**: a co-op vouches for its members alone, so without this it
  could mint members after a proposal to outvote the others. One vote per
  voter (member or co-op), each its first.
- The **tally** is a pure function of the proposal, the votes it is given
  and the geneses member votes pin. **Quorum is counted over co-ops**: a
  co-op of the electorate took part if it or at least one of its members
  voted, and the quorum is reached when those co-ops x 10000 >= quorum_bp x
  electorate. The **threshold** is over every counted vote, co-ops' and
  members': yes x 10000 >= threshold_bp x (yes + no), with at least one yes.
- A **ratification** (``gov/ratification``) is an entry, made by any co-op
  after the deadline, that names the proposal and the votes it counted, and
  links to the previous ratification: ratifications form one hash-linked
  *governance log* (``n`` = 1, 2, 3 ...). Anyone checks a ratification by
  re-running the tally on the votes it names. A ratification that leaves out
  a counted vote is caught by the vote's own author, who can show it. A
  member's vote is re-checked against the genesis it pins, fetched by hash
  (``Missing`` until held), so anyone can check the ratification from the
  proposal, the votes and their pins.
- The **rules in force** at time t are the charter plus every decision of the
  log whose ratification timestamp is no later than t, in log order. A record
  names the governance log head it was made under (``rules``), so its
  verdict depends only on hash-linked data, never on what a peer happened to
  hear first.
- The log can **fork**: two co-ops may each ratify a different proposal as
  the same entry n+1, both validly. Records stay judged under the head they
  name, so no verdict changes; what a fork changes is which head a node makes
  its new records under. Every node follows the head that ``log_rank`` ranks
  highest among the valid ratifications it holds: the longer log, then the
  lower head hash. Nodes holding the same ratifications so follow the same
  head, and a proposal left on the losing branch is no longer ratified there:
  its proposer's node ratifies it again on the winning log (see
  ``conode.node.governance``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from conode.chain import ActionKind, Record
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, CharterHash
from conode.numerals import format_minor
from conode.validation.charter import (
    BASIS_POINTS,
    AppPin,
    Charter,
    Limits,
    Parameters,
)
from conode.validation.entries import Genesis, Role
from conode.validation.schema import (
    SchemaError,
    hash_field,
    int_field,
    list_field,
    map_value,
    opt_hash_field,
    str_field,
)
from conode.validation.verdict import Invalid

__all__ = [
    "GOVERNANCE_TYPES",
    "PROPOSAL",
    "RATIFICATION",
    "VOTE",
    "CoopInfo",
    "Decision",
    "Proposal",
    "ProposalKind",
    "Ratification",
    "Rules",
    "Tally",
    "Vote",
    "apply_decisions",
    "log_rank",
    "member_voter",
    "rules_from_charter",
    "rules_in_force",
    "tally",
]

PROPOSAL: Final = "gov/proposal"
VOTE: Final = "gov/vote"
RATIFICATION: Final = "gov/ratification"
GOVERNANCE_TYPES: Final = frozenset({PROPOSAL, VOTE, RATIFICATION})
"""The governance log's records: they set the rules in force for every verdict, so every node
holds them (a sharded DHT's global data), at a cost of tens of records a year."""
CHOICES: Final = ("yes", "no", "abstain")
MAX_VOTES: Final = 10_000


class ProposalKind:
    """The kinds of proposal; ``OPAQUE`` ones are for apps and do not change the rules."""

    AMEND = "amend"
    ADMIT = "admit"
    REVOKE = "revoke"
    APP = "app"
    OPAQUE = "opaque"
    ALL: Final = frozenset({AMEND, ADMIT, REVOKE, APP, OPAQUE})


@dataclass(frozen=True, slots=True)
class CoopInfo:
    """A registered co-op: how it is named, and since when it is registered."""

    agent: AgentKey
    legal_name: str
    registration: str
    since: int


@dataclass(frozen=True, slots=True, eq=False)
class Rules:
    """What applies to a record at one moment: parameters, registered co-ops, revocations."""

    network: CharterHash
    params: Parameters
    coops: Mapping[AgentKey, CoopInfo]
    revoked: Mapping[AgentKey, int]
    foundation: AgentKey | None
    log_length: int = 0
    currency: str = ""
    scale: int = 0
    """The charter's currency and minor-unit digits (never amended): for reasons people read."""

    def money(self, minor: int) -> str:
        """An amount as people read it in a reason: ``-6.00 RVX``, not ``-600``."""
        return format_minor(minor, self.scale, self.currency)

    def is_registered_coop(self, agent: AgentKey) -> bool:
        """A co-op registered and not revoked."""
        return agent in self.coops and agent not in self.revoked

    def electorate(self) -> frozenset[AgentKey]:
        """The co-ops that may vote: registered and not revoked."""
        return frozenset(a for a in self.coops if a not in self.revoked)

    def limits(self, is_coop: bool) -> Limits:
        """The balance limits for a co-op or for a member."""
        return self.params.coop_limits if is_coop else self.params.member_limits


def rules_from_charter(charter: Charter) -> Rules:
    """The rules in force before any decision."""
    coops = {
        c.agent: CoopInfo(c.agent, c.legal_name, c.registration, charter.created_at)
        for c in charter.founding
    }
    return Rules(
        network=charter.network_id,
        params=charter.params,
        coops=MappingProxyType(coops),
        revoked=MappingProxyType({}),
        foundation=charter.foundation,
        currency=charter.currency,
        scale=charter.scale,
    )


@dataclass(frozen=True, slots=True)
class Proposal:
    """A ``gov/proposal`` entry: kind, title, kind-specific body, deadline, rules it was made under."""

    kind: str
    title: str
    body: Mapping[str, Any]
    deadline: int
    rules: ActionHash | None

    @classmethod
    def from_value(cls, value: Any) -> Proposal:
        m = map_value(value, "proposal", {"kind", "title", "body", "deadline", "rules"})
        kind = str_field(m, "kind", 16, 1)
        if kind not in ProposalKind.ALL:
            raise SchemaError(f"unknown proposal kind {kind!r}")
        body = map_value(m["body"], "proposal body", set(_BODY_FIELDS[kind]), frozenset())
        return cls(
            kind,
            str_field(m, "title", 200, 1),
            body,
            int_field(m, "deadline", 0),
            opt_hash_field(m, "rules", ActionHash),
        )

    def to_value(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "body": dict(self.body),
            "deadline": self.deadline,
            "rules": None if self.rules is None else self.rules.to_bytes(),
        }


_BODY_FIELDS: Final = {
    ProposalKind.AMEND: ("param", "value"),
    ProposalKind.ADMIT: ("agent", "legal_name", "registration"),
    ProposalKind.REVOKE: ("agent", "reason"),
    ProposalKind.APP: ("app",),
    ProposalKind.OPAQUE: ("app", "data"),
}


@dataclass(frozen=True, slots=True)
class Vote:
    """A ``gov/vote`` entry: the proposal voted on, the choice, the rules it was made under.

    ``genesis``: a member's vote pins its author's genesis (seq-0 record) by
    hash; a co-op's pins none. Written only when set, so co-ops' votes keep
    the form they always had.
    """

    proposal: ActionHash
    choice: str
    rules: ActionHash | None
    genesis: ActionHash | None = None

    @classmethod
    def from_value(cls, value: Any) -> Vote:
        m = map_value(value, "vote", {"proposal", "choice", "rules"}, _VOTE_OPTIONAL)
        choice = str_field(m, "choice", 8, 1)
        if choice not in CHOICES:
            raise SchemaError(f"a vote is yes, no or abstain, not {choice!r}")
        return cls(
            hash_field(m, "proposal", ActionHash),
            choice,
            opt_hash_field(m, "rules", ActionHash),
            hash_field(m, "genesis", ActionHash) if "genesis" in m else None,
        )

    def to_value(self) -> dict[str, Any]:
        value = {
            "proposal": self.proposal.to_bytes(),
            "choice": self.choice,
            "rules": None if self.rules is None else self.rules.to_bytes(),
        }
        if self.genesis is not None:
            value["genesis"] = self.genesis.to_bytes()
        return value


_VOTE_OPTIONAL: Final = frozenset({"genesis"})


@dataclass(frozen=True, slots=True)
class Ratification:
    """A ``gov/ratification`` entry: entry ``n`` of the governance log."""

    proposal: ActionHash
    votes: tuple[ActionHash, ...]
    n: int
    prev: ActionHash | None

    @classmethod
    def from_value(cls, value: Any) -> Ratification:
        m = map_value(value, "ratification", {"proposal", "votes", "n", "prev"})
        votes = []
        for item in list_field(m, "votes", MAX_VOTES):
            votes.append(hash_field({"vote": item}, "vote", ActionHash))
        n = int_field(m, "n", 1)
        prev = opt_hash_field(m, "prev", ActionHash)
        if (n == 1) != (prev is None):
            raise SchemaError("the first ratification (n = 1) alone has no prev")
        return cls(hash_field(m, "proposal", ActionHash), tuple(votes), n, prev)

    def to_value(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal.to_bytes(),
            "votes": [v.to_bytes() for v in self.votes],
            "n": self.n,
            "prev": None if self.prev is None else self.prev.to_bytes(),
        }


@dataclass(frozen=True, slots=True)
class Tally:
    """The outcome of counting votes on one proposal.

    ``electorate``: the co-ops that could take part; ``took_part``: those of
    them that voted or had a member vote (the quorum's count); ``members``:
    the counted votes cast by members (the rest are co-ops').
    """

    ratified: bool
    yes: int
    no: int
    abstain: int
    electorate: int
    counted: tuple[ActionHash, ...]
    ignored: tuple[tuple[ActionHash, str], ...] = field(default=())
    took_part: int = 0
    members: int = 0

    @property
    def reason(self) -> str:
        """Why it passed or failed, in words."""
        by_members = (
            f" ({self.members} by members; {self.took_part} co-ops took part)"
            if self.members
            else ""
        )
        return (
            f"{self.yes} yes, {self.no} no, {self.abstain} abstain{by_members} "
            f"of {self.electorate} co-ops: {'ratified' if self.ratified else 'not ratified'}"
        )


def member_voter(
    vote: Record, genesis: Record, proposal: Record, rules: Rules
) -> AgentKey | Invalid:
    """The co-op a member's ``vote`` counts for, read from the ``genesis`` it pins; or why none.

    ``rules``: those in force when ``proposal`` was made. ``genesis`` is a
    valid record (the caller fetched it as a dependency). Whether members
    vote at all (``members_vote``) is the caller's question.
    """
    author = vote.action.author
    action = genesis.action
    if action.author != author or action.kind is not ActionKind.GENESIS or action.seq != 0:
        return Invalid("genesis", f"{genesis.hash.short()} is not the genesis of {author.short()}")
    entry = Genesis.from_value(genesis.entry_value())
    if entry.role != Role.MEMBER or entry.credential is None:
        return Invalid("not-a-coop", "only the electorate's co-ops and their members vote")
    # the rules are those when the proposal was made: any revocation they hold was in force then
    if author in rules.revoked:
        return Invalid("revoked", f"{entry.name} was revoked when the proposal was made")
    if not rules.is_registered_coop(entry.credential.coop):
        return Invalid(
            "electorate",
            f"{entry.name}'s co-op was not in the electorate when the proposal was made",
        )
    if action.timestamp > proposal.action.timestamp:
        return Invalid("electorate", f"{entry.name} joined after the proposal was made")
    return entry.credential.coop


def tally(
    proposal: Record,
    deadline: int,
    votes: Iterable[Record],
    rules_at_proposal: Rules,
    geneses: Mapping[ActionHash, Record] | None = None,
) -> Tally:
    """Count ``votes`` on ``proposal``: one vote per voter, quorum over co-ops, threshold, deadline.

    Votes are taken in (timestamp, hash) order so the result never depends
    on the order they are given in; for each voter only its first vote counts.
    ``geneses``: the records members' votes pin, by hash (read only when the
    rules let members vote; a vote whose genesis is not given is not counted).
    """
    electorate = rules_at_proposal.electorate()
    params = rules_at_proposal.params
    members_vote = params.members_vote
    counts = dict.fromkeys(CHOICES, 0)
    voted: set[AgentKey] = set()
    members_coops: set[AgentKey] = set()  # the co-ops whose members' votes counted
    members = 0
    counted: list[ActionHash] = []
    ignored: list[tuple[ActionHash, str]] = []
    for record in sorted(votes, key=lambda r: (r.action.timestamp, r.hash.raw)):
        author = record.action.author
        try:
            vote = Vote.from_value(record.entry_value())
        except (SchemaError, ValueError) as exc:
            ignored.append((record.hash, f"not a vote: {exc}"))
            continue
        if record.action.entry_type != VOTE or vote.proposal != proposal.hash:
            ignored.append((record.hash, "not a vote on this proposal"))
            continue
        if author in electorate:
            coop: AgentKey | Invalid = (
                author
                if vote.genesis is None
                else Invalid("vote", "a co-op's vote pins no genesis")
            )
        elif not members_vote or vote.genesis is None:
            coop = Invalid("not-a-coop", "by an agent that is not a voting co-op")
        else:
            coop = _member_coop(record, vote.genesis, proposal, rules_at_proposal, geneses or {})
        if isinstance(coop, Invalid):
            ignored.append((record.hash, coop.reason))
        elif record.action.timestamp > deadline:
            ignored.append((record.hash, "cast after the deadline"))
        elif author in voted:
            ignored.append((record.hash, "a second vote by the same voter"))
        else:
            voted.add(author)
            if coop is not author:  # a member's vote: its co-op takes part through it
                members_coops.add(coop)
                members += 1
            counts[vote.choice] += 1
            counted.append(record.hash)
    yes, no = counts["yes"], counts["no"]
    took_part = (voted & electorate) | members_coops
    quorum = len(took_part) * BASIS_POINTS >= params.quorum_bp * len(electorate)
    threshold = yes > 0 and yes * BASIS_POINTS >= params.threshold_bp * (yes + no)
    return Tally(
        quorum and threshold,
        yes,
        no,
        counts["abstain"],
        len(electorate),
        tuple(counted),
        tuple(ignored),
        len(took_part),
        members,
    )


def _member_coop(
    record: Record,
    pin: ActionHash,
    proposal: Record,
    rules: Rules,
    geneses: Mapping[ActionHash, Record],
) -> AgentKey | Invalid:
    """The co-op a member's vote counts for, from the genesis it pins (if given)."""
    genesis = geneses.get(pin)
    if genesis is None:
        return Invalid("missing", "the genesis it pins is not held here")
    try:
        return member_voter(record, genesis, proposal, rules)
    except (EncodingError, ValueError) as exc:
        return Invalid("genesis", f"its genesis does not read: {exc}")


@dataclass(frozen=True, slots=True)
class Decision:
    """A ratified proposal as it changes the rules: from ``effective_at`` on."""

    effective_at: int
    proposal: ActionHash
    kind: str
    body: Mapping[str, Any]


def apply_decision(rules: Rules, decision: Decision) -> Rules:
    """The rules after ``decision``; ``SchemaError`` if its body does not fit."""
    body = decision.body
    params, coops, revoked = rules.params, dict(rules.coops), dict(rules.revoked)
    if decision.kind == ProposalKind.AMEND:
        params = params.amended(str_field(body, "param", 64, 1), body["value"])
    elif decision.kind == ProposalKind.ADMIT:
        agent = hash_field(body, "agent", AgentKey)
        coops[agent] = CoopInfo(
            agent,
            str_field(body, "legal_name", 200, 1),
            str_field(body, "registration", 200, 1),
            decision.effective_at,
        )
        revoked.pop(agent, None)
    elif decision.kind == ProposalKind.REVOKE:
        revoked.setdefault(hash_field(body, "agent", AgentKey), decision.effective_at)
    elif decision.kind == ProposalKind.APP:
        pin = AppPin.from_value(body["app"])
        apps = (*(a for a in params.apps if a.id != pin.id), pin)
        params = params.amended("apps", [a.to_value() for a in apps])
    return Rules(
        network=rules.network,
        params=params,
        coops=MappingProxyType(coops),
        revoked=MappingProxyType(revoked),
        foundation=rules.foundation,
        log_length=rules.log_length + 1,
        currency=rules.currency,
        scale=rules.scale,
    )


def check_decision_body(kind: str, body: Mapping[str, Any], rules: Rules) -> None:
    """``SchemaError`` unless the body could be applied to ``rules`` (checked when proposed)."""
    apply_decision(rules, Decision(0, ActionHash(bytes(32)), kind, body))


def rules_in_force(charter: Charter, ratified: Sequence[Decision], at: int) -> Rules:
    """The charter plus every decision in ``ratified`` (log order) effective no later than ``at``."""
    return apply_decisions(rules_from_charter(charter), ratified, at)


def apply_decisions(rules: Rules, ratified: Sequence[Decision], at: int) -> Rules:
    """``rules`` after every decision of ``ratified`` (log order) effective no later than ``at``."""
    for decision in ratified:
        if decision.effective_at > at:
            break
        rules = apply_decision(rules, decision)
    return rules


def log_rank(n: int, head: ActionHash) -> tuple[int, bytes]:
    """How forks of the governance log are ranked (greater wins): the ratification ``n`` entries
    long, then the lower head hash, bytewise. A total order, so two nodes holding the same
    ratifications choose the same head."""
    return n, bytes(0xFF - b for b in head.raw)

"""Pure views of governance and the Foundation: proposals with their live tally, comments, reports.

``proposals`` reads ``gov/proposal`` and ``gov/vote`` records (any order,
duplicates ignored) and says of each proposal where it stands at ``now``:

- ``open``: before its deadline (the tally so far is shown);
- ``passed`` / ``failed``: past its deadline, by the tally of the votes held;
- ``ratified``: the governance log the caller names holds its ratification.

A ratified disbursement is **executed** once the Foundation paid it (the
caller says which proposals a Foundation payment names); any other ratified
proposal is executed by its ratification (the rules change from its time).
The tally is ``governance.tally``, the one a ratification is checked with,
so what a node shows is what a ratification would count; where members vote
(``members_vote``), a member's vote is counted by the genesis it pins, looked
up with ``get``, and shown with the co-op it counts for. Comments and
reports (this app's records) are attached to the proposal they are about:
a report to the disbursement its payment carried out.

Nothing here reads a clock or a store: time, the log and lookups are arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from conode.apps.foundation.entries import COMMENT, REPORT
from conode.chain import Record
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, BundleHash, TypedHash
from conode.validation.entries import PAYMENT, Genesis, Payment
from conode.validation.foundation import Disbursement
from conode.validation.governance import (
    PROPOSAL,
    VOTE,
    Proposal,
    ProposalKind,
    Rules,
    Tally,
    Vote,
    tally,
)
from conode.validation.schema import SchemaError

__all__ = [
    "Comment",
    "ProposalView",
    "Report",
    "VoteView",
    "disbursed_coops",
    "pinned_geneses",
    "proposals",
    "summary",
]

OPEN: Final = "open"
PASSED: Final = "passed"
FAILED: Final = "failed"
RATIFIED: Final = "ratified"
UNKNOWN: Final = "unknown"
"""Past the deadline, but the rules in force when it was made are not known here (no tally)."""

_HASH_CLASSES: Final[dict[int, type[TypedHash]]] = {
    cls.KIND: cls for cls in (ActionHash, AgentKey, BundleHash)
}
RulesAt = Callable[[Record, Proposal], Rules | None]
"""The rules in force when a proposal was made (its electorate and thresholds); None if unknown."""


@dataclass(frozen=True, slots=True)
class VoteView:
    """One vote held on a proposal, and whether the tally counts it (and if not, why).

    ``member_of``: for a member's vote (one that pins its genesis), the co-op
    its genesis names, if that genesis is held here; None for a co-op's vote.
    """

    hash: ActionHash
    voter: AgentKey
    choice: str
    timestamp: int
    counted: bool
    why_not: str = ""
    member: bool = False
    member_of: AgentKey | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``foundation/comment`` on a proposal."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    text: str


@dataclass(frozen=True, slots=True)
class Report:
    """A ``foundation/report``: what a co-op did with a Foundation payment."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    payment: ActionHash
    text: str
    used: int | None


@dataclass(frozen=True, slots=True)
class ProposalView:
    """A proposal as it stands: its tally, status, and what followed (payment, comments, reports)."""

    hash: ActionHash
    author: AgentKey
    timestamp: int
    proposal: Proposal
    status: str
    tally: Tally | None
    votes: tuple[VoteView, ...]
    ratification: ActionHash | None = None
    disbursement: Disbursement | None = None
    paid_by: ActionHash | None = None
    """The payment record that carried out this disbursement, if held: the Foundation's, or the
    paid co-op's copy (one payment, on both chains) where the caller holds only that."""
    comments: tuple[Comment, ...] = field(default=())
    reports: tuple[Report, ...] = field(default=())

    @property
    def executed(self) -> bool:
        """Ratified, and (for a disbursement) paid."""
        if self.status != RATIFIED:
            return False
        return self.disbursement is None or self.paid_by is not None

    def to_value(self) -> dict[str, Any]:
        """As JSON values (hashes as text, amounts in minor units, times in µs)."""
        t = self.tally
        return {
            "id": str(self.hash),
            "author": str(self.author),
            "timestamp": self.timestamp,
            "kind": "disburse" if self.disbursement is not None else self.proposal.kind,
            "title": self.proposal.title,
            "summary": summary(self.proposal),
            "body": _plain(self.proposal.body),
            "deadline": self.proposal.deadline,
            "status": self.status,
            "executed": self.executed,
            "ratification": None if self.ratification is None else str(self.ratification),
            "disbursement": None
            if self.disbursement is None
            else {
                "coop": str(self.disbursement.coop),
                "amount": self.disbursement.amount,
                "purpose": self.disbursement.purpose,
                "paid_by": None if self.paid_by is None else str(self.paid_by),
            },
            "tally": None
            if t is None
            else {
                "yes": t.yes,
                "no": t.no,
                "abstain": t.abstain,
                "electorate": t.electorate,
                "took_part": t.took_part,
                "member_votes": t.members,
                "passes": t.ratified,
                "reason": t.reason,
            },
            "votes": [
                {
                    "id": str(v.hash),
                    "voter": str(v.voter),
                    "choice": v.choice,
                    "timestamp": v.timestamp,
                    "counted": v.counted,
                    "why_not": v.why_not,
                    "member": v.member,
                    "member_of": None if v.member_of is None else str(v.member_of),
                }
                for v in self.votes
            ],
            "comments": [
                {
                    "id": str(c.hash),
                    "author": str(c.author),
                    "timestamp": c.timestamp,
                    "text": c.text,
                }
                for c in self.comments
            ],
            "reports": [
                {
                    "id": str(r.hash),
                    "author": str(r.author),
                    "timestamp": r.timestamp,
                    "payment": str(r.payment),
                    "text": r.text,
                    "used": r.used,
                }
                for r in self.reports
            ],
        }


def proposals(
    records: Iterable[Record],
    *,
    rules_at: RulesAt,
    now: int,
    ratified: Mapping[ActionHash, ActionHash] | None = None,
    paid: Mapping[ActionHash, ActionHash] | None = None,
    get: Callable[[ActionHash], Record | None] | None = None,
) -> list[ProposalView]:
    """Every proposal among ``records``, newest first, with its votes, tally and status at ``now``.

    ``records``: any records (``gov/proposal``, ``gov/vote`` and this app's
    are read; others ignored). ``ratified``: proposal -> its ratification, in
    the log the caller stands on. ``paid``: disbursement proposal -> the
    Foundation payment record that carried it out. ``get`` finds the payment a
    report names (to file the report under its disbursement) and the genesis a
    member's vote pins (to count it where members vote).
    """
    made: dict[ActionHash, tuple[Record, Proposal]] = {}
    votes: dict[ActionHash, list[tuple[Record, Vote]]] = {}
    comments: dict[ActionHash, list[Comment]] = {}
    reports: list[Report] = []
    seen: set[ActionHash] = set()
    for record in records:
        if record.hash in seen or record.entry is None:
            continue
        seen.add(record.hash)
        entry_type = record.action.entry_type
        try:
            if entry_type == PROPOSAL:
                made[record.hash] = (record, Proposal.from_value(record.entry_value()))
            elif entry_type == VOTE:
                vote = Vote.from_value(record.entry_value())
                votes.setdefault(vote.proposal, []).append((record, vote))
            elif entry_type == COMMENT:
                comment = _comment(record)
                comments.setdefault(comment[0], []).append(comment[1])
            elif entry_type == REPORT:
                reports.append(_report(record))
        except (SchemaError, EncodingError, ValueError, KeyError):
            continue  # a held record is valid; one that does not read is not ours to show
    by_disbursement = _reports_by_proposal(reports, get)
    geneses = (
        {} if get is None else pinned_geneses((r for held in votes.values() for r, _ in held), get)
    )
    ratified = ratified or {}
    paid = paid or {}
    views = []
    for proposal_hash, (record, proposal) in made.items():
        held = votes.get(proposal_hash, [])
        rules = rules_at(record, proposal)
        counted = (
            None
            if rules is None
            else tally(record, proposal.deadline, [r for r, _ in held], rules, geneses)
        )
        try:
            disbursement = Disbursement.from_proposal(proposal)
        except SchemaError:
            disbursement = None
        views.append(
            ProposalView(
                hash=proposal_hash,
                author=record.action.author,
                timestamp=record.action.timestamp,
                proposal=proposal,
                status=_status(proposal_hash, proposal, counted, ratified, now),
                tally=counted,
                votes=_vote_views(held, counted, geneses),
                ratification=ratified.get(proposal_hash),
                disbursement=disbursement,
                paid_by=paid.get(proposal_hash) if disbursement is not None else None,
                comments=tuple(sorted(comments.get(proposal_hash, []), key=lambda c: c.timestamp)),
                reports=tuple(
                    sorted(by_disbursement.get(proposal_hash, []), key=lambda r: r.timestamp)
                ),
            )
        )
    views.sort(key=lambda v: (v.timestamp, v.hash.raw), reverse=True)
    return views


def _status(
    proposal_hash: ActionHash,
    proposal: Proposal,
    counted: Tally | None,
    ratified: Mapping[ActionHash, ActionHash],
    now: int,
) -> str:
    if proposal_hash in ratified:
        return RATIFIED
    if now <= proposal.deadline:
        return OPEN
    if counted is None:
        return UNKNOWN
    return PASSED if counted.ratified else FAILED


def _vote_views(
    held: list[tuple[Record, Vote]], counted: Tally | None, geneses: Mapping[ActionHash, Record]
) -> tuple[VoteView, ...]:
    ignored = {} if counted is None else dict(counted.ignored)
    counts = set() if counted is None else set(counted.counted)
    views = []
    for record, vote in sorted(held, key=lambda rv: (rv[0].action.timestamp, rv[0].hash.raw)):
        genesis = None if vote.genesis is None else geneses.get(vote.genesis)
        views.append(
            VoteView(
                record.hash,
                record.action.author,
                vote.choice,
                record.action.timestamp,
                record.hash in counts,
                ignored.get(record.hash, "" if counted is not None else "no tally here"),
                member=vote.genesis is not None,
                member_of=None if genesis is None else _credential_coop(genesis),
            )
        )
    return tuple(views)


def disbursed_coops(records: Iterable[Record]) -> set[AgentKey]:
    """The co-ops the disbursement proposals among ``records`` would pay (others ignored): where
    a node that does not hold the Foundation's chain finds the payments that carried them out,
    each on its payee's chain as on the payer's."""
    coops = set()
    for record in records:
        if record.action.entry_type != PROPOSAL or record.entry is None:
            continue
        try:
            disbursement = Disbursement.from_proposal(Proposal.from_value(record.entry_value()))
        except (SchemaError, EncodingError, ValueError, KeyError):
            continue  # not ours to read, as in ``proposals``
        if disbursement is not None:
            coops.add(disbursement.coop)
    return coops


def pinned_geneses(
    votes: Iterable[Record], get: Callable[[ActionHash], Record | None]
) -> dict[ActionHash, Record]:
    """The held geneses that members' votes among ``votes`` pin, by hash (what ``tally`` reads)."""
    out: dict[ActionHash, Record] = {}
    for record in votes:
        try:
            pin = Vote.from_value(record.entry_value()).genesis
        except (SchemaError, EncodingError, ValueError):
            continue
        if pin is not None and pin not in out:
            genesis = get(pin)
            if genesis is not None:
                out[pin] = genesis
    return out


def _credential_coop(genesis: Record) -> AgentKey | None:
    """The co-op whose credential a member's genesis carries (None if it reads otherwise)."""
    try:
        credential = Genesis.from_value(genesis.entry_value()).credential
    except (SchemaError, EncodingError, ValueError):
        return None
    return None if credential is None else credential.coop


def _comment(record: Record) -> tuple[ActionHash, Comment]:
    entry = record.entry_value()
    about = ActionHash.from_bytes(entry["proposal"])
    return about, Comment(record.hash, record.action.author, record.action.timestamp, entry["text"])


def _report(record: Record) -> Report:
    entry = record.entry_value()
    return Report(
        record.hash,
        record.action.author,
        record.action.timestamp,
        ActionHash.from_bytes(entry["payment"]),
        entry["text"],
        entry.get("used"),
    )


def _reports_by_proposal(
    reports: list[Report], get: Callable[[ActionHash], Record | None] | None
) -> dict[ActionHash, list[Report]]:
    """Reports filed under the disbursement their payment carried out (the payment's ``ref``)."""
    out: dict[ActionHash, list[Report]] = {}
    if get is None:
        return out
    for report in reports:
        payment = get(report.payment)
        if payment is None or payment.action.entry_type != PAYMENT:
            continue
        ref = Payment.from_value(payment.entry_value()).body.ref
        if ref is not None:
            out.setdefault(ref, []).append(report)
    return out


def summary(proposal: Proposal) -> str:
    """What a proposal asks for, in one line."""
    body = proposal.body
    try:
        if proposal.kind == ProposalKind.AMEND:
            return f"set {body['param']} to {_plain(body['value'])}"
        if proposal.kind == ProposalKind.ADMIT:
            agent = AgentKey.from_bytes(body["agent"])
            return f"admit {body['legal_name']} ({body['registration']}) as {agent.short()}"
        if proposal.kind == ProposalKind.REVOKE:
            return f"revoke {AgentKey.from_bytes(body['agent']).short()}: {body['reason']}"
        if proposal.kind == ProposalKind.APP:
            app = body["app"]
            return f"run app {app['id']} {app['version']}"
        disbursement = Disbursement.from_proposal(proposal)
        if disbursement is not None:
            return (
                f"pay {disbursement.coop.short()} {disbursement.amount} for {disbursement.purpose}"
            )
        return f"{body.get('app', '?')} proposal"
    except (SchemaError, EncodingError, KeyError, TypeError, ValueError):
        return f"a {proposal.kind} proposal"


def _plain(value: Any) -> Any:
    """A CBOR value as JSON values: typed hashes as their text, other bytes as hex."""
    if isinstance(value, bytes):
        cls = _HASH_CLASSES.get(value[0]) if len(value) == 33 else None
        return value.hex() if cls is None else str(cls.from_bytes(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

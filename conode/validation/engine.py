"""The validation engine: ``validate(op, ctx) -> Valid | Invalid(rule, reason) | Missing(deps)``.

How it works:

- The context lends only deterministic reads of data already held: a record
  by its action hash, and an agent's genesis record (its chain's seq 0). A
  dependency that is not held makes the verdict ``Missing``; the caller
  fetches it and asks again. Nothing else is read: no clock, no "latest",
  no "everything I have seen", so the verdict never depends on arrival order.
- Every dependency is checked before it is trusted: its author's signature
  over its exact bytes, and its own validity (recursively, cached), unless
  the context says this peer already judged it valid (an authority's store
  holds only records it validated), which keeps each verdict O(1).
- The rules in force for a record come from the governance log head it names
  (``rules`` in its entry) and its timestamp; see ``governance``.
- Record rules (this module and ``credit``) judge one record with its
  dependencies; activity rules (``activity``) judge a chain's records in order
  (the previous-credit link, double votes, bills paid twice) and are what an
  agent-activity authority runs as it folds a chain.
- App validators plug in by entry-type prefix (``app/type``) through
  ``AppValidator``; the built-in ``credit`` and ``gov`` types are judged here.
- Verdicts ``Valid`` and ``Invalid`` are cached by action hash; ``Missing``
  is not (it is not a verdict on the record).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final, Protocol, TypeVar, cast

from conode.chain import ActionKind, Record
from conode.crypto import SIG_ACTION, verify
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.validation import credit
from conode.validation.charter import Charter
from conode.validation.entries import app_credit
from conode.validation.governance import (
    PROPOSAL,
    RATIFICATION,
    VOTE,
    Decision,
    Proposal,
    ProposalKind,
    Ratification,
    Rules,
    Vote,
    apply_decision,
    apply_decisions,
    check_decision_body,
    member_voter,
    rules_from_charter,
    tally,
)
from conode.validation.schema import SchemaError
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

__all__ = [
    "AppValidator",
    "Engine",
    "Op",
    "OpKind",
    "ValidationContext",
]


class ValidationContext(Protocol):
    """Deterministic reads of data this peer already holds (Holochain's ``must_get_*``)."""

    def get_record(self, action: ActionHash) -> Record | None:
        """The record with this action hash, if held."""

    def get_genesis(self, agent: AgentKey) -> Record | None:
        """The agent's genesis record (seq 0), if held."""

    def validated(self, action: ActionHash) -> bool:
        """True if this peer already judged that record ``Valid`` (it holds it as an authority)."""


class AppValidator(Protocol):
    """What an app lends the engine: pure validation of its own entry types."""

    app_id: str

    def validate(
        self, record: Record, entry: Any, rules: Rules, engine: Engine, ctx: ValidationContext
    ) -> Verdict:
        """The verdict on one of this app's records (its entry already decoded)."""


class OpKind(IntEnum):
    """What an authority is asked to validate and hold."""

    RECORD = 1
    """A whole record, held by the authorities of its action hash."""
    ENTRY = 2
    """A record's entry, held by the authorities of its entry hash."""
    LINK = 3
    """A link, held by the authorities of its base."""


@dataclass(frozen=True, slots=True)
class Op:
    """A DHT op: a kind and the record it carries."""

    kind: OpKind
    record: Record


_PARSED_CACHE_SIZE: Final = 8_192
T = TypeVar("T")


class Engine:
    """The rules of one network (its charter and apps), with a verdict cache."""

    def __init__(self, charter: Charter, apps: Mapping[str, AppValidator] | None = None) -> None:
        self.charter = charter
        self.network = charter.network_id
        # kept as given, not copied: a node passes a mapping that answers for every app id
        # (conode.apps.hosting.NodeApps), so records of apps it does not run are not "unknown"
        self.apps: Mapping[str, AppValidator] = apps if apps is not None else {}
        self._base_rules = rules_from_charter(charter)
        self._verdicts: dict[tuple[ActionHash, bytes], Verdict] = {}
        self._parsed: OrderedDict[tuple[bytes, Callable[[Any], Any]], Any] = OrderedDict()
        self._entry_verdicts: OrderedDict[bytes, Verdict] = OrderedDict()
        self._logs: dict[ActionHash, tuple[Decision, ...]] = {}
        self._rules: dict[tuple[ActionHash | None, int], Rules] = {}

    # -- public --------------------------------------------------------------------------------

    def money(self, minor: int) -> str:
        """An amount in the network's currency, for a reason people read (``5.00 RVX``)."""
        return self._base_rules.money(minor)

    def validate(self, op: Op, ctx: ValidationContext) -> Verdict:
        """The verdict on ``op``: every op kind carries a record judged by the record rules."""
        return self.validate_record(op.record, ctx)

    def validate_record(
        self, record: Record, ctx: ValidationContext, *, signature_checked: bool = False
    ) -> Verdict:
        """The verdict on one record with its dependencies (its author's signature included).

        ``signature_checked``: the caller has just verified the author's
        signature over the action bytes (the chain rules do), so it is not
        verified twice.
        """
        # The signature is not part of the action hash: a copy of a genuine action with a
        # forged signature must neither borrow nor poison the genuine record's verdict.
        key = (record.hash, record.signature)
        cached = self._verdicts.get(key)
        if cached is not None:
            return cached
        if not signature_checked and not verify(
            record.action.author.raw, SIG_ACTION, record.action_bytes, record.signature
        ):
            return Invalid("signature", "the author's signature does not verify")  # not cached
        try:
            verdict = self._judge(_as_signed(record), ctx)
        except (SchemaError, EncodingError, ValueError) as exc:
            # ValueError: the author signed an action without the entry its kind needs
            verdict = Invalid("schema", str(exc))
        if not isinstance(verdict, Missing):
            self._verdicts[key] = verdict
        return verdict

    def entry_verdict(self, entry: bytes, judge: Callable[[], Verdict]) -> Verdict:
        """``judge()`` of an entry shared by several records (a payment's, on both chains), once.

        Keyed by the entry's bytes; ``Missing`` is not kept (it is no verdict).
        """
        known = self._entry_verdicts.get(entry)
        if known is not None:
            return known
        verdict = judge()
        if not isinstance(verdict, Missing):
            if len(self._entry_verdicts) >= _PARSED_CACHE_SIZE:
                self._entry_verdicts.popitem(last=False)
            self._entry_verdicts[entry] = verdict
        return verdict

    def parsed(self, record: Record, parse: Callable[[Any], T]) -> T:
        """``parse`` of the record's decoded entry, done once per entry.

        Keyed by the entry's own bytes, not by a hash the action claims, so
        the two parties' records of one payment share one parse and a record
        carrying some other entry can never poison it.
        """
        if record.entry is None:
            raise ValueError("this record carries no entry")
        key = (record.entry, parse)
        value = self._parsed.get(key)
        if value is None:
            if len(self._parsed) >= _PARSED_CACHE_SIZE:
                self._parsed.popitem(last=False)  # the oldest: recent entries are the ones re-read
            value = self._parsed[key] = parse(record.entry_value())
        return cast(T, value)

    def dependency(self, action: ActionHash, ctx: ValidationContext) -> Record | Verdict:
        """A valid record this verdict depends on, or the verdict that stops it."""
        record = ctx.get_record(action)
        if record is None:
            return Missing((action,))
        if record.hash != action:
            return Invalid("dependency", f"the peer's record for {action.short()} has another hash")
        if ctx.validated(action):
            # judged valid by this peer already: its entry was checked against the action then
            # (a store also refuses any record whose entry does not match: the chain rules)
            return record
        record = _as_signed(record)
        if record.action.entry_hash is not None and record.entry is None:
            return Missing((record.action.entry_hash,))
        verdict = self.validate_record(record, ctx)
        if isinstance(verdict, Missing):
            return verdict
        if isinstance(verdict, Invalid):
            return Invalid("dependency", f"{action.short()} is invalid ({verdict})")
        return record

    def rules_at(self, head: ActionHash | None, at: int, ctx: ValidationContext) -> Rules | Verdict:
        """The rules in force at ``at`` under the governance log ending at ``head``."""
        log = self._log(head, ctx)
        if not isinstance(log, tuple):
            return log
        # the log is in time order: the rules at ``at`` are those after its first ``in_force``
        # decisions, made once per (head, in_force) rather than once per record
        in_force = next((i for i, d in enumerate(log) if d.effective_at > at), len(log))
        key = (head, in_force)
        rules = self._rules.get(key)
        if rules is None:
            rules = self._rules[key] = apply_decisions(self._base_rules, log[:in_force], at)
        return rules

    # -- governance log ------------------------------------------------------------------------

    def _log(
        self, head: ActionHash | None, ctx: ValidationContext
    ) -> tuple[Decision, ...] | Verdict:
        """The decisions of the log ending at ``head``, oldest first."""
        if head is None:
            return ()
        cached = self._logs.get(head)
        if cached is not None:
            return cached
        record = self.dependency(head, ctx)
        if not isinstance(record, Record):
            return record
        if record.action.entry_type != RATIFICATION:
            return Invalid("rules", f"{head.short()} is not a ratification")
        ratification = Ratification.from_value(record.entry_value())
        earlier = self._log(ratification.prev, ctx)
        if not isinstance(earlier, tuple):
            return earlier
        proposal_record = self.dependency(ratification.proposal, ctx)
        if not isinstance(proposal_record, Record):
            return proposal_record
        proposal = Proposal.from_value(proposal_record.entry_value())
        decisions = earlier
        if proposal.kind != ProposalKind.OPAQUE:
            decision = Decision(
                record.action.timestamp, proposal_record.hash, proposal.kind, proposal.body
            )
            decisions = (*earlier, decision)
        self._logs[head] = decisions
        return decisions

    def proposal_decided(
        self, head: ActionHash | None, proposal: ActionHash, ctx: ValidationContext
    ) -> bool | Verdict:
        """Whether the log ending at ``head`` ratifies ``proposal`` (opaque ones included)."""
        while head is not None:
            record = self.dependency(head, ctx)
            if not isinstance(record, Record):
                return record
            ratification = Ratification.from_value(record.entry_value())
            if ratification.proposal == proposal:
                return True
            head = ratification.prev
        return False

    # -- record rules ----------------------------------------------------------------------------

    def _judge(self, record: Record, ctx: ValidationContext) -> Verdict:
        action = record.action
        if action.entry_hash is not None and record.entry is None:
            return Missing((action.entry_hash,))
        kind = action.kind
        if kind is ActionKind.GENESIS:
            return credit.validate_genesis(self, record, ctx)
        if kind is ActionKind.CLOSE_CHAIN:
            return credit.validate_close(record)
        if kind is ActionKind.OPEN_CHAIN:
            return credit.validate_open(self, record, ctx)
        if kind is ActionKind.DELETE:
            return VALID  # deleting marks; it moves no credit and changes no rule
        entry_type = action.entry_type or ""
        app_id, _, _ = entry_type.partition("/")
        if entry_type == credit.PAYMENT:
            return credit.validate_payment(self, record, ctx)
        if entry_type == credit.BILL:
            return credit.validate_bill(self, record, ctx)
        if entry_type == credit.BILL_DECLINE:
            return credit.validate_bill_decline(self, record, ctx)
        if entry_type == credit.ROTATION:
            return credit.validate_rotation(self, record, ctx)
        if entry_type == PROPOSAL:
            return self._validate_proposal(record, ctx)
        if entry_type == VOTE:
            return self._validate_vote(record, ctx)
        if entry_type == RATIFICATION:
            return self._validate_ratification(record, ctx)
        app = self.apps.get(app_id)
        if app is None:
            return Invalid("unknown-app", f"no app {app_id!r} for entry type {entry_type!r}")
        rules = credit.author_rules(self, record, ctx)
        if not isinstance(rules, Rules):
            return rules
        # judged here for every app, run or not: the balance is the network's, not the app's
        moved = credit.validate_app_credit(self, record, app_id, rules, ctx)
        if not moved:
            return moved
        return app.validate(record, record.entry_value(), rules, self, ctx)

    def balance_after(
        self, record: Record, agent: AgentKey, ctx: ValidationContext
    ) -> int | Verdict:
        """``agent``'s balance right after ``record`` (a credit-moving record of its chain)."""
        builtin = credit.builtin_balance_after(self, record, agent, ctx)
        if builtin is not None:
            return builtin
        move = app_credit(record.action.entry_type, record.entry_value())
        if move is None or record.action.author != agent:
            return Invalid("prev-credit", f"{record.hash.short()} moves no credit of this agent")
        return move.balance_after

    def _coop_author(self, record: Record, rules: Rules) -> Verdict:
        if not rules.is_registered_coop(record.action.author):
            return Invalid("not-a-coop", "only a registered co-op may do this")
        return VALID

    def _validate_proposal(self, record: Record, ctx: ValidationContext) -> Verdict:
        proposal = Proposal.from_value(record.entry_value())
        rules = self.rules_at(proposal.rules, record.action.timestamp, ctx)
        if not isinstance(rules, Rules):
            return rules
        not_coop = self._coop_author(record, rules)
        if not not_coop:
            return not_coop
        expected = record.action.timestamp + rules.params.voting_period_us
        if proposal.deadline != expected:
            return Invalid(
                "deadline", f"the deadline must be {expected} (timestamp + voting period)"
            )
        if proposal.kind != ProposalKind.OPAQUE:
            try:
                check_decision_body(proposal.kind, proposal.body, rules)
            except (SchemaError, EncodingError) as exc:
                return Invalid("proposal", f"the {proposal.kind} body does not fit: {exc}")
        return VALID

    def _validate_vote(self, record: Record, ctx: ValidationContext) -> Verdict:
        vote = Vote.from_value(record.entry_value())
        proposal_record = self.dependency(vote.proposal, ctx)
        if not isinstance(proposal_record, Record):
            return proposal_record
        if proposal_record.action.entry_type != PROPOSAL:
            return Invalid("vote", "a vote names a proposal")
        proposal = Proposal.from_value(proposal_record.entry_value())
        rules = self.rules_at(proposal.rules, proposal_record.action.timestamp, ctx)
        if not isinstance(rules, Rules):
            return rules
        if rules.is_registered_coop(record.action.author):  # in the proposal's electorate
            if vote.genesis is not None:
                return Invalid("vote", "a co-op's vote pins no genesis: the rules name the co-op")
        elif not rules.params.members_vote or vote.genesis is None:
            # without a pin nothing names the author a member: it is just not a voting co-op
            return Invalid(
                "not-a-coop",
                "only co-ops registered when the proposal was made may vote"
                + ("" if not rules.params.members_vote else ", and members pinning their genesis"),
            )
        else:
            voter = self._member_voter(record, vote.genesis, proposal_record, rules, ctx)
            if not isinstance(voter, AgentKey):
                return voter
        if record.action.timestamp > proposal.deadline:
            return Invalid("deadline", "the vote was cast after the deadline")
        return VALID

    def _member_voter(
        self,
        record: Record,
        pin: ActionHash,
        proposal_record: Record,
        rules: Rules,
        ctx: ValidationContext,
    ) -> AgentKey | Verdict:
        """The co-op a member's vote counts for, read from the genesis it pins (``pin``) by hash."""
        genesis = self.dependency(pin, ctx)
        if isinstance(genesis, Invalid):
            return Invalid("provenance", f"the genesis the vote pins is invalid ({genesis})")
        if not isinstance(genesis, Record):
            return genesis
        return member_voter(record, genesis, proposal_record, rules)

    def _validate_ratification(self, record: Record, ctx: ValidationContext) -> Verdict:
        ratification = Ratification.from_value(record.entry_value())
        at = record.action.timestamp
        if ratification.prev is not None:
            prev = self.dependency(ratification.prev, ctx)
            if not isinstance(prev, Record):
                return prev
            if prev.action.entry_type != RATIFICATION:
                return Invalid("ratification", "prev is not a ratification")
            prev_n = Ratification.from_value(prev.entry_value()).n
            if prev_n != ratification.n - 1:
                return Invalid("ratification", f"n {ratification.n} does not follow {prev_n}")
            if prev.action.timestamp > at:
                return Invalid("ratification", "earlier than the ratification it follows")
        rules = self.rules_at(ratification.prev, at, ctx)
        if not isinstance(rules, Rules):
            return rules
        not_coop = self._coop_author(record, rules)
        if not not_coop:
            return not_coop
        already = self.proposal_decided(ratification.prev, ratification.proposal, ctx)
        if already is not False:
            return (
                already
                if not isinstance(already, bool)
                else Invalid("ratification", "already ratified")
            )
        proposal_record = self.dependency(ratification.proposal, ctx)
        if not isinstance(proposal_record, Record):
            return proposal_record
        if proposal_record.action.entry_type != PROPOSAL:
            return Invalid("ratification", "it names something that is not a proposal")
        proposal = Proposal.from_value(proposal_record.entry_value())
        if at <= proposal.deadline:
            return Invalid("ratification", "made before the voting deadline")
        votes = []
        for vote_hash in ratification.votes:
            vote = self.dependency(vote_hash, ctx)
            if not isinstance(vote, Record):
                return vote
            votes.append(vote)
        at_proposal = self.rules_at(proposal.rules, proposal_record.action.timestamp, ctx)
        if not isinstance(at_proposal, Rules):
            return at_proposal
        geneses: dict[ActionHash, Record] = {}
        if at_proposal.params.members_vote:
            # members' votes count by the geneses they pin: fetched by hash, so a ratification
            # is Missing until they are held, never judged on whichever genesis a peer has
            for vote in votes:
                pin = _pinned_genesis(vote)
                if pin is not None:
                    genesis = self.dependency(pin, ctx)
                    if not isinstance(genesis, Record):
                        return genesis
                    geneses[pin] = genesis
        result = tally(proposal_record, proposal.deadline, votes, at_proposal, geneses)
        if len(result.counted) != len(votes):
            first = result.ignored[0] if result.ignored else (ratification.votes[0], "duplicate")
            return Invalid("tally", f"vote {first[0].short()} does not count: {first[1]}")
        if not result.ratified:
            return Invalid("tally", result.reason)
        if proposal.kind != ProposalKind.OPAQUE:
            try:
                apply_decision(
                    rules, Decision(at, proposal_record.hash, proposal.kind, proposal.body)
                )
            except (SchemaError, EncodingError) as exc:
                return Invalid("proposal", f"cannot apply: {exc}")
        return VALID


def _pinned_genesis(record: Record) -> ActionHash | None:
    """The genesis a vote record pins, if it is a vote that pins one (the tally judges the rest)."""
    if record.action.entry_type != VOTE:
        return None
    try:
        return Vote.from_value(record.entry_value()).genesis
    except (SchemaError, EncodingError, ValueError):
        return None


def _as_signed(record: Record) -> Record:
    """The record with only the entry its author signed for: another entry is dropped, not judged.

    The author's signature covers the action, and the action names its entry
    by hash; an entry that does not match is someone else's, so judging it
    would pin a verdict (and a warrant) on an author who never signed it, and
    cache that verdict under the genuine record's hash.
    """
    if record.entry is not None and EntryHash.of(record.entry) != record.action.entry_hash:
        return replace(record, entry=None)
    return record

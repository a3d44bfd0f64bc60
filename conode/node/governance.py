"""Governance on a node: propose, vote, ratify, see where proposals stand; and the automatic duties.

How it works:

- **Proposals, votes, ratifications** are built-in ``gov/*`` records on a
  hosted co-op's chain, authored through ``Node.create_entry`` (every rule
  checked, stored, published). Where the rules a proposal was made under
  let members vote (``members_vote``), a hosted member votes too, its vote
  pinning its own genesis. A proposal's deadline is its own timestamp
  plus the voting period in force then, so the entry is made from the
  timestamp the node gives the record. A ratification names the votes this
  node holds that the tally counts, and links to the node's governance head
  as entry n+1 of the log.
- **Where proposals stand** (``proposals``): the pure view of
  ``conode.apps.foundation.views`` over the held ``gov/*`` records and the
  foundation app's comments and reports, with the log read back from this
  node's head and the Foundation's payments from its chain.
- **Duties** (``run``, every ``DUTY_INTERVAL`` seconds), each idempotent:

  1. *Ratify*: a proposal made by a co-op hosted here, past its deadline by
     ``settle_us`` (time for late-published votes to arrive; a quarter of
     the voting period if that is shorter), that passes on
     the votes held and is not in the log yet, is ratified by this node. Only
     the proposer's node does this, so two co-ops never race to ratify the
     same proposal. Two proposals by different co-ops that mature together
     can still both be written as entry n+1 (a fork of the log): every node
     then follows the branch ``log_rank`` prefers (``RulesHead.advance``),
     and the proposal left on the other branch, no longer in the followed log,
     is ratified again here on top of it.
  2. *Pay* (the **steward**: the node hosting the charter's Foundation key):
     every ratified disbursement the Foundation has not paid is paid, from
     the Foundation to its co-op, with ``ref`` the proposal; the co-op's node
     countersigns by its auto-accept policy. "Paid" is read from the
     Foundation's chain (its activity state), which survives restarts; while a
     Foundation payment session is open nothing new is started, so a session
     restarted after a crash is never doubled. The rules refuse a second
     payment of one disbursement anyway (once per ``ref``).

A shell: every decision about validity is the engine's; this module only
picks what to author and when.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Mapping
from typing import Any, Final

import trio

from conode.apps.foundation.entries import COMMENT, REPORT
from conode.apps.foundation.views import (
    PASSED,
    RATIFIED,
    ProposalView,
    disbursed_coops,
    pinned_geneses,
    proposals,
)
from conode.chain import Record
from conode.dht.transport import TaskStatus
from conode.errors import ConodeError, ValidationError
from conode.hashes import ActionHash, AgentKey
from conode.node.node import Node
from conode.validation.activity import Activity
from conode.validation.entries import MAX_MEMO, PAYMENT, Payment
from conode.validation.foundation import disbursement_data
from conode.validation.governance import (
    CHOICES,
    PROPOSAL,
    RATIFICATION,
    VOTE,
    Proposal,
    ProposalKind,
    Ratification,
    Rules,
    Vote,
    tally,
)

__all__ = ["DUTY_INTERVAL", "RATIFY_SETTLE_US", "Governance"]

log = logging.getLogger("conode.governance")

DUTY_INTERVAL: Final = 5.0
"""Seconds between two rounds of duties (ratify what passed, pay what was ratified)."""
RATIFY_SETTLE_US: Final = 30_000_000
"""How long after a deadline the proposer's node waits for late-published votes before ratifying."""


class Governance:
    """One node's governance: its hosted co-ops' proposals, votes and ratifications; its duties."""

    def __init__(
        self, node: Node, *, settle_us: int = RATIFY_SETTLE_US, interval: float = DUTY_INTERVAL
    ) -> None:
        self.node = node
        self.settle_us = settle_us
        self.interval = interval
        self._last_refusal: dict[ActionHash, str] = {}

    # -- reading ------------------------------------------------------------------------------------

    def foundation_key(self) -> AgentKey | None:
        """The Foundation's key, as the rules in force name it (None: the charter names none)."""
        return self._rules().foundation

    def log(self) -> dict[ActionHash, ActionHash]:
        """Proposal -> its ratification, for every entry of the log ending at this node's head."""
        store = self.node.store
        out: dict[ActionHash, ActionHash] = {}
        head = self.node.rules_head()
        while head is not None:
            record = store.get(head)
            if record is None:  # a gap: what lies behind it is not known here
                break
            ratification = Ratification.from_value(record.entry_value())
            out[ratification.proposal] = record.hash
            head = ratification.prev
        return out

    def payments(self, coops: Collection[AgentKey] = ()) -> dict[ActionHash, ActionHash]:
        """Disbursement proposal -> the payment record that carried it out (held ones).

        A payment is on both parties' chains, one body under both signatures. Read from the
        Foundation's chain where this node holds it; a sharded node that does not (the paid
        co-op's own node, say) reads the copies on ``coops``' chains, those it holds: the co-ops
        the disbursements name."""
        foundation = self.foundation_key()
        if foundation is None:
            return {}
        store = self.node.store
        authors = [foundation] if store.head(foundation) is not None else list(coops)
        out: dict[ActionHash, ActionHash] = {}
        for record in store.records_of_type(PAYMENT, authors) if authors else ():
            if record.entry is None:
                continue
            body = Payment.from_value(record.entry_value()).body
            if body.payer.agent == foundation and body.ref is not None:
                out.setdefault(body.ref, record.hash)
        return out

    def proposals(self) -> list[ProposalView]:
        """Every proposal held, newest first: votes, tally, status, payment, comments, reports."""
        node = self.node
        store = node.store
        records = [
            record
            for entry_type in (PROPOSAL, VOTE, COMMENT, REPORT)
            for record in store.records_of_type(entry_type)
        ]

        def rules_at(record: Record, proposal: Proposal) -> Rules | None:
            rules = node.engine.rules_at(proposal.rules, record.action.timestamp, store)
            return rules if isinstance(rules, Rules) else None

        return proposals(
            records,
            rules_at=rules_at,
            now=node.clock(),
            ratified=self.log(),
            paid=self.payments(disbursed_coops(records)),
            get=store.get,
        )

    def proposal(self, proposal: ActionHash) -> ProposalView:
        """One proposal as it stands (``ValidationError`` if not held here)."""
        for view in self.proposals():
            if view.hash == proposal:
                return view
        raise ValidationError("proposal", f"no proposal {proposal.short()} is held here")

    def foundation(self) -> dict[str, Any]:
        """The Foundation: its key, balance, whether this node is its steward, what it owes."""
        key = self.foundation_key()
        if key is None:
            raise ValidationError("foundation", "the charter names no Foundation")
        node = self.node
        views = self.proposals()
        ratified = [v for v in views if v.disbursement is not None and v.status == RATIFIED]
        unpaid = [v for v in ratified if v.paid_by is None]
        return {
            "agent": str(key),
            "name": node.name_of(key),
            "held": node.store.head(key) is not None,
            "balance": node.store.activity(key).balance,
            "steward": key in node.agents,
            "disbursed": sum(
                v.disbursement.amount for v in ratified if v.paid_by and v.disbursement
            ),
            "owed": sum(v.disbursement.amount for v in unpaid if v.disbursement),
            "unpaid": [str(v.hash) for v in unpaid],
        }

    # -- authoring ---------------------------------------------------------------------------------

    async def propose(
        self, coop: AgentKey, kind: str, title: str, body: Mapping[str, Any]
    ) -> Record:
        """A hosted co-op proposes; the deadline is the record's time plus the voting period."""
        self._coop_here(coop)
        if kind not in ProposalKind.ALL:
            raise ValueError(f"a proposal is one of {', '.join(sorted(ProposalKind.ALL))}")
        node = self.node
        head = node.rules_head()

        def make(timestamp: int, _activity: Activity) -> dict[str, Any]:
            rules = node.engine.rules_at(head, timestamp, node.store)
            if not isinstance(rules, Rules):
                raise ValidationError("rules", f"the rules in force are not known here ({rules})")
            deadline = timestamp + rules.params.voting_period_us
            return Proposal(kind, title, dict(body), deadline, head).to_value()

        return await node.create_entry(coop, PROPOSAL, make, not_before=self._head_time())

    async def disburse(
        self, coop: AgentKey, to: AgentKey, amount: int, purpose: str, title: str = ""
    ) -> Record:
        """Propose that the Foundation pays co-op ``to`` ``amount`` for ``purpose``."""
        rules = self._rules()
        if rules.foundation is None:
            raise ValidationError("foundation", "the charter names no Foundation to pay from")
        if not rules.is_registered_coop(to):
            raise ValidationError(
                "foundation",
                f"the Foundation pays only co-ops: {to.short()} is not a registered co-op",
            )
        if type(amount) is not int or amount <= 0:
            raise ValueError("the amount is a positive whole number of minor units")
        body = disbursement_data(to, amount, purpose)
        name = self.node.name_of(to)
        return await self.propose(
            coop, ProposalKind.OPAQUE, title or f"Pay {name}: {purpose}"[:200], body
        )

    async def vote(self, voter: AgentKey, proposal: ActionHash, choice: str) -> Record:
        """A hosted co-op votes on a proposal (once, no later than its deadline); or a hosted
        member, where the rules the proposal was made under let members vote (``members_vote``):
        its vote pins its genesis, read from its chain here."""
        node = self.node
        node.hosted(voter)
        if choice not in CHOICES:
            raise ValueError(f"a vote is {', '.join(CHOICES)}, not {choice!r}")
        made = self._proposal_record(proposal)
        parsed = Proposal.from_value(made.entry_value())
        if node.clock() > parsed.deadline:
            raise ValidationError(
                "deadline", f"voting on {proposal.short()} closed at {_utc_time(parsed.deadline)}"
            )
        # who votes is decided by the rules in force when the proposal was made, as the engine does
        rules = node.engine.rules_at(parsed.rules, made.action.timestamp, node.store)
        if not isinstance(rules, Rules):
            raise ValidationError("rules", f"the rules it was made under are not known ({rules})")
        if rules.is_registered_coop(voter):
            vote = Vote(proposal, choice, node.rules_head())
            return await node.create_entry(voter, VOTE, vote.to_value())
        if not rules.params.members_vote:
            raise ValidationError(
                "not-a-coop",
                f"{node.name_of(voter)} is not a co-op of {proposal.short()}'s electorate: "
                "only co-ops vote on it (members vote only where the rules set members_vote)",
            )

        def pinned(_timestamp: int, activity: Activity) -> dict[str, Any]:
            if activity.genesis is None:
                raise ValidationError("genesis", f"{node.name_of(voter)} has no chain here yet")
            return Vote(proposal, choice, node.rules_head(), activity.genesis).to_value()

        return await node.create_entry(voter, VOTE, pinned)

    async def ratify(self, coop: AgentKey, proposal: ActionHash) -> Record:
        """Ratify a proposal that passed on the votes held: entry n+1 of this node's log."""
        self._coop_here(coop)
        node = self.node
        made = self._proposal_record(proposal)
        parsed = Proposal.from_value(made.entry_value())
        if node.clock() <= parsed.deadline:
            raise ValidationError(
                "deadline", f"voting on {proposal.short()} is open until {_utc_time(parsed.deadline)}"
            )
        rules = node.engine.rules_at(parsed.rules, made.action.timestamp, node.store)
        if not isinstance(rules, Rules):
            raise ValidationError("rules", f"the rules it was made under are not known ({rules})")

        def make(_timestamp: int, _activity: Activity) -> dict[str, Any]:
            # under the node's author lock: the head and the log as they are when it is signed
            if proposal in self.log():
                raise ValidationError("ratification", f"{proposal.short()} is already ratified")
            votes = [
                r
                for r in node.store.records_of_type(VOTE)
                if Vote.from_value(r.entry_value()).proposal == proposal
            ]
            result = tally(
                made, parsed.deadline, votes, rules, pinned_geneses(votes, node.store.get)
            )
            if not result.ratified:
                raise ValidationError("tally", f"{proposal.short()} did not pass: {result.reason}")
            head = node.rules_head()
            n = 1
            if head is not None:
                held = node.store.get(head)
                if held is None:
                    raise ValidationError("rules", "this node's governance head is not held")
                n = Ratification.from_value(held.entry_value()).n + 1
            return Ratification(proposal, result.counted, n, head).to_value()

        return await node.create_entry(coop, RATIFICATION, make, not_before=self._head_time())

    # -- duties ---------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Do the duties every ``interval`` seconds until cancelled."""
        task_status.started()
        await self.node.started.wait()
        while True:
            try:
                await self.duties()
            except ConodeError as exc:  # a task boundary: log it, try again next round
                log.warning("governance duties: %s", exc)
            await trio.sleep(self.interval)

    async def duties(self) -> None:
        """One round: ratify this node's co-ops' proposals that passed; pay ratified disbursements."""
        node = self.node
        views = self.proposals()
        now = node.clock()
        for view in views:
            # wait for late-published votes: settle_us, or a quarter of a short voting period
            settle = min(self.settle_us, (view.proposal.deadline - view.timestamp) // 4)
            if (
                view.status == PASSED
                and view.author in node.agents
                and now > view.proposal.deadline + settle
            ):
                try:
                    record = await self.ratify(view.author, view.hash)
                except ConodeError as exc:  # e.g. another ratification moved the head meanwhile
                    log.warning("cannot ratify %s: %s", view.hash.short(), exc)
                    continue
                log.info(
                    "ratified %s (%s) as %s",
                    view.hash.short(),
                    view.proposal.title,
                    record.hash.short(),
                )
        if any(v.status == PASSED for v in views if v.author in node.agents):
            views = self.proposals()  # the ratifications just made, for the steward below
        await self._pay_disbursements(views)

    async def _pay_disbursements(self, views: list[ProposalView]) -> None:
        node = self.node
        foundation = self.foundation_key()
        if foundation is None or foundation not in node.agents or node.in_session(foundation):
            return
        for view in sorted(views, key=lambda v: v.timestamp):  # oldest first
            wanted = view.disbursement
            if wanted is None or view.status != RATIFIED or view.paid_by is not None:
                continue
            if view.hash in node.store.activity(foundation).bills_paid:
                continue  # paid, though the record is not where ``payments`` looked
            memo = f"disbursement: {wanted.purpose}"[:MAX_MEMO]
            result = await node.pay(
                foundation, wanted.coop, wanted.amount, memo=memo, ref=view.hash
            )
            if result.committed:
                self._last_refusal.pop(view.hash, None)
                log.info(
                    "the Foundation paid %s %d for %s",
                    wanted.coop.short(),
                    wanted.amount,
                    view.hash.short(),
                )
            elif self._last_refusal.get(view.hash) != result.reason:
                self._last_refusal[view.hash] = result.reason
                log.warning(
                    "the Foundation cannot pay %s yet: %s", view.hash.short(), result.reason
                )

    # -- helpers ------------------------------------------------------------------------------------------

    def _rules(self) -> Rules:
        return self.node.rules_now()

    def _coop_here(self, coop: AgentKey) -> None:
        self.node.hosted(coop)
        if not self._rules().is_registered_coop(coop):
            raise ValidationError(
                "not-a-coop",
                f"{self.node.name_of(coop)} is not a registered co-op: only co-ops propose, vote and ratify",
            )

    def _proposal_record(self, proposal: ActionHash) -> Record:
        record = self.node.store.get(proposal)
        if record is None or record.action.entry_type != PROPOSAL:
            raise ValidationError("proposal", f"no proposal {proposal.short()} is held here")
        return record

    def _head_time(self) -> int:
        """Records are never dated before the ratification they name as their rules."""
        head = self.node.rules_head()
        held = None if head is None else self.node.store.get(head)
        return 0 if held is None else held.action.timestamp


def _utc_time(timestamp_us: int) -> str:
    """A record time (µs since the epoch) as people read it: ``2026-12-07 04:33:34 UTC``."""
    moment = dt.datetime.fromtimestamp(timestamp_us / 1e6, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

"""Audit: replay whole chains through every rule, and check that credit sums to zero.

A peer validator audits a network's export offline: every chain is folded
through the chain and activity rules, every record is judged by the engine
with every other exported record as its context, and the final balances of
the chains (a chain continued by another counts once, in its successor) must
sum to zero. Where they do not, the payments only one party committed are
named (``half-payment``: the party whose chain lacks it, with the record that
stands in its place); a payer whose position holds something else than a
payment it countersigned is named for ``equivocation``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conode.chain import ActionKind, Record
from conode.hashes import ActionHash, AgentKey
from conode.validation.activity import fold_chain
from conode.validation.charter import Charter
from conode.validation.engine import AppValidator, Engine, ValidationContext
from conode.validation.entries import (
    PAYMENT,
    ChainOpen,
    Genesis,
    Payment,
    app_credit,
    is_app_type,
)
from conode.validation.memory import HeldRecords
from conode.validation.verdict import Invalid, Missing

__all__ = [
    "AuditReport", "AuditViolation", "Overdue", "PositionLookup", "Unmatched", "audit",
    "audit_chain", "overdue", "unmatched_payments",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditViolation:
    """One broken rule: whose chain, at which seq, which rule, why."""

    agent: AgentKey
    seq: int
    rule: str
    reason: str

    def __str__(self) -> str:
        return f"{self.agent.short()} seq {self.seq}: {self.rule}: {self.reason}"


@dataclass(slots=True)
class AuditReport:
    """What an audit found: violations, each chain's balance and name, and the zero-sum check."""

    chains: int = 0
    records: int = 0
    violations: list[AuditViolation] = field(default_factory=list)
    balances: dict[AgentKey, int] = field(default_factory=dict)
    names: dict[AgentKey, str] = field(default_factory=dict)
    continued: set[AgentKey] = field(default_factory=set)
    issued: int = 0
    """Credit that apps' credit moves issued (grants), less what they recovered."""
    dues: dict[AgentKey, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    """What each chain's app entries oblige its author to commit next, and by when (``overdue``)."""
    unmatched: list[Unmatched] = field(default_factory=list)
    """Payment records only one party's chain holds (``unmatched_payments``): not money."""
    missing: list[tuple[Record, Missing]] = field(default_factory=list)
    """The records judged ``Missing`` (``audit_chain``: each is also a ``missing`` violation),
    with what they need: a node that shards fetches it and audits again."""

    @property
    def total(self) -> int:
        """The sum of the balances of chains not continued by another, without what payments
        only one party holds moved (those are named among the violations, or in flight)."""
        held = sum(b for agent, b in self.balances.items() if agent not in self.continued)
        return held - sum(u.delta for u in self.unmatched)

    @property
    def issuance(self) -> int:
        """The issuance account's balance: negative by exactly what apps issued."""
        return -self.issued

    @property
    def zero_sum(self) -> bool:
        """The chains' balances and the issuance account sum to zero."""
        return self.total + self.issuance == 0

    @property
    def ok(self) -> bool:
        return not self.violations and self.zero_sum


def audit(
    charter: Charter,
    chains: Iterable[Sequence[Record]],
    apps: Mapping[str, AppValidator] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Replay every chain through every rule; ``progress`` is told each record done."""
    chain_list = [list(chain) for chain in chains if chain]
    held = HeldRecords(r for chain in chain_list for r in chain)
    engine = Engine(charter, apps)
    report = AuditReport(chains=len(chain_list))
    valid_prefix: list[Record] = []
    for chain in chain_list:
        agent = chain[0].action.author
        report.names[agent] = _name(chain[0])
        state, offence, position = fold_chain(chain)
        report.balances[agent] = state.balance
        report.dues[agent] = state.dues
        if offence is not None:
            bad = chain[position]
            report.violations.append(
                AuditViolation(agent, bad.action.seq, offence.rule, offence.reason)
            )
            chain = chain[:position]
        valid_prefix.extend(chain)
    # In time order, every record's dependencies (earlier in time) are judged, and cached, first.
    for record in sorted(
        valid_prefix, key=lambda r: (r.action.timestamp, r.action.seq, r.hash.raw)
    ):
        report.records += 1
        verdict = engine.validate_record(record, held, signature_checked=True)
        if isinstance(verdict, Invalid):
            report.violations.append(_violation(record, verdict.rule, verdict.reason))
        elif isinstance(verdict, Missing):
            report.violations.append(_violation(record, "missing", f"not in the export: {verdict}"))
        if record.action.kind is ActionKind.OPEN_CHAIN:
            report.continued.add(ChainOpen.from_value(record.entry_value()).predecessor)
        report.issued += _issued(record)
        if progress is not None:
            progress(1)
    by_position = {(r.action.author, r.action.seq): r for r in valid_prefix}
    _add_unmatched(report, unmatched_payments(valid_prefix, by_position.get))
    report.violations.sort(key=lambda v: (v.agent.raw, v.seq))
    return report


@dataclass(frozen=True, slots=True)
class Overdue:
    """A chain whose author owed an entry of ``entry_type`` by ``due`` and had not committed it:
    until it does, it may not pay (for the exchange: a co-op's grant line owed its re-estimate)."""

    agent: AgentKey
    entry_type: str
    due: int


def overdue(report: AuditReport, at: int) -> list[Overdue]:
    """The chains of ``report`` whose author owed an entry by ``at`` (a finding, not a violation:
    owing is not against the rules, paying while owing is), by agent."""
    found = [
        Overdue(agent, entry_type, due)
        for agent, dues in report.dues.items()
        for entry_type, due in dues
        if due <= at
    ]
    return sorted(found, key=lambda o: (o.agent.raw, o.entry_type))


PositionLookup = Callable[[tuple[AgentKey, int]], Record | None]
"""The record an agent's chain holds at a seq, as far as the auditor holds that chain."""


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A payment record whose other party's chain does not hold it at the position it names:
    not money (a payment is one entry on both chains). ``delta`` is what it moved on
    ``agent``'s chain; ``finding`` is the violation that names who broke it, or None while
    the other chain does not reach that position yet (in flight)."""

    agent: AgentKey
    seq: int
    delta: int
    finding: AuditViolation | None


def unmatched_payments(records: Iterable[Record], at: PositionLookup) -> list[Unmatched]:
    """The payments among ``records`` that the other party's chain does not hold where the
    payment puts it: the books that would not sum to zero, and who broke them.

    The payer's countersignature binds its position, so wherever one side holds the payment
    and the payer's chain holds something else (or the payee's chain holds something else
    while the payer's holds the payment), the payer is named: it gave its position to
    another act first (``equivocation``), or holds a payment its payee never took because
    the payer's position was found taken (``half-payment``; or the payee's operator forced
    its signed position free: the reason says both). A position the auditor does not hold
    yet (a chain that stops before it) is a payment in flight: no finding.
    """
    found: dict[tuple[AgentKey, int], Unmatched] = {}
    for record in records:
        if record.action.entry_type != PAYMENT or record.entry is None:
            continue
        try:
            payment = Payment.from_value(record.entry_value())
        except (ValueError, TypeError):
            continue  # a malformed payment is the engine's finding, not this one
        body = payment.body
        author = record.action.author
        mine = body.position_of(author)
        if mine is None:
            continue
        for position in (body.payer, body.payee):
            if position.agent == author:
                continue
            there = at((position.agent, position.seq))
            if there is not None and there.action.entry_hash == record.action.entry_hash:
                continue
            delta = -body.amount if mine is body.payer else body.amount
            finding = None
            if there is not None:
                payer = body.payer.agent
                if position is body.payer:
                    rule, why = "equivocation", (
                        f"it gave seq {position.seq} to the payment {record.hash.short()} "
                        f"on {author.short()}'s chain, and its chain holds {there.hash.short()} "
                        "there"
                    )
                else:
                    rule, why = "half-payment", (
                        f"its chain holds the payment {record.hash.short()} of "
                        f"{body.amount} to {position.agent.short()}, whose chain holds "
                        f"{there.hash.short()} at seq {position.seq} instead (the payer's "
                        "position was found taken, or the payee's operator forced it free)"
                    )
                finding = AuditViolation(payer, body.payer.seq, rule, why)
            found.setdefault((author, record.action.seq), Unmatched(
                author, record.action.seq, delta, finding
            ))  # fmt: skip
    return list(found.values())


def _issued(record: Record) -> int:
    """What an app's credit move in ``record`` issued (negative: recovered); 0 for anything else.

    Counted for every record the activity fold accepted, as the balances are.
    """
    if record.entry is None or not is_app_type(record.action.entry_type):
        return 0
    move = app_credit(record.action.entry_type, record.entry_value())
    return 0 if move is None else move.delta


def _violation(record: Record, rule: str, reason: str) -> AuditViolation:
    return AuditViolation(record.action.author, record.action.seq, rule, reason)


def _name(genesis: Record) -> str:
    try:
        return Genesis.from_value(genesis.entry_value()).name
    except Exception:  # a broken genesis is reported as a violation; the table just shows "?"
        return "?"


class _Auditing:
    """A context that re-judges one agent's records and trusts what the holder validated of others."""

    def __init__(self, context: ValidationContext, agent: AgentKey) -> None:
        self._context = context
        self._agent = agent

    def get_record(self, action: ActionHash) -> Record | None:
        return self._context.get_record(action)

    def get_genesis(self, agent: AgentKey) -> Record | None:
        return self._context.get_genesis(agent)

    def validated(self, action: ActionHash) -> bool:
        record = self._context.get_record(action)
        return (
            record is not None
            and record.action.author != self._agent
            and self._context.validated(action)
        )


def audit_chain(
    charter: Charter,
    agent: AgentKey,
    context: ValidationContext,
    apps: Mapping[str, AppValidator] | None = None,
    chain: Sequence[Record] | None = None,
    at: PositionLookup | None = None,
) -> AuditReport:
    """Audit one agent's whole chain with every rule, its dependencies read from ``context``.

    Every record of the chain is judged afresh, in order; records of other
    chains are trusted as far as ``context`` says it validated them. The
    chain is read from the context (genesis, then each next record) unless given.
    With ``at``, each payment is also matched against its other party's chain
    (``unmatched_payments``).
    """
    records = list(chain) if chain is not None else _chain_from(context, agent)
    report = AuditReport(chains=1 if records else 0)
    if not records:
        return report
    engine = Engine(charter, apps)
    report.names[agent] = _name(records[0])
    state, offence, position = fold_chain(records)
    report.balances[agent] = state.balance
    checked = records
    if offence is not None:
        bad = records[position]
        report.violations.append(
            AuditViolation(agent, bad.action.seq, offence.rule, offence.reason)
        )
        checked = records[:position]
    auditing = _Auditing(context, agent)
    for record in checked:
        report.records += 1
        report.issued += _issued(record)
        verdict = engine.validate_record(record, auditing, signature_checked=True)
        if isinstance(verdict, Invalid):
            report.violations.append(_violation(record, verdict.rule, verdict.reason))
        elif isinstance(verdict, Missing):
            report.violations.append(_violation(record, "missing", f"not held: {verdict}"))
            report.missing.append((record, verdict))
    if at is not None:
        _add_unmatched(report, unmatched_payments(checked, at))
    return report


def _add_unmatched(report: AuditReport, unmatched: list[Unmatched]) -> None:
    report.unmatched.extend(unmatched)
    named = {(v.agent, v.seq, v.rule) for v in report.violations}
    for item in unmatched:
        finding = item.finding
        if finding is not None and (finding.agent, finding.seq, finding.rule) not in named:
            named.add((finding.agent, finding.seq, finding.rule))
            report.violations.append(finding)


def _chain_from(context: ValidationContext, agent: AgentKey) -> list[Record]:
    """The agent's chain as the context holds it, if it offers ``records`` (a store does)."""
    records = getattr(context, "records", None)
    if callable(records):
        return list(records(agent))
    genesis = context.get_genesis(agent)
    return [] if genesis is None else [genesis]

"""Audit: replay whole chains through every rule, and check that credit sums to zero.

A peer validator audits a network's export offline: every chain is folded
through the chain and activity rules, every record is judged by the engine
with every other exported record as its context, and the final balances of
the chains (a chain continued by another counts once, in its successor) must
sum to zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conode.chain import ActionKind, Record
from conode.hashes import AgentKey
from conode.validation.activity import Activity, step
from conode.validation.charter import Charter
from conode.validation.engine import AppValidator, Engine
from conode.validation.entries import ChainOpen, Genesis
from conode.validation.memory import HeldRecords
from conode.validation.verdict import Invalid, Missing

__all__ = ["AuditReport", "AuditViolation", "audit"]


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

    @property
    def total(self) -> int:
        """The sum of the balances of chains not continued by another."""
        return sum(b for agent, b in self.balances.items() if agent not in self.continued)

    @property
    def zero_sum(self) -> bool:
        return self.total == 0

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
    chain_list = [list(chain) for chain in chains]
    held = HeldRecords(r for chain in chain_list for r in chain)
    engine = Engine(charter, apps)
    report = AuditReport(chains=len(chain_list))
    for chain in chain_list:
        if not chain:
            continue
        agent = chain[0].action.author
        state = Activity()
        for record in chain:
            report.records += 1
            state, verdict = step(state, record)
            if isinstance(verdict, Invalid):
                report.violations.append(AuditViolation(agent, record.action.seq, verdict.rule, verdict.reason))
                break
            judged = engine.validate_record(record, held)
            if isinstance(judged, Invalid):
                report.violations.append(AuditViolation(agent, record.action.seq, judged.rule, judged.reason))
            elif isinstance(judged, Missing):
                report.violations.append(
                    AuditViolation(agent, record.action.seq, "missing", f"not in the export: {judged}")
                )
            if record.action.kind is ActionKind.OPEN_CHAIN:
                report.continued.add(ChainOpen.from_value(record.entry_value()).predecessor)
            if progress is not None:
                progress(1)
        report.balances[agent] = state.balance
        report.names[agent] = _name(chain[0])
    return report


def _name(genesis: Record) -> str:
    try:
        return Genesis.from_value(genesis.entry_value()).name
    except Exception:  # a broken genesis is reported as a violation; the table just shows "?"
        return "?"

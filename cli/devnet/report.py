"""What a devnet run showed (``DevnetResult``) and its printed summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

from cli.devnet.plan import (
    DevnetPlan,
)
from cli.money import format_amount
from cli.render import table
from cli.scenario import report_lines

__all__ = ["DevnetResult", "print_summary"]


@dataclass(slots=True)
class DevnetResult:
    """What a devnet run showed; ``ok`` is its claim."""

    nodes: int = 0
    agents: int = 0
    payments: int = 0
    committed: int = 0
    refused: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    converged: bool = False
    convergence_s: float | None = None
    audited: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    balance_total: int | None = None
    issued: int = 0
    """What apps (the exchange's grants) issued: the issuance account is its negative."""
    balances: list[dict[str, Any]] = field(default_factory=list)
    """Each agent's final balance as audited: name, key, hosting node, balance (minor units)."""
    balances_agree: bool = False
    open_sessions: int = 0
    locked_chains: int = 0
    clean_stop: bool | None = None
    elapsed_s: float = 0.0
    seed: str = ""
    data_dir: str | None = None
    currency: str = "DEV"
    scale: int = 2
    scenario: dict[str, Any] | None = None
    """The full scenario's figures (``--scenario full``), joined to the JSON summary."""
    scenario_ok: bool = True

    @property
    def zero_sum(self) -> bool:
        """Every chain was audited, and its balances and the issuance account sum to zero."""
        return (
            self.balance_total is not None
            and self.balance_total - self.issued == 0
            and self.audited == self.agents
        )

    @property
    def ok(self) -> bool:
        """Converged, zero sum, no violation, and every node agrees with the audits."""
        return (
            self.converged
            and self.zero_sum
            and not self.violations
            and self.balances_agree
            and self.scenario_ok
        )

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile of committed payments' latency in ms (nearest rank), or None."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return round(ordered[index], 1)

    def as_json(self) -> dict[str, Any]:
        """The summary as one JSON object (the last line of ``--json``)."""
        return {
            "nodes": self.nodes,
            "agents": self.agents,
            "payments": self.payments,
            "payments_committed": self.committed,
            "payments_refused": self.refused,
            "payments_failed": self.failed,
            "refusal_reasons": self.reasons,
            "p50_payment_ms": self.percentile(0.5),
            "p95_payment_ms": self.percentile(0.95),
            "converged": self.converged,
            "convergence_s": self.convergence_s,
            "audited_chains": self.audited,
            "audit_violations": len(self.violations),
            "violations": self.violations,
            "balance_total": self.balance_total,
            "balances": self.balances,
            "issuance_account": -self.issued,
            "zero_sum": self.zero_sum,
            "balances_agree": self.balances_agree,
            "open_sessions": self.open_sessions,
            "locked_chains": self.locked_chains,
            "clean_stop": self.clean_stop,
            "ok": self.ok,
            "elapsed_s": self.elapsed_s,
            "seed": self.seed,
            "data_dir": self.data_dir,
            **(self.scenario or {}),
        }


def print_summary(result: DevnetResult, plan: DevnetPlan, out: TextIO, elapsed: float) -> None:
    def money(minor: int) -> str:
        return format_amount(minor, result.scale, result.currency)

    reasons = ", ".join(f"{rule}: {n}" for rule, n in sorted(result.reasons.items())) or "none"
    p50, p95 = result.percentile(0.5), result.percentile(0.95)
    coops = len(plan.dirs)
    fund = ", the Foundation on node 0" if plan.charter.foundation is not None else ""
    lines = [
        f"conode devnet: {result.nodes} nodes on 127.0.0.1, {result.agents} agents "
        f"({coops} co-ops, {len(plan.members())} members{fund}), "
        f"network {plan.charter.network_id}",
        f"payments:  {result.payments} made: {result.committed} committed, {result.refused} refused "
        f"({reasons}), {result.failed} failed",
        f"latency:   p50 {p50 if p50 is not None else '-'} ms, p95 {p95 if p95 is not None else '-'} ms"
        " (committed payments, through the API)",
        (
            f"converged: yes, in {result.convergence_s} s (each chain at its host's head on every "
            "node that must hold it)"
            if result.converged
            else f"converged: NO (after {result.convergence_s} s)"
        ),
        f"audit:     {result.audited} of {result.agents} chains audited by a node that does not "
        f"host them: {len(result.violations)} violations",
        f"zero sum:  {'yes' if result.zero_sum else 'NO'} (the audited balances total "
        f"{'-' if result.balance_total is None else money(result.balance_total)}"
        + (f", the issuance account {money(-result.issued)}" if result.issued else "")
        + f"); {'they agree' if result.balances_agree else 'they DO NOT agree'} "
        "with each agent's own node",
    ]
    if result.open_sessions or result.locked_chains:
        lines.append(
            f"sessions:  {result.open_sessions} payment sessions still open and "
            f"{result.locked_chains} chains held by one after convergence"
        )
    for v in result.violations[:10]:
        lines.append(f"  violation: {v['agent']} seq {v['seq']}: {v['rule']}: {v['reason']}")
    if result.scenario is not None:
        lines += report_lines(result.scenario, money)
        problems = result.scenario.get("scenario_problems") or []
        lines += [f"  PROBLEM: {problem}" for problem in problems]
    lines.append("balances:  each agent's, as audited by a node that does not host it")
    lines += [
        "  " + line
        for line in table(
            ("NAME", "NODE", "BALANCE"),
            [(b["name"], b["node"], money(b["balance"])) for b in result.balances],
        ).splitlines()
    ]
    lines.append(f"result:    {'OK' if result.ok else 'FAILED'} ({elapsed:.1f} s)")
    print("\n".join(lines), file=out, flush=True)

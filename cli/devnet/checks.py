"""The devnet's checks (steps 4 and 5): convergence of every node's heads, and an audit of every
chain through a node that does not host it."""

from __future__ import annotations

import contextlib
import time

from cli.devnet.plan import (
    POLL,
    DevnetPlan,
)
from cli.devnet.processes import (
    NodeProcess,
)
from cli.devnet.report import DevnetResult
from conode.errors import ConodeError

__all__ = ["audit_all", "converge"]


def converge(nodes: list[NodeProcess], timeout: float) -> tuple[bool, float]:
    """Sync every node in rounds until all heads digests are equal; (converged, seconds)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        digests = set()
        for node in nodes:
            try:
                digests.add(node.client.call("sync")["heads_digest"])
            except ConodeError:
                digests.add(f"unreachable {node.index}")
        if len(digests) == 1:
            return True, time.monotonic() - started
        if time.monotonic() > deadline:
            return False, time.monotonic() - started
        time.sleep(POLL)


def audit_all(plan: DevnetPlan, nodes: list[NodeProcess], result: DevnetResult) -> None:
    """Audit each chain on a node that does not host it; zero sum, and agreement with each home node."""
    balances: dict[str, int] = {}
    for member in plan.agents.values():
        auditor = nodes[(member.node + 1) % len(nodes)]
        try:
            report = auditor.client.call("audit", {"agent": str(member.key)})
        except ConodeError as exc:
            result.violations.append(
                {"agent": member.name, "seq": None, "rule": "audit", "reason": str(exc)}
            )
            continue
        result.audited += 1
        for v in report.get("violations", []):
            result.violations.append(
                {
                    "agent": member.name,
                    "seq": v.get("seq"),
                    "rule": v.get("rule"),
                    "reason": v.get("reason"),
                    "auditor": auditor.index,
                }
            )
        result.issued += int(report.get("issued", 0))
        balance = (report.get("balances") or {}).get(str(member.key))
        if balance is None:
            result.violations.append(
                {"agent": member.name, "seq": None, "rule": "audit", "reason": "no chain held"}
            )
        else:
            balances[str(member.key)] = balance
            result.balances.append(
                {
                    "name": member.name,
                    "key": str(member.key),
                    "node": member.node,
                    "balance": balance,
                }
            )
    result.balance_total = sum(balances.values())
    own: dict[str, int] = {}
    for node in nodes:
        with contextlib.suppress(ConodeError):
            for agent in node.client.call("agents"):
                own[agent["key"]] = agent["balance"]
            # a payment session still open now is one that did not finish: say so
            status = node.client.call("status")
            result.open_sessions += int(status.get("sessions", 0))
            result.locked_chains += int(status.get("locked_chains", 0))
    result.balances_agree = bool(balances) and all(
        own.get(key) == balance for key, balance in balances.items()
    )

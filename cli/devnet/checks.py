"""The devnet's checks (steps 4 and 5): convergence (every chain at its host's head on every
node that must hold it), and an audit of every chain through a node that does not host it."""

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
from cli.devnet.shares import held_problems
from conode.errors import ConodeError

__all__ = ["audit_all", "converge"]


def converge(plan: DevnetPlan, nodes: list[NodeProcess], timeout: float) -> tuple[bool, float]:
    """Sync every node in rounds until every chain's holders hold it at its host's head and every
    node holds the same warrants; (converged, seconds).

    The holders of a chain are its host, its R authorities and the full-arc nodes
    (``shares``): on a sharded network of more than R nodes no node holds every chain, so
    nodes' heads digests differ however long they gossip. With R or fewer nodes every node is
    a holder of every chain, as before sharding. Warrants reach every node.
    """
    started = time.monotonic()
    deadline = started + timeout
    replication = plan.charter.params.replication
    hosts = {m.key: m.node for m in plan.agents.values()}
    while True:
        statuses, directories, warrants = {}, {}, set()
        problems = []
        for node in nodes:
            try:
                node.client.call("sync")
                statuses[node.index] = node.client.call("status")
                directories[node.index] = node.client.call("directory")
                warrants.add(statuses[node.index]["warrants"])
            except ConodeError as exc:
                problems.append(f"node {node.index}: {exc}")
        if not problems:
            problems = held_problems(statuses, directories, hosts, replication, same_head=True)
        if len(warrants) > 1:
            problems.append(f"the nodes hold {sorted(warrants)} warrants")
        if not problems:
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

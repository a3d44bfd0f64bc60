"""``conode audit``: export files offline (every rule, zero sum, trade rings, what is overdue),
or agents' chains through the running node."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cli.auditfiles import (
    FileAudit,
    audit_files,
    count_records,
    overdue_json,
    report_json,
    rings_json,
)
from cli.datadir import CommandError, DataDir, default_data_dir, read_charter
from cli.money import format_amount
from cli.output import EXIT_FAILED, EXIT_OK, print_json
from cli.render import Progress, table
from cli.session import Session, label
from conode.hashes import AgentKey
from conode.validation.audit import AuditViolation
from conode.validation.charter import Charter

if TYPE_CHECKING:  # the exchange's code loads only for an audit: `conode run` never needs it
    from conode.apps.exchange.rings import RingSearch

__all__ = ["audit"]


# -- audit ------------------------------------------------------------------------------------------------


def audit(args: argparse.Namespace) -> int:
    files = [Path(t) for t in args.targets if Path(t).is_file()]
    if files and len(files) != len(args.targets):
        missing = [t for t in args.targets if not Path(t).is_file()]
        raise CommandError(f"{missing[0]!r} is not a file: give export files only, or agents only")
    if files:
        return _audit_files(args, files)
    if args.charter is not None:
        raise CommandError("--charter is for auditing export files")
    return _audit_agents(args)


def _audit_charter(args: argparse.Namespace) -> Charter:
    if args.charter is not None:
        return read_charter(args.charter)
    chosen: Path | None = getattr(args, "data_dir", None)
    data = DataDir(chosen if chosen is not None else default_data_dir())
    if not data.has_charter():
        raise CommandError(
            "auditing export files needs the network's charter: "
            "give --charter F (or a --data-dir that has one)"
        )
    return data.charter()


def _audit_files(args: argparse.Namespace, files: list[Path]) -> int:
    charter = _audit_charter(args)
    total = count_records(files)
    progress = Progress.maybe(f"auditing {len(files)} chains", total)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done)

    try:
        result = audit_files(charter, files, tick)
    finally:
        if progress is not None:
            progress.close()
    report = result.report
    violations = result.violations
    names = report.names
    if args.json:
        print_json(
            {
                **report_json(report, violations, names),
                **rings_json(result.rings, names),
                **overdue_json(result, names),
                "apps_judged": result.apps_judged,
                "apps_unjudged": result.apps_unjudged,
                "files": result.files,
            }
        )
        return EXIT_OK if result.valid else EXIT_FAILED

    def money(minor: int) -> str:
        return format_amount(minor, charter.scale, charter.currency)

    print(
        f"audited {report.chains} chains, {report.records} records from {result.files} files "
        f"(network {charter.name}, {charter.network_id})"
    )
    if result.apps_judged or result.apps_unjudged:
        judged = ", ".join(result.apps_judged) or "none"
        print(f"apps judged with the pinned code: {judged}")
    if result.apps_unjudged:
        print(
            "apps NOT judged (not installed here, or not the pinned version; their records are "
            f"taken as valid): {', '.join(result.apps_unjudged)}"
        )
    _print_violations(violations, names)
    print("balances:")
    print(
        table(
            ("NAME", "AGENT", "BALANCE"),
            [
                (names.get(agent, "?"), str(agent), money(balance))
                for agent, balance in sorted(
                    report.balances.items(), key=lambda kv: names.get(kv[0], "")
                )
            ],
        )
    )
    if report.issuance:
        print(f"issuance account (what apps granted): {money(report.issuance)}")
    for item in report.unmatched:
        owner = names.get(item.agent, item.agent.short())
        what = (
            "in flight (the other chain is not held that far)"
            if item.finding is None
            else ("named above")
        )
        print(
            f"not counted: {money(item.delta)} on {owner}'s chain at seq {item.seq}, a payment "
            f"the other party's chain does not hold ({what})"
        )
    if report.zero_sum:
        print(f"zero sum: yes (the balances and the issuance account total {money(0)})")
    else:
        why = (
            "the invalid records above are left out"
            if violations
            else "is every chain of the network in the files?"
        )
        print(f"zero sum: NO: the balances total {money(report.total + report.issuance)} ({why})")
    _print_rings(result.rings, names, money)
    _print_overdue(result, names)
    print("result: VALID" if result.valid else "result: INVALID")
    return EXIT_OK if result.valid else EXIT_FAILED


def _print_rings(
    rings: RingSearch, names: dict[AgentKey, str], money: Callable[[int], str]
) -> None:
    """Trade rings: co-ops buying each other's offers in a circle in one month (not violations)."""
    heading = "trade rings (co-ops that bought each other's offers in a circle in one month)"
    if not rings.rings:
        print(f"{heading}: none")
    else:
        print(f"{heading}, worth a look: grants count these sales:")
        for ring in rings.rings:
            legs = [
                f"{names.get(coop, coop.short())} -{money(amount)}->"
                for coop, amount in zip(ring.coops, ring.amounts, strict=True)
            ]
            print(f"  {ring.month}: {' '.join(legs)} {names.get(ring.coops[0], '?')}")
    if not rings.complete:
        print("  (the search stopped at its bounds: there may be more)")


def _print_overdue(result: FileAudit, names: dict[AgentKey, str]) -> None:
    """Chains owing an entry as of the newest record: a co-op's grant line owed its re-estimate."""
    found = overdue_json(result, names)
    heading = f"overdue as of {found['overdue_as_of']} (the newest record)"
    if not found["overdue"]:
        print(f"{heading}: none")
        return
    print(f"{heading}: these may not pay until they commit what they owe:")
    from conode.apps.exchange import GRANT

    for row in found["overdue"]:
        what = (
            "grant line owes its re-estimate" if row["entry_type"] == GRANT else row["entry_type"]
        )
        print(f"  {row['name']} ({row['agent'][:16]}…): {what}, due {row['due']}")


def _print_violations(violations: list[AuditViolation], names: dict[AgentKey, str]) -> None:
    if not violations:
        print("violations: none")
        return
    print(f"violations ({len(violations)}):")
    print(
        table(
            ("AGENT", "NAME", "SEQ", "RULE", "REASON"),
            [
                (v.agent.short(), names.get(v.agent, "?"), v.seq, v.rule, v.reason)
                for v in violations
            ],
        )
    )


def _audit_agents(args: argparse.Namespace) -> int:
    session = Session(args)
    reports = []
    for target in args.targets:
        key = target if target.startswith("agt_") else None
        report = session.call("audit", {"agent": target})
        if key is None:
            key = next(iter(report.get("balances") or {}), target)
        reports.append({"target": target, "agent": key, **report})
    valid = all(r["valid"] for r in reports)
    if args.json:
        print_json(reports if len(reports) > 1 else reports[0])
        return EXIT_OK if valid else EXIT_FAILED
    for r in reports:
        name = (r.get("names") or {}).get(r["agent"], r["target"])
        balance = (r.get("balances") or {}).get(r["agent"])
        shown = "-" if balance is None else session.money(balance)
        verdict = "valid" if r["valid"] else "INVALID"
        print(f"{label(name, r['agent'])}: {r['records']} records, {verdict}, balance {shown}")
        for v in r["violations"]:
            print(f"  seq {v['seq']}: {v['rule']}: {v['reason']}")
    return EXIT_OK if valid else EXIT_FAILED

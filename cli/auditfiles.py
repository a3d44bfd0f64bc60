"""The offline audit of chain export files: every chain through every rule, and the zero-sum check.

The files are read with ``conode.exportfile``; a record that cannot even be
decoded ends its chain with an ``encoding`` violation (the rest of the
audit goes on). The rules are ``conode.validation.audit.audit``'s, with the
apps the charter pins judged by the code installed here when it is the very
code pinned (its bundle hashes to the pin); another pinned app's records are
held unjudged, as on a node that does not run it, and the report names it. The
audit also lists trade rings (``conode.apps.exchange.rings``) and the chains
owing an entry (a co-op's grant line owed its monthly re-estimate) as of the
newest record in the files: findings, not violations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.datadir import CommandError
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.chain import Record
from conode.errors import EncodingError, StorageError
from conode.exportfile import ChainFile
from conode.hashes import AgentKey
from conode.validation.audit import AuditReport, AuditViolation, Overdue, audit, overdue
from conode.validation.calendar import date_label
from conode.validation.charter import Charter

if TYPE_CHECKING:  # the exchange's code loads only for an audit: `conode run` never needs it
    from conode.apps.exchange.rings import RingSearch

__all__ = [
    "FileAudit",
    "audit_files",
    "count_records",
    "overdue_json",
    "report_json",
    "rings_json",
]


@dataclass(slots=True)
class FileAudit:
    """An audit report plus what reading the files found."""

    report: AuditReport
    files: int
    read_violations: list[AuditViolation] = field(default_factory=list)
    rings: RingSearch = field(default_factory=lambda: _rings().RingSearch())
    apps_judged: list[str] = field(default_factory=list)
    apps_unjudged: list[str] = field(default_factory=list)
    overdue: list[Overdue] = field(default_factory=list)
    as_of: int | None = None
    """The newest record's time: what ``overdue`` is as of (None: no records)."""

    @property
    def violations(self) -> list[AuditViolation]:
        """Every violation found, reading or auditing, by agent and seq."""
        return sorted(
            [*self.read_violations, *self.report.violations], key=lambda v: (v.agent.raw, v.seq)
        )

    @property
    def valid(self) -> bool:
        """No violation, and the balances sum to zero."""
        return not self.violations and self.report.zero_sum


def count_records(paths: Sequence[Path]) -> int:
    """How many records the files' headers announce (for a progress bar)."""
    total = 0
    for path in paths:
        try:
            with ChainFile(path) as chain_file:
                total += chain_file.header.count
        except (EncodingError, StorageError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
    return total


def audit_files(
    charter: Charter, paths: Sequence[Path], progress: Callable[[int], None] | None = None
) -> FileAudit:
    """Read every export file and audit all their chains together."""
    chains: list[list[Record]] = []
    read_violations: list[AuditViolation] = []
    owners: dict[AgentKey, Path] = {}
    for path in paths:
        author, records, violation = _read(path)
        if author in owners:
            raise CommandError(f"{owners[author]} and {path} both hold the chain of {author}")
        owners[author] = path
        chains.append(records)
        if violation is not None:
            read_violations.append(violation)
    apps, unjudged = audit_apps(charter)
    report = audit(charter, chains, apps, progress=progress)
    rings = _rings().trade_rings(record for chain in chains for record in chain)
    as_of = max((chain[-1].action.timestamp for chain in chains if chain), default=None)
    owing = [] if as_of is None else overdue(report, as_of)
    return FileAudit(
        report, len(paths), read_violations, rings, sorted(apps), unjudged, owing, as_of
    )


def audit_apps(charter: Charter) -> tuple[NodeApps, list[str]]:
    """The apps to judge with: each app the charter pins whose installed bundle hashes to the pin.

    Also the ids of the pinned apps left unjudged (not installed here, or
    another version): their records are held as valid, not checked.
    """
    installed = installed_apps(broken=[])
    running = {}
    unjudged = []
    for pin in charter.params.apps:
        local = installed.get(pin.id)
        if local is not None and local.bundle_hash() == pin.code_hash:
            running[pin.id] = local.load()
        else:
            unjudged.append(pin.id)
    return NodeApps(running), sorted(unjudged)


def _read(path: Path) -> tuple[AgentKey, list[Record], AuditViolation | None]:
    records: list[Record] = []
    try:
        with ChainFile(path) as chain_file:
            author = chain_file.header.author
            try:
                for blob in chain_file:
                    records.append(Record.from_bytes(blob))
            except EncodingError as exc:
                return author, records, AuditViolation(author, len(records), "encoding", str(exc))
    except (EncodingError, StorageError) as exc:
        raise CommandError(f"{path} is not a readable chain export file: {exc}") from exc
    return author, records, None


def rings_json(rings: RingSearch, names: dict[AgentKey, str]) -> dict[str, Any]:
    """Trade rings as JSON: each ring's month, co-ops in buying order, and what each paid the next."""
    return {
        "rings": [
            {
                "month": ring.month,
                "coops": [{"agent": str(c), "name": names.get(c, "?")} for c in ring.coops],
                "amounts": list(ring.amounts),
            }
            for ring in rings.rings
        ],
        "rings_complete": rings.complete,
    }


def report_json(
    report: AuditReport, violations: Sequence[AuditViolation], names: dict[AgentKey, str]
) -> dict[str, Any]:
    """An audit as JSON (amounts in minor units)."""
    return {
        "valid": not violations and report.zero_sum,
        "chains": report.chains,
        "records": report.records,
        "violations": [
            {
                "agent": str(v.agent),
                "name": names.get(v.agent, "?"),
                "seq": v.seq,
                "rule": v.rule,
                "reason": v.reason,
            }
            for v in violations
        ],
        "balances": [
            {"agent": str(agent), "name": names.get(agent, "?"), "balance": balance}
            for agent, balance in sorted(
                report.balances.items(), key=lambda kv: names.get(kv[0], "")
            )
        ],
        "total": report.total,
        "issuance": report.issuance,
        "unmatched": [
            {
                "agent": str(u.agent),
                "name": names.get(u.agent, "?"),
                "seq": u.seq,
                "delta": u.delta,
                "in_flight": u.finding is None,
            }
            for u in report.unmatched
        ],
        "zero_sum": report.zero_sum,
    }


def overdue_json(result: FileAudit, names: dict[AgentKey, str]) -> dict[str, Any]:
    """The chains owing an entry as of the newest record (a co-op's grant line owed its re-estimate)."""
    return {
        "overdue_as_of": None if result.as_of is None else date_label(result.as_of),
        "overdue": [
            {
                "agent": str(o.agent),
                "name": names.get(o.agent, "?"),
                "entry_type": o.entry_type,
                "due": date_label(o.due),
            }
            for o in result.overdue
        ],
    }


def _rings() -> Any:
    """``conode.apps.exchange.rings``, imported at its first use (2.4 MB with the exchange)."""
    from conode.apps.exchange import rings

    return rings

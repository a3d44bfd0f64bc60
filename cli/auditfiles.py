"""The offline audit of chain export files: every chain through every rule, and the zero-sum check.

The files are read with ``conode.exportfile``; a record that cannot even be
decoded ends its chain with an ``encoding`` violation (the rest of the
audit goes on). The rules are ``conode.validation.audit.audit``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.datadir import CommandError
from conode.chain import Record
from conode.errors import EncodingError, StorageError
from conode.exportfile import ChainFile
from conode.hashes import AgentKey
from conode.validation.audit import AuditReport, AuditViolation, audit
from conode.validation.charter import Charter

__all__ = ["FileAudit", "audit_files", "count_records", "report_json"]


@dataclass(slots=True)
class FileAudit:
    """An audit report plus what reading the files found."""

    report: AuditReport
    files: int
    read_violations: list[AuditViolation] = field(default_factory=list)

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
    report = audit(charter, chains, progress=progress)
    return FileAudit(report, len(paths), read_violations)


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
        "zero_sum": report.zero_sum,
    }

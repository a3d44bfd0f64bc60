"""Never author what the network refuses: entries and imports on a networked data dir, judged first.

A data dir that holds a charter belongs to a network: every record committed
to its store must pass the rules its peers apply, or they warrant its author
(a ``note`` entry nobody's app knows is ``unknown-app`` on every peer). So
``conode chain add`` and ``conode chain import`` there go through
``conode.offline.commit_offline`` (the activity fold, then the engine, with
the apps the charter pins judged by their installed code) and are refused
with the rule's name and reason. Offline: the node must be stopped, as for
the geneses. A data dir with no charter keeps its standalone chains.
"""

from __future__ import annotations

from pathlib import Path

from cli import netcmds, ops
from cli.auditfiles import audit_apps
from cli.datadir import CommandError, DataDir
from cli.ops import AgentRef
from conode.chain import Record
from conode.chain.verify import Violation
from conode.encoding import Value
from conode.errors import EncodingError, StorageError, ValidationError
from conode.exportfile import ChainFile
from conode.hashes import AgentKey
from conode.keyfile import PassphraseSource
from conode.offline import commit_offline
from conode.validation.audit import audit_chain

__all__ = ["add_entry", "import_chain", "judge_chain"]


def add_entry(
    data: DataDir, agent: str, entry_type: str, entry: Value, source: PassphraseSource
) -> tuple[AgentRef, Record]:
    """Commit one entry on a networked agent's chain if the network's rules accept it."""
    charter = data.charter()
    apps, unjudged = audit_apps(charter)
    app_id = entry_type.partition("/")[0]
    if app_id in unjudged:
        raise CommandError(
            f"{entry_type}: the network pins app {app_id!r}, but its pinned code is not installed "
            "here, so the entry cannot be judged before it is committed"
        )
    with netcmds.stopped(data, "conode chain add"), data.open_node_store() as store:
        ref = ops.resolve_agent(data, agent)
        signer = ops.load_signer(data, ref, source)

        def judged(record: Record) -> None:
            commit_offline(store, charter, [record], apps)

        try:
            record = ops.commit_entry(
                store, signer, entry_type=entry_type, entry=entry, timestamp=ops.now_us(),
                commit=judged,
            )  # fmt: skip
        except ValidationError as exc:
            raise CommandError(_refused(exc, ref.label())) from exc
    return ref, record


def import_chain(data: DataDir, path: Path) -> tuple[AgentKey, int, int, int | None]:
    """Judge and store the records of an export file that a networked store does not hold yet:
    (author, records in the file, records added, head seq).

    Each record is judged in order, the ones before it its context; at the first refusal the
    command fails naming it, and the records before it stay (each was judged valid).
    """
    charter = data.charter()
    apps, _unjudged = audit_apps(charter)
    try:
        with ChainFile(path) as chain_file:
            author = chain_file.header.author
            records = [Record.from_bytes(blob) for blob in chain_file]
    except (EncodingError, StorageError) as exc:
        raise CommandError(f"{path} is not a readable chain export file: {exc}") from exc
    with netcmds.stopped(data, "conode chain import"), data.open_node_store() as store:
        added = 0
        for position, record in enumerate(records):
            if store.get(record.hash) is not None:
                continue
            try:
                commit_offline(store, charter, [record], apps)
            except ValidationError as exc:
                raise CommandError(
                    f"cannot import {author.short()}: record {position} (seq "
                    f"{record.action.seq}): {exc.rule}: {exc.reason} (the {added} new records "
                    "before it were judged valid and imported)"
                ) from exc
            added += 1
        head = store.head(author)
    return author, len(records), added, None if head is None else head.seq


def judge_chain(data: DataDir, verdict: ops.Verdict) -> ops.Verdict:
    """A chain that keeps every chain rule, judged again by the network's rules (``audit_chain``:
    the activity fold, then every record by the engine, the pinned apps by their installed code):
    the first violation, as ``chain verify`` reports it."""
    charter = data.charter()
    apps, _unjudged = audit_apps(charter)
    with data.open_node_store() as store:
        report = audit_chain(charter, verdict.agent, store, apps)
        positions = {r.action.seq: i for i, r in enumerate(store.records(verdict.agent))}
    # a record whose dependencies are not held here is not judged (a peer's chain not fetched)
    broken = [v for v in report.violations if v.rule != "missing"]
    if not broken:
        return verdict
    first = min(broken, key=lambda v: v.seq)
    violation = Violation(first.rule, first.reason, positions.get(first.seq), first.seq)
    return ops.Verdict(verdict.agent, verdict.records, violation)


def _refused(exc: ValidationError, who: str) -> str:
    text = f"refused, nothing committed: {exc.rule}: {exc.reason}"
    if exc.rule == "unknown-app":
        text += (
            f". Every peer of the network would refuse it and warrant {who}: `chain add` on a "
            "network writes only entries of an app the network runs (`conode call APP FN` makes "
            "them through the app)"
        )
    return text

"""A consistent copy of a store file while a node writes it: SQLite's online backup API.

A shell over ``sqlite3`` (no ``sqlite3`` binary needed). ``snapshot`` opens
its own connection to the store, starts one read transaction and copies
every page in a single step (``Connection.backup`` with ``pages=-1``): in WAL
mode a reader never blocks the node's writes, and what it reads is the
store as of one commit, so the copy is never torn, whatever the node does
meanwhile. The copy is checked (``PRAGMA quick_check``, and that it is a
conode store) before it is reported done; ``check_snapshot`` does the same
for a copy read back from a backup file. Errors are ``StorageError``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from conode.errors import StorageError
from conode.store.migrations import APPLICATION_ID, MIGRATIONS
from conode.store.storefile import BUSY_TIMEOUT_MS

__all__ = ["SnapshotInfo", "check_snapshot", "snapshot"]


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What a store copy holds: its size, schema version and number of records."""

    bytes: int
    schema_version: int
    records: int


def snapshot(store: Path, out: Path) -> SnapshotInfo:
    """Copy the store file ``store`` (in use or not) to the new file ``out`` (mode 0600), checked.

    The copy is one self-contained SQLite file (its WAL folded in). ``out``
    must not exist; it is removed again if anything fails.
    """
    if not store.is_file():
        raise StorageError(f"no store file {store}")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror or exc}") from exc
    os.close(fd)
    try:
        source = sqlite3.connect(
            f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            target = sqlite3.connect(out)
            try:
                source.backup(target, pages=-1)
                target.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
            finally:
                target.close()
        finally:
            source.close()
        return check_snapshot(out)
    except sqlite3.Error as exc:
        with contextlib.suppress(OSError):
            out.unlink()
        raise StorageError(f"cannot copy the store {store}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        raise


def check_snapshot(path: Path) -> SnapshotInfo:
    """What the store copy at ``path`` holds; ``StorageError`` if it is damaged or not a store."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise StorageError(f"the store copy {path} is damaged: {'; '.join(problems[:3])}")
            application = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if application != APPLICATION_ID:
                raise StorageError(f"{path} is not a conode store")
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"the store copy {path} is from a newer conode (schema v{version}): "
                    "upgrade conode before restoring it"
                )
            records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"the store copy {path} is not a readable SQLite file: {exc}") from exc
    return SnapshotInfo(path.stat().st_size, version, records)

"""One SQLite savepoint as a context manager: everything inside or nothing, nested inside whatever
transaction the connection is in; an SQLite failure becomes one ``StorageError`` line."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from conode.errors import StorageError

__all__ = ["savepoint"]


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str, doing: str) -> Iterator[sqlite3.Connection]:
    """Run the block inside savepoint ``name`` of ``conn``: released if it ends, rolled back to
    (and released) if it raises; ``StorageError("{doing}: ...")`` for an SQLite error."""
    try:
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except Exception:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
    except sqlite3.Error as exc:
        raise StorageError(f"{doing}: {exc}") from exc

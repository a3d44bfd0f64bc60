"""``StoreFile``: one SQLite file of the node's store, opened, guarded and closed.

What every part of the store (``Store``'s chains, ``NodeStore``'s node state)
shares: the file opened in WAL mode with ``synchronous=FULL`` and migrated to
the current schema; every ``sqlite3`` error translated into one
``StorageError`` line; write transactions; and damage latched: a record read
back that does not match its key, or SQLite's own report of a damaged file,
is a ``ChainError`` whose line says what to do, and no write is taken after
it. Not thread-safe: one thread at a time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Final, Self

from conode.chain import Record
from conode.crypto import SIGNATURE_SIZE
from conode.errors import ChainError, StorageError
from conode.hashes import ActionHash, HashKind, blake2b_256
from conode.store import migrations, stored

__all__ = ["BUSY_TIMEOUT_MS", "CORRUPT_ADVICE", "StoreFile", "is_damage"]

BUSY_TIMEOUT_MS: Final = 5_000
"""How long a statement waits for another process's lock before failing."""

CORRUPT_ADVICE: Final = (
    "stop the node, then restore the store from a backup, or move it aside and recover "
    "each hosted agent from its peers (conode recover --key FILE)"
)
"""What a corrupt store's one-line error tells the operator to do."""


class StoreFile:
    """One open store file and its guards; open with ``open`` (of ``Store`` or ``NodeStore``)."""

    __slots__ = ("_conn", "_corrupt", "_path", "_version")

    def __init__(self, conn: sqlite3.Connection, path: str, version: int) -> None:
        """Wrap an open, migrated connection: use ``open`` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._version = version
        self._corrupt: str | None = None  # set at the first damage found: no write after it

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durable: bool = True) -> Self:
        """Create or open the store file at ``path`` (WAL mode), migrated to the current schema.

        ``durable=False`` skips every fsync (``synchronous=OFF``): a crash may lose
        the last appends. Only for simulations (``bench/scale.py``) whose files
        live in memory anyway; a node always opens its store durable.
        """
        where = os.fspath(path)
        try:
            conn = sqlite3.connect(
                where,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit: we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # one thread at a time, not necessarily the same one
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the store {where}: {exc}") from exc
        opened = False
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"{where}: SQLite refused WAL mode (journal mode {mode})")
            conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = OFF")
            conn.execute("PRAGMA fullfsync = ON")  # macOS: fsync alone may stay in the disk cache
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = migrations.migrate(conn, where)
            opened = True
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StorageError(
                    f"{where} is not a conode store (not an SQLite database)"
                ) from exc
            if is_damage(exc):
                raise ChainError(f"the store {where} is corrupt ({exc}): {CORRUPT_ADVICE}") from exc
            raise StorageError(f"cannot open the store {where}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the store {where}: {exc}") from exc
        finally:
            if not opened:
                conn.close()
        return cls(conn, where, version)

    def close(self) -> None:
        """Close the file; idempotent. Any later call is a ``ValueError``."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot close the store {self._path}: {exc}") from exc

    def __enter__(self) -> Self:
        """The store itself; it is closed when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"schema v{self._version}"
        return f"Store({self._path!r}, {state})"

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (``PRAGMA user_version``, after migrating)."""
        return self._version

    @property
    def path(self) -> str:
        """The store file's path."""
        return self._path

    # -- plumbing ------------------------------------------------------------------------

    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"the store {self._path} is closed")
        return self._conn

    def _damaged(self, what: str) -> ChainError:
        """The error to raise for damage found in the file; no write is taken after it."""
        message = f"the store {self._path} is corrupt ({what}): {CORRUPT_ADVICE}"
        if self._corrupt is None:
            self._corrupt = message
        return ChainError(message)

    def _check_parts(self, key: object, action: object, signature: object, entry: object) -> None:
        """``ChainError`` unless the stored parts are a record that matches its key.

        Its action bytes hash to ``key``, and its entry hashes to the entry hash
        its action bytes hold (found in them as CBOR bytes, without decoding).
        """
        if not (
            type(key) is bytes
            and type(action) is bytes
            and type(signature) is bytes
            and len(signature) == SIGNATURE_SIZE
            and (entry is None or type(entry) is bytes)
        ):
            raise self._damaged("a stored record's columns are not a record's parts")
        if blake2b_256(HashKind.ACTION, action) != key:
            raise self._damaged(f"record {ActionHash(key).short()} does not hash to its key")
        if (
            entry is not None
            and stored.ENTRY_HASH_HEAD + blake2b_256(HashKind.ENTRY, entry) not in action
        ):
            raise self._damaged(f"record {ActionHash(key).short()} holds another entry")

    def _read_blob(self, key: object, action: object, signature: object, entry: object) -> bytes:
        """A stored record's portable bytes, checked against its key."""
        self._check_parts(key, action, signature, entry)
        return stored.portable(action, signature, entry)

    def _read_record(self, key: object, action: object, signature: object, entry: object) -> Record:
        """A stored record, checked against its key."""
        self._check_parts(key, action, signature, entry)
        return stored.decode(action, signature, entry)

    @contextlib.contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        """Translate sqlite3 errors into one ``StorageError`` line (damage: ``ChainError``)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise self._damaged(str(exc)) from exc
            raise StorageError(f"cannot {doing} the store {self._path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot {doing} the store {self._path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed if the block ends normally, else rolled back.

        None once damage was found in the file (``_damaged``): the error again.
        """
        if self._corrupt is not None:
            raise ChainError(self._corrupt)
        conn = self._open_conn()
        with self._mapped(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _stream(
        self, sql: str, params: tuple[object, ...]
    ) -> Generator[tuple[object, ...], None, None]:
        """Rows of ``sql`` one at a time from a cursor, with sqlite3 errors translated."""
        with self._mapped("read records from"):
            cursor = self._open_conn().execute(sql, params)
            try:
                while (row := cursor.fetchone()) is not None:
                    yield row
            finally:
                cursor.close()


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite found the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB mid-file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc)

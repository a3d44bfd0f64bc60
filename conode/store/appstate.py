"""``AppState``: one app's own small key-value state in the node's SQLite file (a shell for ``AppAPI.state``).

What an app keeps for itself on this node and nowhere else: never signed,
never sent to a peer, not part of any chain (the exchange keeps its members'
inboxes of notices here, with their read marks). Keys are the app's own text;
values are canonical CBOR (``conode.encoding``'s data model: text-keyed maps,
lists, integers, text, bytes, booleans, null). Rows live in the ``app_state``
table (schema v6), keyed by (app id, key), so apps never see each other's.

Each call is atomic on its own and runs in a savepoint, so it also nests in
a caller's transaction. Every ``sqlite3`` error becomes a ``StorageError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

from conode import encoding
from conode.errors import EncodingError, StorageError
from conode.store.savepoint import savepoint

__all__ = ["MAX_KEY", "MAX_VALUE", "AppState"]

MAX_KEY: Final = 512
"""The longest key, in characters: a key names a thing (hashes and a prefix), it holds no data."""
MAX_VALUE: Final = 64 << 10
"""The largest value, encoded: app state is small (a notice, a mark), not a second store."""


class AppState:
    """The key-value state of app ``app_id`` in one SQLite connection (the node's store file)."""

    __slots__ = ("_app", "_conn")

    def __init__(self, conn: sqlite3.Connection, app_id: str) -> None:
        self._conn = conn
        self._app = app_id

    def _savepoint(self, doing: str) -> AbstractContextManager[sqlite3.Connection]:
        return savepoint(self._conn, "app_state", f"{doing} of app {self._app}")

    def get(self, key: str) -> Any:
        """The value kept under ``key``, or None."""
        try:
            row = self._conn.execute(
                "SELECT value FROM app_state WHERE app = ? AND key = ?", (self._app, _key(key))
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"reading the state of app {self._app}: {exc}") from exc
        return None if row is None else self._decode(key, row[0])

    def add(self, key: str, value: Any) -> bool:
        """Keep ``value`` under ``key`` only if nothing is kept there yet; True if it was new.

        What makes a write idempotent: doing it again, after a restart or for
        a record seen twice, changes nothing and says so.
        """
        blob = _value(value)
        with self._savepoint("adding to the state") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO app_state (app, key, value) VALUES (?, ?, ?)",
                (self._app, _key(key), blob),
            )
            return cursor.rowcount == 1

    def put(self, values: Mapping[str, Any]) -> None:
        """Keep each value under its key (replacing what was there), all in one write."""
        rows = [(self._app, _key(k), _value(v)) for k, v in values.items()]
        with self._savepoint("writing the state") as conn:
            conn.executemany(
                "INSERT INTO app_state (app, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """Every (key, value) whose key starts with ``prefix``, in key order (by code point)."""
        sql = "SELECT key, value FROM app_state WHERE app = ? AND key >= ?"
        params: tuple[str, ...] = (self._app, prefix)
        above = _above(prefix)
        if above is not None:
            sql += " AND key < ?"
            params += (above,)
        try:
            rows = self._conn.execute(sql + " ORDER BY key", params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"reading the state of app {self._app}: {exc}") from exc
        return [(key, self._decode(key, blob)) for key, blob in rows if key.startswith(prefix)]

    def _decode(self, key: str, blob: bytes) -> Any:
        try:
            return encoding.decode(bytes(blob))
        except EncodingError as exc:
            raise StorageError(f"the state of app {self._app} under {key!r}: {exc}") from exc


def _key(key: str) -> str:
    if type(key) is not str or not 1 <= len(key) <= MAX_KEY:
        raise ValueError(f"an app state key is text of 1 to {MAX_KEY} characters")
    return key


def _value(value: Any) -> bytes:
    blob = encoding.encode(value)  # TypeError/ValueError outside the data model
    if len(blob) > MAX_VALUE:
        raise ValueError(f"an app state value is at most {MAX_VALUE} bytes encoded")
    return blob


def _above(prefix: str) -> str | None:
    """The least text greater than every text starting with ``prefix`` (None: no bound)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    if not prefix:
        return None
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not text SQLite can hold
        following = 0xE000
    return prefix[:-1] + chr(following)

"""``TextIndex``: full-text search over held records with SQLite FTS5 (a shell for ``AppAPI.search``).

How it works:

- Two tables, created if missing: ``text_docs`` (one row per indexed record:
  its action hash and entry type) and ``text_fts``, an FTS5 table whose rowid
  is the ``text_docs`` row id, holding the record's searchable text
  (``App.search_text``). The ``unicode61`` tokenizer folds case and
  diacritics, so ``cafe`` finds ``Café``.
- What people type is never handed to FTS5 as a query: it is cut into words
  and each word is quoted (``"word"*``: the word or a word it begins), all
  words required. ``AND``, ``NEAR``, ``"``, ``*``, ``:`` and ``-`` are plain
  text here, so no input can be a syntax error or reach another column.
- Results are in bm25 order (best first), ties by row id (oldest first).
- ``add`` and ``remove`` each run in a savepoint, so they are atomic on
  their own and nest inside a caller's transaction (the node may index a
  record in the same transaction that stores it).

Every ``sqlite3`` error is translated into ``StorageError``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Final

from conode.errors import EncodingError, StorageError
from conode.hashes import ActionHash
from conode.store.savepoint import savepoint

__all__ = ["MAX_QUERY_WORDS", "TextIndex", "fts_query"]

MAX_QUERY_WORDS: Final = 16
"""Words of a query beyond this are ignored (a query is a few words, not a document)."""

_WORD: Final = re.compile(r"\w+")
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS text_docs (
        id INTEGER PRIMARY KEY,
        record BLOB NOT NULL UNIQUE,
        entry_type TEXT NOT NULL
    )""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(
        text, tokenize = 'unicode61 remove_diacritics 2'
    )""",
)
_SEARCH: Final = """
    SELECT d.record FROM text_fts JOIN text_docs AS d ON d.id = text_fts.rowid
    WHERE text_fts MATCH ? AND d.entry_type IN ({types})
    ORDER BY bm25(text_fts), d.id LIMIT ?
"""


def fts_query(text: str) -> str | None:
    """An FTS5 query that finds ``text``'s words (each quoted, as a prefix); None if it has none."""
    words = _WORD.findall(text)[:MAX_QUERY_WORDS]
    if not words:
        return None
    # Inside double quotes FTS5 reads everything as text; a quote is written twice. \w+ never
    # holds one, but the escape keeps this safe even if the word pattern changes.
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


class TextIndex:
    """The searchable text of records, by action hash, in the node's SQLite file (or any connection).

    Invariant: every ``text_docs`` row has exactly one ``text_fts`` row with its id.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        with self._savepoint("creating the text index"):
            for statement in _SCHEMA:
                conn.execute(statement)

    def _savepoint(self, doing: str) -> AbstractContextManager[sqlite3.Connection]:
        return savepoint(self._conn, "text_index", doing)

    def add(self, record_hash: ActionHash, entry_type: str, text: str) -> None:
        """Index ``text`` for the record (replacing what it had: adding twice is harmless)."""
        key = record_hash.to_bytes()
        with self._savepoint("indexing a record's text") as conn:
            _delete(conn, key)
            row = conn.execute(
                "INSERT INTO text_docs (record, entry_type) VALUES (?, ?)", (key, entry_type)
            )
            conn.execute("INSERT INTO text_fts (rowid, text) VALUES (?, ?)", (row.lastrowid, text))

    def remove(self, record_hash: ActionHash) -> None:
        """Forget the record's text (nothing happens if it has none)."""
        with self._savepoint("removing a record's text") as conn:
            _delete(conn, record_hash.to_bytes())

    def search(self, query: str, entry_types: Collection[str], limit: int = 50) -> list[ActionHash]:
        """Records of ``entry_types`` whose text holds every word of ``query``, best first.

        ``query`` is what a person typed (see the module docstring); no words,
        no types or ``limit`` < 1 give no records.
        """
        match = fts_query(query)
        types = sorted(set(entry_types))
        if match is None or not types or limit < 1:
            return []
        sql = _SEARCH.format(types=", ".join("?" * len(types)))
        try:
            rows = self._conn.execute(sql, (match, *types, limit)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"searching the text index: {exc}") from exc
        try:
            return [ActionHash.from_bytes(row[0]) for row in rows]
        except EncodingError as exc:
            raise StorageError(f"the text index holds a bad record hash: {exc}") from exc

    def __len__(self) -> int:
        """How many records are indexed."""
        try:
            return int(self._conn.execute("SELECT count(*) FROM text_docs").fetchone()[0])
        except sqlite3.Error as exc:
            raise StorageError(f"counting the text index: {exc}") from exc


def _delete(conn: sqlite3.Connection, key: bytes) -> None:
    row = conn.execute("SELECT id FROM text_docs WHERE record = ?", (key,)).fetchone()
    if row is not None:
        conn.execute("DELETE FROM text_fts WHERE rowid = ?", (row[0],))
        conn.execute("DELETE FROM text_docs WHERE id = ?", (row[0],))

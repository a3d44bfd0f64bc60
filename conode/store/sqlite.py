"""``Store``: the node's source chains in one SQLite file (a shell around ``conode.chain``).

How it works:

- One file per node, in WAL mode with ``synchronous=FULL``: when ``append``
  returns, its transaction is on disk, and a crash at any point leaves every
  chain as it was after some whole number of appends.
- A record is stored as its three parts (action bytes, signature, entry
  bytes); the other columns are copied from the action for indexes and are
  checked against it by ``verify``.
- The head of every chain is kept in the ``chains`` table and moved in the
  same transaction as the records, so opening the store never replays a
  chain, and ``append`` checks each record with ``check_append`` against it.
- Link records are also indexed by the base their entry names (``links``
  table, filled in the same transaction as the records), so an authority of
  a base lists what it holds there with one range read (``link_blobs``).
- Every record's DHT ops (``conode.chain.ops``: its author's location, a
  link's base's) are indexed with per-sector sums in the same transaction
  (``conode.store.heldops``), so range reconciliation reads fingerprints of
  what is held without listing it (``held_summary``, ``held_keys``).
- Every ``sqlite3`` error is translated into ``StorageError`` here; a record
  that cannot be decoded from its stored bytes is a ``ChainError``.
- The file is not trusted blindly. ``check_integrity`` (the daemon runs it at
  start) runs SQLite's ``quick_check`` and reads every kept chain head back
  from its record; and every record read for a peer or a view is checked
  against its key: its action bytes must hash to the stored action hash and
  its entry must hash to the entry hash its action names. A mismatch is a
  ``ChainError`` whose one line says what to do (restore from a backup, or
  recover the agents from peers), the record is not returned, and the store
  refuses every write after it. (A record's signature is covered by no hash:
  a damaged one is refused by whoever checks it, the peers included.)

Not thread-safe: a ``Store`` must be used by one thread at a time (the node
keeps it on one thread). Reading a chain with ``records``/``record_blobs``
while appending to the same chain gives no promise about whether the new
records are seen.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sqlite3
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Final, Self

from conode import encoding
from conode.chain import (
    ActionKind,
    ChainHead,
    Record,
    Violation,
    check_append,
    link_base,
    verify_encoded_chain,
)
from conode.chain.ops import location, op_locations
from conode.chain.records import Action
from conode.crypto import SIGNATURE_SIZE
from conode.errors import ChainError, EncodingError, StorageError
from conode.hashes import ActionHash, AgentKey, HashKind, TypedHash, blake2b_256
from conode.store import migrations
from conode.store.heldops import Bound, HeldOps
from conode.validation.activity import Activity
from conode.validation.entries import PAYMENT, payer_position

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CORRUPT_ADVICE",
    "Imported",
    "Loose",
    "Store",
]

BUSY_TIMEOUT_MS: Final = 5_000
"""How long a statement waits for another process's lock before failing."""

_IMPORT_CHUNK: Final = 256
_LINKS_SCHEMA: Final = 5
"""The schema version that added the ``links`` index."""
_POSITIONS_SCHEMA: Final = 8
"""The schema version that added the ``payer_positions`` index."""
_HELD_OPS_SCHEMA: Final = 11
"""The schema version that added the ``held_ops`` index."""
_LOOSE_SCHEMA: Final = 12
"""The schema version that added ``loose_records``."""

# Python's sqlite3 caches prepared statements by their text, so these constants
# are prepared once per connection and reused.
_SELECT_HEAD: Final = "SELECT seq, hash, timestamp, closed FROM chains WHERE author = ?"
_UPSERT_HEAD: Final = """
    INSERT INTO chains (author, seq, hash, timestamp, closed) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (author) DO UPDATE SET
        seq = excluded.seq, hash = excluded.hash,
        timestamp = excluded.timestamp, closed = excluded.closed
"""
_INSERT_RECORD: Final = """
    INSERT INTO records (author, seq, hash, kind, timestamp, entry_type, action, signature, entry)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_AUTHORS: Final = "SELECT author FROM chains ORDER BY author"
_SELECT_PARTS: Final = """
    SELECT hash, action, signature, entry FROM records
    WHERE author = ? AND seq >= ? ORDER BY seq
"""
_SELECT_ROWS: Final = """
    SELECT seq, hash, kind, timestamp, entry_type, action, signature, entry FROM records
    WHERE author = ? ORDER BY seq
"""
_SELECT_BY_HASH: Final = "SELECT hash, action, signature, entry FROM records WHERE hash = ?"
_SELECT_HASH_AT: Final = "SELECT hash FROM records WHERE author = ? AND seq = ?"
_COUNT: Final = "SELECT count(*) FROM records WHERE author = ?"
_SET_ACTIVITY: Final = "UPDATE chains SET activity = ?, balance = ? WHERE author = ?"
_SELECT_ACTIVITY: Final = "SELECT activity FROM chains WHERE author = ?"
_UPSERT_SESSION: Final = """
    INSERT INTO sessions (id, agent, record) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET agent = excluded.agent, record = excluded.record
"""
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE id = ?"
_QUEUE_PUBLISHING: Final = "INSERT OR IGNORE INTO publishing (record, created_at) VALUES (?, ?)"
_INSERT_LINK: Final = "INSERT OR IGNORE INTO links (base, entry_type, record) VALUES (?, ?, ?)"
_INSERT_POSITION: Final = (
    "INSERT OR IGNORE INTO payer_positions (payer, seq, record) VALUES (?, ?, ?)"
)
_SELECT_NAMING: Final = """
    SELECT r.action, r.signature, r.entry FROM payer_positions AS p
    JOIN records AS r ON r.hash = p.record
    WHERE p.payer = ? AND p.seq = ?
"""
_SELECT_LINKS: Final = """
    SELECT l.record, r.action, r.signature, r.entry FROM links AS l
    JOIN {table} AS r ON r.hash = l.record
    WHERE l.base = ? AND l.record > ? {type_filter}
    ORDER BY l.record LIMIT ?
"""
_SELECT_LINKS_ANY: Final = _SELECT_LINKS.format(table="records", type_filter="")
_SELECT_LINKS_OF_TYPE: Final = _SELECT_LINKS.format(
    table="records", type_filter="AND l.entry_type = ?"
)
_SELECT_LOOSE_LINKS_ANY: Final = _SELECT_LINKS.format(table="loose_records", type_filter="")
_SELECT_LOOSE_LINKS_OF_TYPE: Final = _SELECT_LINKS.format(
    table="loose_records", type_filter="AND l.entry_type = ?"
)
_IN_CHAINS: Final = "SELECT 1 FROM records WHERE hash = ?"
_KEEP_LOOSE: Final = """
    INSERT INTO loose_records (hash, author, seq, why, kept_at, action, signature, entry)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (hash) DO UPDATE SET
        why = max(why, excluded.why), kept_at = max(kept_at, excluded.kept_at)
"""
_SELECT_LOOSE: Final = "SELECT hash, action, signature, entry FROM loose_records WHERE hash = ?"
_DELETE_LOOSE: Final = "DELETE FROM loose_records WHERE hash = ?"


class Loose(IntEnum):
    """Why a record is held by hash outside any held chain; a record kept for several keeps the strongest."""

    DEPENDENCY = 1
    """Fetched to judge another record (a counterparty's previous credit, a genesis): evictable."""
    LINK = 2
    """A link held at its base, whose location is on this node's arc: indexed by its base."""
    GLOBAL = 3
    """Data every judge needs (the governance log): never evicted."""

_SELECT_KEPT_HEADS: Final = "SELECT author, seq, hash FROM chains"
_SELECT_RECORD_AT: Final = (
    "SELECT hash, action, signature, entry FROM records WHERE author = ? AND seq = ?"
)
_ENTRY_HASH_HEAD: Final = b"\x58\x21" + bytes((HashKind.ENTRY,))
"""CBOR's head of a 33-byte string and the entry kind byte: how an action's bytes hold its
entry hash, before the 32 bytes of the digest."""
CORRUPT_ADVICE: Final = (
    "stop the node, then restore the store from a backup, or move it aside and recover "
    "each hosted agent from its peers (conode recover --key FILE)"
)
"""What a corrupt store's one-line error tells the operator to do."""

_Row = tuple[bytes, int, bytes, int, int, str | None, bytes, bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Imported:
    """What ``Store.import_chain`` did: the chain's head as now stored, and how many were new."""

    head: ChainHead
    added: int


class Store:
    """The node's SQLite store of source chains; open with ``Store.open``; one thread at a time."""

    __slots__ = ("_conn", "_corrupt", "_held", "_path", "_version")

    def __init__(self, conn: sqlite3.Connection, path: str, version: int) -> None:
        """Wrap an open, migrated connection: use ``Store.open`` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._version = version
        self._corrupt: str | None = None  # set at the first damage found: no write after it
        self._held = HeldOps(conn)  # one per connection: it keeps sector totals between reads

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
            if _is_damage(exc):
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

    def check_integrity(self) -> None:
        """``ChainError`` naming the damage and what to do, unless the file looks whole.

        SQLite's ``quick_check`` (every page and index entry well formed; time
        linear in the file), then every kept chain head read back: a stored
        record at that seq, with that hash, whose bytes are the record's.
        """
        conn = self._open_conn()
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                problems = [
                    line.strip()
                    for (text,) in rows
                    for line in str(text).splitlines()
                    if line.strip() and not line.startswith("***")
                ]
                more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
                raise self._damaged(f"SQLite's quick check: {problems[0]}{more}")
            for author, seq, kept in conn.execute(_SELECT_KEPT_HEADS).fetchall():
                row = conn.execute(_SELECT_RECORD_AT, (author, seq)).fetchone()
                if row is None or row[0] != kept:
                    who = AgentKey(author).short() if type(author) is bytes else "?"
                    raise self._damaged(f"the kept head of {who} is not its stored record")
                self._read_blob(*row)
            # the check read every page through the cache: a node at rest need not keep them
            conn.execute("PRAGMA shrink_memory")
        except sqlite3.DatabaseError as exc:
            raise self._damaged(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot check the store {self._path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (``PRAGMA user_version``, after migrating)."""
        return self._version

    @property
    def _indexes_links(self) -> bool:
        # a file made at an older schema on purpose (tests of migrations write one) has no
        # links table; migrating it to v5 fills the table from the records it holds
        return self._version >= _LINKS_SCHEMA

    @property
    def _indexes_ops(self) -> bool:
        return self._version >= _HELD_OPS_SCHEMA

    @property
    def _holds_loose(self) -> bool:
        return self._version >= _LOOSE_SCHEMA

    @property
    def path(self) -> str:
        """The store file's path."""
        return self._path

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        records: Sequence[Record],
        *,
        activities: Mapping[AgentKey, Activity] | None = None,
        sessions: Mapping[bytes, tuple[AgentKey, bytes] | None] | None = None,
        publish: bool = False,
    ) -> None:
        """Append ``records`` (each author's in seq order) atomically and durably.

        Each record is checked with ``check_append`` against its chain's current
        head; on the first violation nothing is written and ``ChainError``
        names the record and the broken rule. In the same transaction the
        credit rules' state of each chain in ``activities`` is kept, and each
        countersigning session in ``sessions`` is saved (agent, record bytes)
        or, for None, forgotten: a commit and its session record are one write.
        With ``publish`` the records also join the publishing queue in that
        write, so a record authored here is never stored without being queued.
        """
        if not records and not sessions:
            return
        with self._transaction("append to") as conn:
            heads: dict[AgentKey, ChainHead | None] = {}
            rows: list[_Row] = []
            for given in records:
                record = _portable_form(given)
                author = record.action.author
                head = heads[author] if author in heads else self._read_head(conn, author)
                violation = check_append(head, record)
                if violation is not None:
                    raise ChainError(
                        f"refused {author.short()} seq {record.action.seq}: {violation}"
                    )
                heads[author] = ChainHead.after(record)
                rows.append(_row(record))
            conn.executemany(_INSERT_RECORD, rows)
            if self._indexes_links:
                conn.executemany(_INSERT_LINK, _link_rows(records))
            if self._version >= _POSITIONS_SCHEMA:
                conn.executemany(_INSERT_POSITION, _position_rows(records))
            if self._indexes_ops:
                self._held.add(_ops(records))
            if self._holds_loose:  # a chain that holds a record holds it instead of the loose copy
                conn.executemany(_DELETE_LOOSE, [(r.hash.raw,) for r in records])
            conn.executemany(
                _UPSERT_HEAD, [_head_row(head) for head in heads.values() if head is not None]
            )
            for author, activity in (activities or {}).items():
                if activity.head != heads.get(author, activity.head):
                    raise ValueError(
                        "an activity state must be the state after the appended records"
                    )
                conn.execute(_SET_ACTIVITY, (activity.to_bytes(), activity.balance, author.raw))
            if publish:
                conn.executemany(
                    _QUEUE_PUBLISHING, [(r.hash.raw, r.action.timestamp) for r in records]
                )
            for session_id, saved in (sessions or {}).items():
                if saved is None:
                    conn.execute(_DELETE_SESSION, (session_id,))
                else:
                    conn.execute(_UPSERT_SESSION, (session_id, saved[0].raw, saved[1]))

    def activity(self, author: AgentKey) -> Activity:
        """The credit rules' kept state of ``author``'s chain (``Activity()`` if none is held)."""
        with self._mapped("read the activity of a chain in"):
            conn = self._open_conn()
            head = self._read_head(conn, author)
            row = conn.execute(_SELECT_ACTIVITY, (author.raw,)).fetchone()
        if head is None:
            return Activity()
        if row is None or row[0] is None:
            raise StorageError(f"the chain of {author.short()} has no kept activity state")
        return Activity.from_bytes(row[0], head)

    def import_chain(self, blobs: Iterable[bytes]) -> Imported:
        """Store a whole chain (portable record bytes from genesis) held for audit.

        The chain is decoded and verified as it streams in; any violation raises
        ``ChainError`` naming it, and nothing is written. Records already held
        (same action hash at the same seq) are skipped, so importing a chain
        again is a no-op; a record that differs from the held one is a fork
        and is refused.
        """
        with self._transaction("import into") as conn:
            head: ChainHead | None = None
            held: ChainHead | None = None
            added = 0
            pending: list[_Row] = []
            links: list[tuple[bytes, str, bytes]] = []
            positions: list[tuple[bytes, int, bytes]] = []
            ops: list[tuple[int, bytes]] = []
            for position, blob in enumerate(blobs):
                try:
                    record = Record.from_bytes(blob)
                except EncodingError as exc:
                    raise ChainError(f"cannot import: record {position}: format: {exc}") from exc
                author, seq = record.action.author, record.action.seq
                violation = check_append(head, record)
                if violation is not None:
                    raise ChainError(
                        f"cannot import {author.short()}: record {position} (seq {seq}): "
                        f"{violation}"
                    )
                if head is None:
                    held = self._read_head(conn, author)
                if held is not None and seq <= held.seq:
                    stored = conn.execute(_SELECT_HASH_AT, (author.raw, seq)).fetchone()
                    if stored is None or stored[0] != record.hash.raw:
                        raise ChainError(
                            f"cannot import {author.short()}: seq {seq} differs from the "
                            "record this store holds (a fork)"
                        )
                else:
                    pending.append(_row(record))
                    links.extend(_link_rows([record]))
                    positions.extend(_position_rows([record]))
                    ops.extend(_ops([record]))
                    added += 1
                    if len(pending) >= _IMPORT_CHUNK:
                        conn.executemany(_INSERT_RECORD, pending)
                        pending.clear()
                head = ChainHead.after(record)
            if head is None:
                raise ChainError("cannot import: no records")
            conn.executemany(_INSERT_RECORD, pending)
            if self._indexes_links:
                conn.executemany(_INSERT_LINK, links)
            if self._version >= _POSITIONS_SCHEMA:
                conn.executemany(_INSERT_POSITION, positions)
            if self._indexes_ops:
                self._held.add(ops)
            if self._holds_loose:
                conn.executemany(_DELETE_LOOSE, [(op[1],) for op in ops])
            if added:
                conn.execute(_UPSERT_HEAD, _head_row(head))
        # nothing added means every record was already held, up to a head at least as far
        return Imported(head if added or held is None else held, added)

    # -- reading -------------------------------------------------------------------------

    def head(self, author: AgentKey) -> ChainHead | None:
        """The kept head of ``author``'s chain (one indexed row), or None if none is held."""
        with self._mapped("read a head from"):
            return self._read_head(self._open_conn(), author)

    def authors(self) -> list[AgentKey]:
        """Every author whose chain the store holds, in key order."""
        with self._mapped("list the chains in"):
            return [AgentKey(raw) for (raw,) in self._open_conn().execute(_SELECT_AUTHORS)]

    def authors_between(self, lo: bytes, hi: bytes) -> list[bytes]:
        """The raw keys of at most two held chains' authors in [lo, hi] (a key prefix's range)."""
        with self._mapped("look up a key prefix in"):
            rows = self._open_conn().execute(
                "SELECT author FROM chains WHERE author BETWEEN ? AND ? ORDER BY author LIMIT 2",
                (lo, hi),
            )
            return [raw for (raw,) in rows]

    def actions_between(self, lo: bytes, hi: bytes) -> list[bytes]:
        """The raw hashes of at most two held records in [lo, hi] (a hash prefix's range): in
        chains, or loose (a sharded node's governance records of chains it does not hold)."""
        sql = "SELECT hash FROM records WHERE hash BETWEEN ?1 AND ?2"
        if self._holds_loose:
            sql += " UNION SELECT hash FROM loose_records WHERE hash BETWEEN ?1 AND ?2"
        with self._mapped("look up a hash prefix in"):
            rows = self._open_conn().execute(sql + " ORDER BY hash LIMIT 2", (lo, hi))
            return [raw for (raw,) in rows]
    def stored(self) -> int:
        """How many records the store holds: in chains, and loose."""
        with self._mapped("count records in"):
            conn = self._open_conn()
            (number,) = conn.execute("SELECT count(*) FROM records").fetchone()
            if self._holds_loose:
                number += conn.execute("SELECT count(*) FROM loose_records").fetchone()[0]
            return int(number)

    def count(self, author: AgentKey) -> int:
        """How many records of ``author``'s chain are stored (counted, not taken from the head)."""
        with self._mapped("count records in"):
            (number,) = self._open_conn().execute(_COUNT, (author.raw,)).fetchone()
            return int(number)

    def get(self, action_hash: ActionHash) -> Record | None:
        """The stored record whose action hash is ``action_hash`` (in a held chain, or loose), or None."""
        with self._mapped("read a record from"):
            conn = self._open_conn()
            row = conn.execute(_SELECT_BY_HASH, (action_hash.raw,)).fetchone()
            if row is None and self._holds_loose:
                row = conn.execute(_SELECT_LOOSE, (action_hash.raw,)).fetchone()
        return None if row is None else self._read_record(*row)

    def payments_naming(self, payer: AgentKey, seq: int) -> list[Record]:
        """Stored payment records of other parties whose body names ``payer`` at ``seq``."""
        if self._version < _POSITIONS_SCHEMA:
            return []
        with self._mapped("read payments naming a position in"):
            rows = self._open_conn().execute(_SELECT_NAMING, (payer.raw, seq)).fetchall()
        return [_decode(*row) for row in rows]

    def records(self, author: AgentKey, from_seq: int = 0) -> Iterator[Record]:
        """``author``'s records from ``from_seq`` on, in seq order, streamed from the file."""
        for row in self._stream(_SELECT_PARTS, (author.raw, from_seq)):
            record = self._read_record(*row)
            if record.action.author != author:
                raise ChainError(f"the stored chain of {author.short()} is corrupt")
            yield record

    def record_blobs(self, author: AgentKey, from_seq: int = 0) -> Iterator[bytes]:
        """``author``'s records from ``from_seq`` on, in their portable ``Record.to_bytes`` form."""
        for row in self._stream(_SELECT_PARTS, (author.raw, from_seq)):
            yield self._read_blob(*row)

    def link_blobs(
        self,
        base: TypedHash,
        entry_type: str | None = None,
        *,
        after: ActionHash | None = None,
        limit: int = 1_000,
    ) -> list[tuple[ActionHash, bytes]]:
        """Held link records whose entry names ``base`` (of ``entry_type``, or of any type).

        In action-hash order from just after ``after``, at most ``limit``; each as its hash
        and its portable ``Record.to_bytes`` form. One indexed range read (the ``links`` table).
        """
        rows = self._link_rows(base, entry_type, after, limit)
        return [(ActionHash(row[0]), self._read_blob(*row)) for row in rows]

    def links(self, base: TypedHash, entry_type: str | None = None) -> list[Record]:
        """Every held link record whose entry names ``base`` (of ``entry_type``), in hash order."""
        found: list[Record] = []
        after: ActionHash | None = None
        while rows := self._link_rows(base, entry_type, after, 1_000):
            found.extend(self._read_record(*row) for row in rows)
            after = ActionHash(rows[-1][0])
        return found

    def _link_rows(
        self, base: TypedHash, entry_type: str | None, after: ActionHash | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes, bytes | None]]:
        start = b"" if after is None else after.raw
        params: tuple[object, ...]
        if entry_type is None:
            sql, loose_sql, params = (
                _SELECT_LINKS_ANY, _SELECT_LOOSE_LINKS_ANY, (base.to_bytes(), start, limit)
            )  # fmt: skip
        else:
            sql, loose_sql = _SELECT_LINKS_OF_TYPE, _SELECT_LOOSE_LINKS_OF_TYPE
            params = (base.to_bytes(), start, entry_type, limit)
        with self._mapped("read links from"):
            conn = self._open_conn()
            rows = conn.execute(sql, params).fetchall()
            if not self._holds_loose:
                return rows
            loose = conn.execute(loose_sql, params).fetchall()
        # a hash is in one table or the other: merge the two hash-ordered lists
        return list(heapq.merge(rows, loose, key=lambda row: row[0]))[:limit]

    # -- records held outside any held chain --------------------------------------------

    def keep_loose(self, records: Iterable[Record], why: Loose, now: int) -> int:
        """Hold ``records`` by hash outside their chains, for ``why``; how many were not held before.

        A record a held chain holds is skipped; one already held loose keeps the
        stronger reason and the later time. A link kept as ``Loose.LINK`` is
        indexed by its base and held as an op there (``held_ops``), not at its
        author (whose chain this node does not hold). The caller judged each
        record valid, or had it from an authority that did: the store keeps
        only such, and the engine takes what it holds as valid.
        """
        with self._transaction("keep records in") as conn:
            new = 0
            for given in records:
                record = _portable_form(given)
                digest = record.hash.raw
                if conn.execute(_IN_CHAINS, (digest,)).fetchone() is not None:
                    continue
                new += conn.execute("SELECT 1 FROM loose_records WHERE hash = ?", (digest,)).fetchone() is None
                action = record.action
                conn.execute(
                    _KEEP_LOOSE,
                    (digest, action.author.raw, action.seq, int(why), now, record.action_bytes,
                     record.signature, record.entry),
                )  # fmt: skip
                if why is Loose.LINK:
                    links = _link_rows([record])
                    conn.executemany(_INSERT_LINK, links)
                    self._held.add((location(base[1:]), digest) for base, _type, _r in links)
            return new

    def release_loose(self, hashes: Iterable[ActionHash]) -> None:
        """Keep these loose records only as dependencies (evictable): a link whose base left the arc."""
        with self._transaction("release records in") as conn:
            for h in hashes:
                row = conn.execute(
                    "SELECT why, hash, action, signature, entry FROM loose_records WHERE hash = ?",
                    (h.raw,),
                ).fetchone()
                if row is None or row[0] != Loose.LINK:
                    continue
                record = self._read_record(*row[1:])
                links = _link_rows([record])
                conn.executemany(
                    "DELETE FROM links WHERE base = ? AND entry_type = ? AND record = ?", links
                )
                self._held.remove((location(base[1:]), h.raw) for base, _type, _r in links)
                conn.execute(
                    "UPDATE loose_records SET why = ? WHERE hash = ?", (int(Loose.DEPENDENCY), h.raw)
                )

    def evict_loose(self, before: int) -> int:
        """Forget the dependencies kept before ``before`` (node clock, µs); how many went."""
        with self._transaction("evict records from") as conn:
            cursor = conn.execute(
                "DELETE FROM loose_records WHERE why = ? AND kept_at < ?",
                (int(Loose.DEPENDENCY), before),
            )
            return int(cursor.rowcount)

    def loose_counts(self) -> dict[Loose, int]:
        """How many records are held loose, for each reason."""
        if not self._holds_loose:
            return {}
        with self._mapped("count records in"):
            rows = self._open_conn().execute("SELECT why, count(*) FROM loose_records GROUP BY why")
            return {Loose(why): int(count) for why, count in rows}

    def loose_records(self, why: Loose) -> list[Record]:
        """The records held loose for ``why``, in hash order."""
        with self._mapped("read records from"):
            rows = self._open_conn().execute(
                "SELECT hash, action, signature, entry FROM loose_records WHERE why = ? ORDER BY hash",
                (int(why),),
            ).fetchall()
        return [self._read_record(*row) for row in rows]

    def loose_genesis(self, agent: AgentKey) -> Record | None:
        """A genesis record of ``agent`` held loose (the lowest hash, if a fork left several)."""
        if not self._holds_loose:
            return None
        with self._mapped("read a record from"):
            row = self._open_conn().execute(
                "SELECT hash, action, signature, entry FROM loose_records WHERE author = ? AND seq = 0 "
                "ORDER BY hash LIMIT 1",
                (agent.raw,),
            ).fetchone()
        return None if row is None else self._read_record(*row)

    # -- the DHT ops held (``conode.store.heldops``) -------------------------------------

    def held_total(self) -> int:
        """How many ops the store holds (records at their author, links also at their base)."""
        with self._mapped("count the ops in"):
            return self._held_ops().total()

    def held_count(self, lo: Bound, hi: Bound | None) -> int:
        """How many held ops have keys in ``[lo, hi)`` (bounds as in ``conode.store.heldops``)."""
        with self._mapped("count the ops in"):
            return self._held_ops().count(lo, hi)

    def held_summary(self, lo: Bound, hi: Bound | None) -> tuple[int, int]:
        """(sum of keys, count) of the held ops in ``[lo, hi)``, from sector sums."""
        with self._mapped("sum the ops in"):
            return self._held_ops().summary(lo, hi)

    def held_keys(
        self, lo: Bound, hi: Bound | None, offset: int, limit: int
    ) -> list[tuple[int, bytes]]:
        """The held ops (location, hash) in ``[lo, hi)`` from the ``offset``-th on, at most ``limit``."""
        with self._mapped("list the ops in"):
            return self._held_ops().keys(lo, hi, offset, limit)

    def _held_ops(self) -> HeldOps:
        self._open_conn()  # a closed store raises here
        return self._held

    def forget_chain(self, author: AgentKey) -> int:
        """Drop ``author``'s chain whole (records, head, kept state, link rows, ops); how many records.

        One transaction. For a node shedding a chain that left its arc: whether
        the chain's new holders have it is the caller's to know, not the store's.
        """
        with self._transaction("drop a chain from") as conn:
            rows = conn.execute(
                "SELECT hash, action, signature, entry FROM records WHERE author = ? ORDER BY seq",
                (author.raw,),
            ).fetchall()
            records = [self._read_record(*row) for row in rows]
            if self._indexes_links:
                conn.executemany(
                    "DELETE FROM links WHERE base = ? AND entry_type = ? AND record = ?",
                    _link_rows(records),
                )
            if self._indexes_ops:
                self._held.remove(_ops(records))
            conn.execute("DELETE FROM chains WHERE author = ?", (author.raw,))
            conn.execute("DELETE FROM records WHERE author = ?", (author.raw,))
        return len(records)

    def verify(self, author: AgentKey) -> Violation | None:
        """Re-check ``author``'s whole stored chain from its bytes; the first violation, or None.

        The chain rules are ``verify_encoded_chain`` over the portable bytes the
        store would export. The indexed columns must agree with the action bytes
        (rule ``index``), and the kept head with the chain's last record (rule
        ``head``); the kept head is compared, never trusted.
        """
        rows = self._stream(_SELECT_ROWS, (author.raw,))
        checked = _CheckedRows(author, rows)
        try:
            violation = verify_encoded_chain(checked)
        finally:
            rows.close()  # release the cursor now, even if the chain failed early
        if violation is not None:
            return violation
        if checked.violation is not None:
            return checked.violation
        with self._mapped("read a head from"):
            kept = self._read_head(self._open_conn(), author)
        if kept != checked.last:
            return Violation(
                "head",
                f"the kept head ({_describe(kept)}) is not the chain's last record "
                f"({_describe(checked.last)})",
            )
        return None

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
            and _ENTRY_HASH_HEAD + blake2b_256(HashKind.ENTRY, entry) not in action
        ):
            raise self._damaged(f"record {ActionHash(key).short()} holds another entry")

    def _read_blob(self, key: object, action: object, signature: object, entry: object) -> bytes:
        """A stored record's portable bytes, checked against its key."""
        self._check_parts(key, action, signature, entry)
        return _portable(action, signature, entry)

    def _read_record(self, key: object, action: object, signature: object, entry: object) -> Record:
        """A stored record, checked against its key."""
        self._check_parts(key, action, signature, entry)
        return _decode(action, signature, entry)

    @contextlib.contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        """Translate sqlite3 errors into one ``StorageError`` line (damage: ``ChainError``)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
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

    @staticmethod
    def _read_head(conn: sqlite3.Connection, author: AgentKey) -> ChainHead | None:
        row = conn.execute(_SELECT_HEAD, (author.raw,)).fetchone()
        if row is None:
            return None
        seq, hash_raw, timestamp, closed = row
        return ChainHead(author, seq, ActionHash(hash_raw), timestamp, bool(closed))


class _CheckedRows:
    """Stored rows as portable blobs for ``verify_encoded_chain``, checking the index columns.

    Stops at the first row whose columns disagree with its action bytes, and
    remembers that as ``violation``; ``last`` is the head after the last row.
    """

    def __init__(self, author: AgentKey, rows: Iterator[tuple[object, ...]]) -> None:
        self._author = author
        self._rows = rows
        self.violation: Violation | None = None
        self.last: ChainHead | None = None

    def __iter__(self) -> Iterator[bytes]:
        for position, row in enumerate(self._rows):
            seq, hash_raw, kind, timestamp, entry_type, action_bytes, signature, entry = row
            if not (
                type(action_bytes) is bytes
                and type(signature) is bytes
                and (entry is None or type(entry) is bytes)
            ):
                self.violation = Violation("format", "a stored column is not bytes", position)
                return
            blob = _portable(action_bytes, signature, entry)
            try:
                action = Action.from_bytes(action_bytes)
            except EncodingError:
                yield blob  # verify_encoded_chain names the format violation
                return
            action_hash = ActionHash.of(action_bytes)
            columns = (self._author, seq, hash_raw, kind, timestamp, entry_type)
            derived = (
                action.author,
                action.seq,
                action_hash.raw,
                int(action.kind),
                action.timestamp,
                action.entry_type,
            )
            if columns != derived:
                names = ("author", "seq", "hash", "kind", "timestamp", "entry_type")
                wrong = [n for n, a, b in zip(names, columns, derived, strict=True) if a != b]
                self.violation = Violation(
                    "index",
                    f"stored column(s) {', '.join(wrong)} disagree with the action bytes",
                    position,
                    seq if type(seq) is int else None,
                )
                return
            self.last = ChainHead(
                action.author,
                action.seq,
                action_hash,
                action.timestamp,
                action.kind is ActionKind.CLOSE_CHAIN,
            )
            yield blob


def _row(record: Record) -> _Row:
    action = record.action
    return (
        action.author.raw,
        action.seq,
        record.hash.raw,
        int(action.kind),
        action.timestamp,
        action.entry_type,
        record.action_bytes,
        record.signature,
        record.entry,
    )


def _link_rows(records: Iterable[Record]) -> list[tuple[bytes, str, bytes]]:
    """The ``links`` rows of the link records among ``records`` (those whose entry names a base)."""
    rows = []
    for record in records:
        action = record.action
        if action.kind is ActionKind.LINK and action.entry_type is not None:
            base = link_base(record.entry)
            if base is not None:
                rows.append((base, action.entry_type, record.hash.raw))
    return rows


def _position_rows(records: Iterable[Record]) -> list[tuple[bytes, int, bytes]]:
    """The ``payer_positions`` rows of the payment records among ``records`` whose author is
    not the payer they name."""
    rows = []
    for record in records:
        if record.action.entry_type == PAYMENT:
            position = payer_position(record.entry)
            if position is not None and position[0] != record.action.author:
                rows.append((position[0].raw, position[1], record.hash.raw))
    return rows


def _ops(records: Iterable[Record]) -> Iterator[tuple[int, bytes]]:
    """The ``held_ops`` rows of ``records``: each op's location and the record's hash."""
    for record in records:
        for at in op_locations(record):
            yield at, record.hash.raw


def _head_row(head: ChainHead) -> tuple[bytes, int, bytes, int, int]:
    return (head.author.raw, head.seq, head.hash.raw, head.timestamp, int(head.closed))


def _portable(action: object, signature: object, entry: object) -> bytes:
    """The ``Record.to_bytes`` form of stored parts, without decoding them."""
    return encoding.encode([action, signature, entry])


def _portable_form(record: Record) -> Record:
    """``record`` as it will read back from the store; ``ChainError`` if it would not.

    ``check_append`` trusts a ``Record``'s parts to agree (action fields and
    action bytes, hash) and does not look inside the entry; the store keeps only
    the bytes, so it checks that they decode to this very record.
    """
    try:
        decoded = Record.from_bytes(record.to_bytes())
    except (EncodingError, TypeError, ValueError) as exc:
        raise ChainError(
            f"refused {record.action.author.short()} seq {record.action.seq}: format: {exc}"
        ) from exc
    if decoded != record:
        raise ChainError(
            f"refused {record.action.author.short()} seq {record.action.seq}: "
            "format: the record's fields disagree with its action bytes"
        )
    return decoded


def _decode(action_bytes: object, signature: object, entry: object) -> Record:
    """A record from its stored parts; ``ChainError`` if they are not a record's parts.

    The entry is not decoded here (``verify`` checks it): reading stays cheap.
    """
    if not (
        type(action_bytes) is bytes
        and type(signature) is bytes
        and len(signature) == SIGNATURE_SIZE
        and (entry is None or type(entry) is bytes)
    ):
        raise ChainError("a stored record is corrupt: its columns are not a record's parts")
    try:
        action = Action.from_bytes(action_bytes)
    except EncodingError as exc:
        raise ChainError(f"a stored record is corrupt: {exc}") from exc
    return Record(action, signature, entry, action_bytes, ActionHash.of(action_bytes))


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLite found the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB mid-file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc)


def _describe(head: ChainHead | None) -> str:
    return "none" if head is None else f"seq {head.seq}, {head.hash.short()}"

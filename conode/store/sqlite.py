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
- A sharded node also holds records outside any held chain (``loose_records``,
  kept by ``conode.store.sharded.ShardStore``): ``get``, ``actions_between`` and
  the link reads see them, and a chain that comes to hold one drops the loose copy.
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

import heapq
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from conode.chain import ChainHead, Record, Violation, check_append, verify_encoded_chain
from conode.errors import ChainError, EncodingError, StorageError
from conode.hashes import ActionHash, AgentKey, TypedHash
from conode.store import statements as sql
from conode.store import stored
from conode.store.heldops import HeldOps
from conode.store.storefile import StoreFile
from conode.validation.activity import Activity

__all__ = ["Imported", "Store"]

_IMPORT_CHUNK: Final = 256
_LINKS_SCHEMA: Final = 5
"""The schema version that added the ``links`` index."""
_POSITIONS_SCHEMA: Final = 8
"""The schema version that added the ``payer_positions`` index."""
_HELD_OPS_SCHEMA: Final = 11
"""The schema version that added the ``held_ops`` index."""
_LOOSE_SCHEMA: Final = 12
"""The schema version that added ``loose_records``."""


@dataclass(frozen=True, slots=True)
class Imported:
    """What ``Store.import_chain`` did: the chain's head as now stored, and how many were new."""

    head: ChainHead
    added: int


class Store(StoreFile):
    """The node's SQLite store of source chains; open with ``Store.open``; one thread at a time."""

    __slots__ = ("_held",)

    def __init__(self, conn: sqlite3.Connection, path: str, version: int) -> None:
        """Wrap an open, migrated connection: use ``Store.open`` instead."""
        super().__init__(conn, path, version)
        self._held = HeldOps(conn)  # one per connection: it keeps sector totals between reads

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
            for author, seq, kept in conn.execute(sql.SELECT_KEPT_HEADS).fetchall():
                row = conn.execute(sql.SELECT_RECORD_AT, (author, seq)).fetchone()
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
            rows: list[stored.Row] = []
            for given in records:
                record = stored.portable_form(given)
                author = record.action.author
                head = heads[author] if author in heads else self._read_head(conn, author)
                violation = check_append(head, record)
                if violation is not None:
                    raise ChainError(
                        f"refused {author.short()} seq {record.action.seq}: {violation}"
                    )
                heads[author] = ChainHead.after(record)
                rows.append(stored.record_row(record))
            conn.executemany(sql.INSERT_RECORD, rows)
            if self._indexes_links:
                conn.executemany(sql.INSERT_LINK, stored.link_rows(records))
            if self._version >= _POSITIONS_SCHEMA:
                conn.executemany(sql.INSERT_POSITION, stored.position_rows(records))
            if self._indexes_ops:
                self._held.add(stored.op_rows(records))
            if self._holds_loose:  # a chain that holds a record holds it instead of the loose copy
                conn.executemany(sql.DELETE_LOOSE, [(r.hash.raw,) for r in records])
            conn.executemany(
                sql.UPSERT_HEAD,
                [stored.head_row(head) for head in heads.values() if head is not None],
            )
            for author, activity in (activities or {}).items():
                if activity.head != heads.get(author, activity.head):
                    raise ValueError(
                        "an activity state must be the state after the appended records"
                    )
                conn.execute(sql.SET_ACTIVITY, (activity.to_bytes(), activity.balance, author.raw))
            if publish:
                conn.executemany(
                    sql.QUEUE_PUBLISHING, [(r.hash.raw, r.action.timestamp) for r in records]
                )
            for session_id, saved in (sessions or {}).items():
                if saved is None:
                    conn.execute(sql.DELETE_SESSION, (session_id,))
                else:
                    conn.execute(sql.UPSERT_SESSION, (session_id, saved[0].raw, saved[1]))

    def activity(self, author: AgentKey) -> Activity:
        """The credit rules' kept state of ``author``'s chain (``Activity()`` if none is held)."""
        with self._mapped("read the activity of a chain in"):
            conn = self._open_conn()
            head = self._read_head(conn, author)
            row = conn.execute(sql.SELECT_ACTIVITY, (author.raw,)).fetchone()
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
            pending: list[stored.Row] = []
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
                    kept = conn.execute(sql.SELECT_HASH_AT, (author.raw, seq)).fetchone()
                    if kept is None or kept[0] != record.hash.raw:
                        raise ChainError(
                            f"cannot import {author.short()}: seq {seq} differs from the "
                            "record this store holds (a fork)"
                        )
                else:
                    pending.append(stored.record_row(record))
                    links.extend(stored.link_rows([record]))
                    positions.extend(stored.position_rows([record]))
                    ops.extend(stored.op_rows([record]))
                    added += 1
                    if len(pending) >= _IMPORT_CHUNK:
                        conn.executemany(sql.INSERT_RECORD, pending)
                        pending.clear()
                head = ChainHead.after(record)
            if head is None:
                raise ChainError("cannot import: no records")
            conn.executemany(sql.INSERT_RECORD, pending)
            if self._indexes_links:
                conn.executemany(sql.INSERT_LINK, links)
            if self._version >= _POSITIONS_SCHEMA:
                conn.executemany(sql.INSERT_POSITION, positions)
            if self._indexes_ops:
                self._held.add(ops)
            if self._holds_loose:
                conn.executemany(sql.DELETE_LOOSE, [(op[1],) for op in ops])
            if added:
                conn.execute(sql.UPSERT_HEAD, stored.head_row(head))
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
            return [AgentKey(raw) for (raw,) in self._open_conn().execute(sql.SELECT_AUTHORS)]

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
        statement = sql.ACTIONS_BETWEEN_ANYWHERE if self._holds_loose else sql.ACTIONS_BETWEEN
        with self._mapped("look up a hash prefix in"):
            rows = self._open_conn().execute(statement, (lo, hi))
            return [raw for (raw,) in rows]

    def count(self, author: AgentKey) -> int:
        """How many records of ``author``'s chain are stored (counted, not taken from the head)."""
        with self._mapped("count records in"):
            (number,) = self._open_conn().execute(sql.COUNT, (author.raw,)).fetchone()
            return int(number)

    def get(self, action_hash: ActionHash) -> Record | None:
        """The stored record whose action hash is ``action_hash`` (in a held chain, or loose), or None."""
        with self._mapped("read a record from"):
            conn = self._open_conn()
            row = conn.execute(sql.SELECT_BY_HASH, (action_hash.raw,)).fetchone()
            if row is None and self._holds_loose:
                row = conn.execute(sql.SELECT_LOOSE, (action_hash.raw,)).fetchone()
        return None if row is None else self._read_record(*row)

    def payments_naming(self, payer: AgentKey, seq: int) -> list[Record]:
        """Stored payment records of other parties whose body names ``payer`` at ``seq``."""
        if self._version < _POSITIONS_SCHEMA:
            return []
        with self._mapped("read payments naming a position in"):
            rows = self._open_conn().execute(sql.SELECT_NAMING, (payer.raw, seq)).fetchall()
        return [stored.decode(*row) for row in rows]

    def records(self, author: AgentKey, from_seq: int = 0) -> Iterator[Record]:
        """``author``'s records from ``from_seq`` on, in seq order, streamed from the file."""
        for row in self._stream(sql.SELECT_PARTS, (author.raw, from_seq)):
            record = self._read_record(*row)
            if record.action.author != author:
                raise ChainError(f"the stored chain of {author.short()} is corrupt")
            yield record

    def record_blobs(self, author: AgentKey, from_seq: int = 0) -> Iterator[bytes]:
        """``author``'s records from ``from_seq`` on, in their portable ``Record.to_bytes`` form."""
        for row in self._stream(sql.SELECT_PARTS, (author.raw, from_seq)):
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

    def link_hashes(self, base: TypedHash, entry_type: str | None = None) -> set[ActionHash]:
        """The hashes of the held link records whose entry names ``base`` (of ``entry_type``):
        the index alone, nothing read or decoded. Every ``links`` row is a held record's: rows
        go in and out with their record (in a chain, or loose at its base)."""
        params: tuple[bytes | str, ...]
        if entry_type is None:
            statement, params = sql.SELECT_LINK_HASHES, (base.to_bytes(),)
        else:
            statement, params = sql.SELECT_LINK_HASHES_OF_TYPE, (base.to_bytes(), entry_type)
        with self._mapped("read links from"):
            rows = self._open_conn().execute(statement, params).fetchall()
        return {ActionHash(raw) for (raw,) in rows}

    def _link_rows(
        self, base: TypedHash, entry_type: str | None, after: ActionHash | None, limit: int
    ) -> list[tuple[bytes, bytes, bytes, bytes | None]]:
        start = b"" if after is None else after.raw
        params: tuple[object, ...]
        if entry_type is None:
            statement, loose_statement = sql.SELECT_LINKS_ANY, sql.SELECT_LOOSE_LINKS_ANY
            params = (base.to_bytes(), start, limit)
        else:
            statement, loose_statement = sql.SELECT_LINKS_OF_TYPE, sql.SELECT_LOOSE_LINKS_OF_TYPE
            params = (base.to_bytes(), start, entry_type, limit)
        with self._mapped("read links from"):
            conn = self._open_conn()
            rows = conn.execute(statement, params).fetchall()
            if not self._holds_loose:
                return rows
            loose = conn.execute(loose_statement, params).fetchall()
        # a hash is in one table or the other: merge the two hash-ordered lists
        return list(heapq.merge(rows, loose, key=lambda row: row[0]))[:limit]

    def verify(self, author: AgentKey) -> Violation | None:
        """Re-check ``author``'s whole stored chain from its bytes; the first violation, or None.

        The chain rules are ``verify_encoded_chain`` over the portable bytes the
        store would export. The indexed columns must agree with the action bytes
        (rule ``index``), and the kept head with the chain's last record (rule
        ``head``); the kept head is compared, never trusted.
        """
        rows = self._stream(sql.SELECT_ROWS, (author.raw,))
        checked = stored.CheckedRows(author, rows)
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
                f"the kept head ({stored.describe(kept)}) is not the chain's last record "
                f"({stored.describe(checked.last)})",
            )
        return None

    @staticmethod
    def _read_head(conn: sqlite3.Connection, author: AgentKey) -> ChainHead | None:
        row = conn.execute(sql.SELECT_HEAD, (author.raw,)).fetchone()
        if row is None:
            return None
        seq, hash_raw, timestamp, closed = row
        return ChainHead(author, seq, ActionHash(hash_raw), timestamp, bool(closed))

"""The store's schema, as an ordered list of migration steps.

The schema version lives in ``PRAGMA user_version`` and the file is marked as
a conode store by ``PRAGMA application_id``. Step ``i`` of ``MIGRATIONS``
takes a file from version ``i`` to ``i + 1``; a new file is version 0, so it
runs every step. To change the schema, *append* a step: never edit one that
has shipped, because files in the field were made by it.

``migrate`` runs the missing steps and sets the new version in one
transaction, so a crash mid-migration leaves the file at its old version.
A file from a newer conode (a version above ``len(MIGRATIONS)``) is refused,
never downgraded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from conode import encoding
from conode.chain import link_base
from conode.chain.ops import location
from conode.errors import EncodingError, StorageError
from conode.hashes import ActionHash, AgentKey
from conode.store.heldops import HeldOps
from conode.validation.entries import payer_position

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "Step",
    "migrate",
]

APPLICATION_ID: Final = 0x636E6F64
"""``PRAGMA application_id`` of a conode store: ASCII ``cnod``."""


@dataclass(frozen=True, slots=True)
class Step:
    """One schema migration: SQL statements run in order inside the migrating transaction.

    ``rewrite``, if any, runs after them in the same transaction, for data SQL
    cannot rewrite alone (it raises ``StorageError`` to refuse the file).
    """

    description: str
    statements: tuple[str, ...]
    rewrite: Callable[[sqlite3.Connection], None] | None = None


_V1: Final = Step(
    "source chains: heads and records",
    (
        # The head of every chain the store holds, kept in the same transaction as
        # the records so that opening the store never replays a chain.
        """
        CREATE TABLE chains (
            author    BLOB PRIMARY KEY CHECK (length(author) = 32),
            seq       INTEGER NOT NULL CHECK (seq >= 0),
            hash      BLOB NOT NULL
                      REFERENCES records (hash) DEFERRABLE INITIALLY DEFERRED,
            timestamp INTEGER NOT NULL,
            closed    INTEGER NOT NULL CHECK (closed IN (0, 1)),
            -- the agent's running balance for the credit rules: kept by the credit
            -- rules issue, 0 until then (nothing reads it yet)
            balance   INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID
        """,
        # action, signature and entry are the record; every other column is copied
        # from the action bytes for indexing, and Store.verify checks that they agree.
        # A rowid table (not WITHOUT ROWID) because entries may be large.
        """
        CREATE TABLE records (
            id         INTEGER PRIMARY KEY,
            author     BLOB NOT NULL
                       REFERENCES chains (author) DEFERRABLE INITIALLY DEFERRED,
            seq        INTEGER NOT NULL CHECK (seq >= 0),
            hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
            kind       INTEGER NOT NULL,
            timestamp  INTEGER NOT NULL,
            entry_type TEXT,
            action     BLOB NOT NULL,
            signature  BLOB NOT NULL,
            entry      BLOB,
            UNIQUE (author, seq)
        )
        """,
        """
        CREATE INDEX records_by_entry_type ON records (entry_type, author, seq)
        WHERE entry_type IS NOT NULL
        """,
    ),
)

_V2: Final = Step(
    "the node: activity state, pending records, receipts, warrants, peers, sessions, metadata",
    (
        # the credit rules' fold of each chain (conode.validation.activity), kept with the head
        "ALTER TABLE chains ADD COLUMN activity BLOB",
        # records received ahead of their chain's next seq (or of a dependency), held until they fit
        """
        CREATE TABLE pending (
            hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
            author      BLOB NOT NULL,
            seq         INTEGER NOT NULL,
            record      BLOB NOT NULL,
            received_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX pending_by_chain ON pending (author, seq)",
        # signed validation receipts for records this node authored (or holds)
        """
        CREATE TABLE receipts (
            record    BLOB NOT NULL,
            authority BLOB NOT NULL,
            valid     INTEGER NOT NULL CHECK (valid IN (0, 1)),
            at        INTEGER NOT NULL,
            signature BLOB NOT NULL,
            PRIMARY KEY (record, authority)
        ) WITHOUT ROWID
        """,
        # records authored here that still need receipts from their authorities
        """
        CREATE TABLE publishing (
            record     BLOB PRIMARY KEY,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE warrants (
            hash        BLOB PRIMARY KEY,
            offender    BLOB NOT NULL,
            warrant     BLOB NOT NULL,
            received_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX warrants_by_offender ON warrants (offender)",
        """
        CREATE TABLE peers (
            peer_id   TEXT PRIMARY KEY,
            addrs     TEXT NOT NULL,
            last_seen INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        # countersigning sessions (conode.validation.countersign.SessionRecord bytes)
        """
        CREATE TABLE sessions (
            id     BLOB PRIMARY KEY,
            agent  BLOB NOT NULL,
            record BLOB NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    ),
)


def _pin_activity_genesis(conn: sqlite3.Connection) -> None:
    """Add ``genesis`` (the chain's seq-0 action hash) to every kept activity state.

    Works on the CBOR map itself, not through ``Activity``, so that this step
    keeps meaning what it meant when that class changes again.
    """
    rows = conn.execute(
        """
        SELECT c.author, c.activity, r.hash FROM chains AS c
        LEFT JOIN records AS r ON r.author = c.author AND r.seq = 0
        WHERE c.activity IS NOT NULL
        """
    ).fetchall()
    for author, blob, genesis in rows:
        who = AgentKey(author).short()
        if genesis is None:
            raise StorageError(f"the chain of {who} has an activity state but no genesis record")
        try:
            state = encoding.decode(blob)
        except EncodingError as exc:
            raise StorageError(f"the activity state of {who} cannot be read: {exc}") from exc
        if type(state) is not dict:
            raise StorageError(f"the activity state of {who} is not a map")
        state["genesis"] = ActionHash(genesis).to_bytes()
        conn.execute(
            "UPDATE chains SET activity = ? WHERE author = ?", (encoding.encode(state), author)
        )


_V3: Final = Step(
    "payments pin each party's genesis: kept activity states name their chain's genesis",
    (),
    _pin_activity_genesis,
)

_V4: Final = Step(
    "apps: the operator's approved bundles, and bundles fetched by hash",
    (
        # the bundle hashes the operator approved to run (conode.apps.sdk.ApprovalStore);
        # app id and version are what the approval was for, kept for people to read
        """
        CREATE TABLE app_approvals (
            bundle      BLOB PRIMARY KEY CHECK (length(bundle) = 32),
            app_id      TEXT NOT NULL,
            version     TEXT NOT NULL,
            approved_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        # bundle bytes by hash: fetched from peers (checked against the hash before they are
        # kept) or copied from the installed code the node runs, to serve to peers
        """
        CREATE TABLE app_bundles (
            bundle BLOB PRIMARY KEY CHECK (length(bundle) = 32),
            data   BLOB NOT NULL
        ) WITHOUT ROWID
        """,
    ),
)

_LINK_KIND: Final = 4
"""``ActionKind.LINK``, written out: this step keeps meaning what it meant if the enum changes."""


def _index_held_links(conn: sqlite3.Connection) -> None:
    """Fill ``links`` from the link records already stored."""
    rows = conn.execute(
        "SELECT hash, entry_type, entry FROM records WHERE kind = ? AND entry_type IS NOT NULL",
        (_LINK_KIND,),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO links (base, entry_type, record) VALUES (?, ?, ?)",
        (
            (base, entry_type, record)
            for record, entry_type, entry in rows
            if (base := link_base(entry)) is not None
        ),
    )


_PAYMENT: Final = "payment"
"""The payment entry type, written out: this step keeps meaning what it meant."""


def _index_payer_positions(conn: sqlite3.Connection) -> None:
    """Fill ``payer_positions`` from the payment records already stored."""
    rows = conn.execute(
        "SELECT author, hash, entry FROM records WHERE entry_type = ?", (_PAYMENT,)
    )
    conn.executemany(
        "INSERT OR IGNORE INTO payer_positions (payer, seq, record) VALUES (?, ?, ?)",
        (
            (position[0].raw, position[1], record)
            for author, record, entry in rows
            if (position := payer_position(entry)) is not None and position[0].raw != author
        ),
    )


_V5: Final = Step(
    "link records indexed by their base, for the DHT's links request",
    (
        # one row per stored LINK record whose entry names a base: the records an authority of
        # that base serves (``Store.links``); the record is the action hash in ``records``
        """
        CREATE TABLE links (
            base       BLOB NOT NULL CHECK (length(base) = 33),
            entry_type TEXT NOT NULL,
            record     BLOB NOT NULL CHECK (length(record) = 32),
            PRIMARY KEY (base, entry_type, record)
        ) WITHOUT ROWID
        """,
    ),
    _index_held_links,
)

_V6: Final = Step(
    "apps: each app's own small state on this node (an inbox, read marks)",
    (
        # ``conode.store.appstate``: values an app keeps for itself beside the chains (never
        # signed, never sent); the key is the app's own text, the value canonical CBOR
        """
        CREATE TABLE app_state (
            app   TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (app, key)
        ) WITHOUT ROWID
        """,
    ),
)

_BILL_DECLINE: Final = "credit/bill-decline"
"""The entry type of a bill's decline, written out: this step keeps meaning what it meant."""


def _keep_bill_declines(conn: sqlite3.Connection) -> None:
    """Add ``bills_declined`` (the bills each chain's author declined) to the kept activity states.

    The activity fold refuses paying a declined bill and declining a paid one
    since this version; a state kept before it must know the declines its
    chain already holds, or this node would take a record every fresh peer
    refuses. Works on the CBOR maps, as ``_pin_activity_genesis`` does.
    """
    declined: dict[bytes, set[bytes]] = {}
    rows = conn.execute(
        "SELECT author, seq, entry FROM records WHERE entry_type = ?", (_BILL_DECLINE,)
    )
    for author, seq, entry in rows:
        who = f"{AgentKey(author).short()} seq {seq}"
        try:
            value = encoding.decode(entry)
        except EncodingError as exc:
            raise StorageError(f"the bill decline of {who} cannot be read: {exc}") from exc
        bill = value.get("bill") if type(value) is dict else None
        if type(bill) is not bytes:
            raise StorageError(f"the bill decline of {who} names no bill")
        declined.setdefault(author, set()).add(bill)
    for author, bills in declined.items():
        row = conn.execute("SELECT activity FROM chains WHERE author = ?", (author,)).fetchone()
        if row is None or row[0] is None:
            continue  # a chain held for audit keeps no activity state
        who = AgentKey(author).short()
        try:
            state = encoding.decode(row[0])
        except EncodingError as exc:
            raise StorageError(f"the activity state of {who} cannot be read: {exc}") from exc
        if type(state) is not dict:
            raise StorageError(f"the activity state of {who} is not a map")
        state["bills_declined"] = sorted(bills)
        conn.execute(
            "UPDATE chains SET activity = ? WHERE author = ?", (encoding.encode(state), author)
        )


_V7: Final = Step(
    "a bill is settled once: kept activity states list the bills their chain declined",
    (),
    _keep_bill_declines,
)

_V8: Final = Step(
    "payments: the payer positions other parties' records name, and pay requests by key",
    (
        # one row per stored payment record of a payee (or anyone but the payer): the payer's
        # position it names, so a record of the payer's at that seq that is not the payment is
        # caught as equivocation whichever of the two arrives first (``Store.payments_naming``)
        """
        CREATE TABLE payer_positions (
            payer  BLOB NOT NULL CHECK (length(payer) = 32),
            seq    INTEGER NOT NULL CHECK (seq >= 0),
            record BLOB NOT NULL CHECK (length(record) = 32),
            PRIMARY KEY (payer, seq, record)
        ) WITHOUT ROWID
        """,
        # ``pay`` by idempotency key: the session it started, then its outcome (canonical CBOR),
        # so a client that lost its connection asks again and never pays twice
        """
        CREATE TABLE pay_requests (
            key     TEXT PRIMARY KEY,
            request BLOB NOT NULL,
            session BLOB NOT NULL,
            outcome BLOB,
            at      INTEGER NOT NULL
        )
        """,
    ),
    _index_payer_positions,
)

_V9: Final = Step(
    "pending quotas: which pending records came from authors whose genesis was not held",
    (
        # a pending record of an author with no chain here sits in a small expiring pool of its
        # own (``conode.node.pending_quota``): counted and swept by arrival
        "ALTER TABLE pending ADD COLUMN stranger INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX pending_by_arrival ON pending (stranger, received_at)",
    ),
)

_V10: Final = Step(
    "the publishing queue by age",
    (
        # a publishing round reads the queue a page at a time from where the last one stopped
        # (``NodeStore.publishing_page``): without the index each page sorted the whole queue
        "CREATE INDEX publishing_by_age ON publishing (created_at, record)",
    ),
)


def _index_held_ops(conn: sqlite3.Connection) -> None:
    """Fill ``held_ops`` and ``held_sectors`` from the records already stored.

    Read from the stored columns, not through ``conode.chain.ops`` (which takes
    a decoded record), so that this step keeps meaning what it meant: a
    record's ops are its author's location and, for a link naming a base, the
    base's. ``HeldOps.add`` keeps the sector rows in step with the ops.
    """

    def ops() -> Iterator[tuple[int, bytes]]:
        rows = conn.execute("SELECT author, hash, kind, entry FROM records ORDER BY id")
        for author, record, kind, entry in rows.fetchall():
            at = location(author)
            yield at, record
            base = link_base(entry) if kind == _LINK_KIND else None
            if base is not None and location(base[1:]) != at:
                yield location(base[1:]), record

    HeldOps(conn).add(ops())


_V11: Final = Step(
    "the DHT ops a node holds, by location, with per-sector counts and sums for reconciliation",
    (
        # one row per op held (``conode.chain.ops``): a record at its author's location, and a
        # link record also at its base's; kept in the transaction that stores or drops the record
        """
        CREATE TABLE held_ops (
            loc  INTEGER NOT NULL CHECK (loc >= 0 AND loc < 4294967296),
            hash BLOB NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (loc, hash)
        ) WITHOUT ROWID
        """,
        # per sector of 2**20 locations holding any op: how many, and the sums of their keys'
        # 32-bit limbs (s0 least significant, s8 the location): ``conode.store.heldops``
        """
        CREATE TABLE held_sectors (
            sector INTEGER PRIMARY KEY CHECK (sector >= 0 AND sector < 4096),
            count  INTEGER NOT NULL CHECK (count >= 0),
            s0 INTEGER NOT NULL, s1 INTEGER NOT NULL, s2 INTEGER NOT NULL,
            s3 INTEGER NOT NULL, s4 INTEGER NOT NULL, s5 INTEGER NOT NULL,
            s6 INTEGER NOT NULL, s7 INTEGER NOT NULL, s8 INTEGER NOT NULL
        )
        """,
    ),
    _index_held_ops,
)

_V12: Final = Step(
    "records held by hash outside any held chain: dependencies, link ops, governance",
    (
        # ``Store.keep_loose``: a record this node holds without its author's chain, as its
        # three parts (as in ``records``); ``why`` is the strongest reason it is kept
        # (1 fetched to judge another record: evictable; 2 a link held at its base, which is
        # on this node's arc; 3 data every judge needs), ``kept_at`` when it was last kept
        # (node clock, µs). A hash is here or in ``records``, never both.
        """
        CREATE TABLE loose_records (
            hash      BLOB PRIMARY KEY CHECK (length(hash) = 32),
            author    BLOB NOT NULL CHECK (length(author) = 32),
            seq       INTEGER NOT NULL CHECK (seq >= 0),
            why       INTEGER NOT NULL CHECK (why IN (1, 2, 3)),
            kept_at   INTEGER NOT NULL,
            action    BLOB NOT NULL,
            signature BLOB NOT NULL,
            entry     BLOB
        ) WITHOUT ROWID
        """,
        "CREATE INDEX loose_by_author ON loose_records (author, seq)",
        "CREATE INDEX loose_by_age ON loose_records (why, kept_at)",
    ),
)

_V13: Final = Step(
    "records addressed to an agent hosted here held loose: a bill, a bill's decline",
    (
        # ``why`` may also be 4: a record addressed to an agent this node hosts (a bill to its
        # payer, a bill's decline to the bill's payee), never evicted. SQLite cannot change a
        # CHECK in place, so the table is copied into one with the wider CHECK.
        """
        CREATE TABLE loose_records_v13 (
            hash      BLOB PRIMARY KEY CHECK (length(hash) = 32),
            author    BLOB NOT NULL CHECK (length(author) = 32),
            seq       INTEGER NOT NULL CHECK (seq >= 0),
            why       INTEGER NOT NULL CHECK (why IN (1, 2, 3, 4)),
            kept_at   INTEGER NOT NULL,
            action    BLOB NOT NULL,
            signature BLOB NOT NULL,
            entry     BLOB
        ) WITHOUT ROWID
        """,
        "INSERT INTO loose_records_v13 SELECT hash, author, seq, why, kept_at, action, signature,"
        " entry FROM loose_records",
        "DROP TABLE loose_records",
        "ALTER TABLE loose_records_v13 RENAME TO loose_records",
        "CREATE INDEX loose_by_author ON loose_records (author, seq)",
        "CREATE INDEX loose_by_age ON loose_records (why, kept_at)",
    ),
)

MIGRATIONS: Sequence[Step] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13,
)  # fmt: skip
"""Every schema step in order; the current schema version is ``len(MIGRATIONS)``."""


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the file behind ``conn`` (in autocommit mode) to the current schema; its version.

    ``where`` names the file in error messages. Raises ``StorageError`` if the
    file is not a conode store or is from a newer conode; ``sqlite3.Error``
    passes through for the caller to translate.
    """
    steps = MIGRATIONS
    target = len(steps)
    version = _check(conn, where, target)
    if version == target:
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _check(conn, where, target)  # another process may have migrated meanwhile
        for number, step in enumerate(steps[version:], version + 1):
            for statement in step.statements:
                conn.execute(statement)
            if step.rewrite is not None:
                try:
                    step.rewrite(conn)
                except StorageError as exc:  # say which file and step; keep the foreign cause
                    message = f"cannot migrate {where} to v{number}: {exc}"
                    raise StorageError(message) from exc.__cause__
        # PRAGMA takes no parameters; both values are our own integers
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return target


def _check(conn: sqlite3.Connection, where: str, target: int) -> int:
    """The file's schema version, after refusing files that are not ours or are too new."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if version == 0 and app_id == 0:
        if conn.execute("SELECT 1 FROM sqlite_schema LIMIT 1").fetchone() is not None:
            raise StorageError(f"{where} is an SQLite database but not a conode store")
        return 0
    if app_id != APPLICATION_ID:
        raise StorageError(f"{where} is an SQLite database but not a conode store")
    if version > target:
        raise StorageError(
            f"{where} has store schema version {version}, newer than this conode "
            f"understands ({target}): upgrade conode to open it"
        )
    return version

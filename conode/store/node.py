"""``NodeStore``: the store with the node's other tables (a shell, like ``Store``).

Beyond the chains: records received ahead of their place (``pending``),
validation receipts, records still being published, warrants, known peers,
countersigning sessions, a few metadata values, the operator's approved app
bundles and app bundles by hash. It is also the node's ``ValidationContext``:
every record in the chains table passed the rules before it was appended, so
``validated`` is true of each of them (a record of a pinned app the node does
not run passed every rule but its app's own: see ``conode.apps.hosting``).
It implements ``conode.apps.sdk.ApprovalStore``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from conode.chain import ChainHead, Record
from conode.errors import EncodingError
from conode.hashes import ActionHash, AgentKey, BundleHash
from conode.store.appstate import AppState
from conode.store.search import TextIndex
from conode.store.sharded import Loose, ShardStore

__all__ = ["MAX_BUNDLE", "NodeStore", "QueuedRecord", "Receipt"]

MAX_BUNDLE = 2 << 20
"""The largest app bundle a node keeps or serves: 2 MiB of source is a great deal of code."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """An authority's signed statement that it validated a record."""

    record: ActionHash
    authority: AgentKey
    valid: bool
    at: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """A record on the publishing queue: its place in the queue (``(created_at, hash)``, the
    order pages are read in), and the authorities whose receipts for it are held."""

    hash: ActionHash
    place: tuple[int, ActionHash]
    receipted: frozenset[AgentKey]


PAY_REQUEST_KEEP_US: Final = 7 * 86_400 * 10**6
"""How long a pay request's idempotency key is remembered (a week)."""


class NodeStore(ShardStore):
    """The node's one SQLite file: chains plus the DHT and session tables."""

    __slots__ = ()

    # -- validation context ----------------------------------------------------------------

    def get_record(self, action: ActionHash) -> Record | None:
        """A held record (of a held chain, or loose), by its action hash."""
        return self.get(action)

    def get_genesis(self, agent: AgentKey) -> Record | None:
        """The genesis record of a held chain, or one held loose."""
        return next(self.records(agent, 0), None) or self.loose_genesis(agent)

    def validated(self, action: ActionHash) -> bool:
        """Every record held passed the rules before it was stored: a chain's when it was
        appended; a loose one when kept (judged here, or served by its author's authority)."""
        return True

    # -- chains summary (gossip) ------------------------------------------------------------

    def heads(self) -> list[ChainHead]:
        """The head of every held chain, in author order."""
        with self._mapped("list the heads in"):
            rows = self._open_conn().execute(
                "SELECT author, seq, hash, timestamp, closed FROM chains ORDER BY author"
            )
            return [
                ChainHead(AgentKey(a), seq, ActionHash(h), ts, bool(closed))
                for a, seq, h, ts, closed in rows
            ]

    def hash_at(self, agent: AgentKey, seq: int) -> ActionHash | None:
        """The action hash held at ``seq`` of ``agent``'s chain."""
        with self._mapped("read"):
            row = (
                self._open_conn()
                .execute("SELECT hash FROM records WHERE author = ? AND seq = ?", (agent.raw, seq))
                .fetchone()
            )
        return None if row is None else ActionHash(row[0])

    def records_of_type(
        self, entry_type: str, authors: Collection[AgentKey] | None = None
    ) -> Iterator[Record]:
        """Every held record of one entry type, or only ``authors``' (through the entry-type index):
        those of held chains, then those held loose for every judge (``Loose.GLOBAL``: the
        governance records of chains a sharded node does not hold), which a view of proposals,
        votes or the log must count as any other, and those addressed to an agent hosted here
        (``Loose.ADDRESSED``: the bills a view of bills shows)."""
        sql = "SELECT hash, action, signature, entry FROM records WHERE entry_type = ?"
        params: list[object] = [entry_type]
        if authors is not None:
            keys = sorted({a.raw for a in authors})
            sql += f" AND author IN ({', '.join('?' * len(keys))})"
            params += keys
        with self._mapped("read records from"):
            rows = self._open_conn().execute(sql + " ORDER BY author, seq", params).fetchall()
        for row in rows:
            yield Record.from_bytes(self._read_blob(*row))
        for why in (Loose.GLOBAL, Loose.ADDRESSED) if self._holds_loose else ():
            for record in self.loose_records(why):
                if record.action.entry_type == entry_type and (
                    authors is None or record.action.author in authors
                ):
                    yield record

    # -- pay requests by idempotency key ----------------------------------------------------

    def pay_request(self, key: str) -> tuple[bytes, bytes, bytes | None] | None:
        """What a ``pay`` with idempotency ``key`` asked (a digest), the session it started and
        its outcome (None: not decided yet); None if no pay had that key."""
        with self._mapped("read a pay request from"):
            row = self._open_conn().execute(
                "SELECT request, session, outcome FROM pay_requests WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]), row[2] and bytes(row[2]))

    def start_pay_request(self, key: str, request: bytes, session: bytes, at: int) -> None:
        """Keep ``key``'s request and session, durably, before the session speaks (again, for a
        new session after one refused: its outcome is forgotten); forget keys older than
        ``PAY_REQUEST_KEEP_US``."""
        with self._transaction("write a pay request to") as conn:
            conn.execute("DELETE FROM pay_requests WHERE at < ?", (at - PAY_REQUEST_KEEP_US,))
            conn.execute(
                "INSERT INTO pay_requests (key, request, session, outcome, at) VALUES (?, ?, ?, NULL, ?)"
                " ON CONFLICT (key) DO UPDATE SET session = excluded.session, outcome = NULL,"
                " at = excluded.at",
                (key, request, session, at),
            )

    def end_pay_request(self, key: str, outcome: bytes) -> None:
        """Keep the outcome of ``key``'s payment (what a retry with that key is answered)."""
        with self._transaction("write a pay outcome to") as conn:
            conn.execute("UPDATE pay_requests SET outcome = ? WHERE key = ?", (outcome, key))

    # -- pending records ----------------------------------------------------------------------

    def add_pending(self, record: Record, now: int, *, stranger: bool = False) -> None:
        """Hold a record that does not fit its chain yet (``stranger``: its author's genesis is
        not held; such records are counted apart, ``pending_counts``)."""
        with self._transaction("hold a pending record in") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pending (hash, author, seq, record, received_at, stranger) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.hash.raw,
                    record.action.author.raw,
                    record.action.seq,
                    record.to_bytes(),
                    now,
                    int(stranger),
                ),
            )

    def pending(self, agent: AgentKey, *, upto: int | None = None, limit: int = -1) -> list[Record]:
        """``agent``'s pending records in seq order (undecodable rows are dropped): those at
        seqs up to ``upto`` if given, at most ``limit`` (all if negative)."""
        with self._mapped("read pending records from"):
            rows = (
                self._open_conn()
                .execute(
                    "SELECT record FROM pending WHERE author = ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (agent.raw, (1 << 62) if upto is None else upto, limit),
                )
                .fetchall()
            )
        records = []
        for (blob,) in rows:
            try:
                records.append(Record.from_bytes(blob))
            except EncodingError:
                continue
        return records

    def drop_pending(self, hashes: list[ActionHash]) -> None:
        with self._transaction("drop pending records from") as conn:
            conn.executemany("DELETE FROM pending WHERE hash = ?", [(h.raw,) for h in hashes])

    def drop_pending_below(self, agent: AgentKey, seq: int) -> None:
        """Drop ``agent``'s pending records at seqs below ``seq`` (its chain is past them)."""
        with self._transaction("drop pending records from") as conn:
            conn.execute("DELETE FROM pending WHERE author = ? AND seq < ?", (agent.raw, seq))

    def expire_pending(self, *, strangers_before: int, others_before: int) -> int:
        """Drop pending records received before the given times (µs), strangers' and others';
        how many were dropped."""
        with self._transaction("expire pending records in") as conn:
            cursor = conn.execute(
                "DELETE FROM pending WHERE (stranger = 1 AND received_at < ?) "
                "OR (stranger = 0 AND received_at < ?)",
                (strangers_before, others_before),
            )
            return int(cursor.rowcount)

    def pending_count(self) -> int:
        with self._mapped("count pending records in"):
            return int(self._open_conn().execute("SELECT count(*) FROM pending").fetchone()[0])

    def pending_counts(self, agent: AgentKey) -> tuple[int, int, int]:
        """How many pending records there are: of ``agent``, in all, and of strangers."""
        with self._mapped("count pending records in"):
            conn = self._open_conn()
            (mine,) = conn.execute(
                "SELECT count(*) FROM pending WHERE author = ?", (agent.raw,)
            ).fetchone()
            (total,) = conn.execute("SELECT count(*) FROM pending").fetchone()
            (strangers,) = conn.execute(
                "SELECT count(*) FROM pending WHERE stranger = 1"
            ).fetchone()
        return int(mine), int(total), int(strangers)

    # -- publishing and receipts ------------------------------------------------------------------

    def publishing(self) -> list[ActionHash]:
        with self._mapped("read the publishing queue of"):
            rows = self._open_conn().execute("SELECT record FROM publishing ORDER BY created_at")
            return [ActionHash(r) for (r,) in rows]

    def publishing_count(self) -> int:
        """How many records are on the publishing queue."""
        with self._mapped("read the publishing queue of"):
            (count,) = self._open_conn().execute("SELECT count(*) FROM publishing").fetchone()
        return int(count)

    def publishing_page(self, after: tuple[int, ActionHash] | None, limit: int) -> list[QueuedRecord]:
        """The next ``limit`` records of the publishing queue after ``after`` (a ``QueuedRecord.place``;
        None: from the start), oldest first, with who receipted each: one indexed read, so a
        page costs the same whatever the queue holds."""
        created_at, record = (-1, b"") if after is None else (after[0], after[1].raw)
        with self._mapped("read the publishing queue of"):
            rows = (
                self._open_conn()
                .execute(
                    "SELECT p.created_at, p.record, r.authority FROM ("
                    "  SELECT created_at, record FROM publishing"
                    "  WHERE (created_at, record) > (?, ?) ORDER BY created_at, record LIMIT ?"
                    ") AS p LEFT JOIN receipts AS r ON r.record = p.record "
                    "ORDER BY p.created_at, p.record",
                    (created_at, record, limit),
                )
                .fetchall()
            )
        page: dict[bytes, tuple[int, set[AgentKey]]] = {}
        for at, raw, authority in rows:
            receipted = page.setdefault(raw, (at, set()))[1]
            if authority is not None:
                receipted.add(AgentKey(authority))
        out = []
        for raw, (at, receipted) in page.items():
            record_hash = ActionHash(raw)
            out.append(QueuedRecord(record_hash, (at, record_hash), frozenset(receipted)))
        return out

    def done_publishing(self, records: Sequence[ActionHash]) -> None:
        """Take records off the publishing queue, in one transaction."""
        if not records:
            return
        with self._transaction("update the publishing queue of") as conn:
            conn.executemany("DELETE FROM publishing WHERE record = ?", [(r.raw,) for r in records])

    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts (a peer's reply to one publish) in one transaction: one fsync, not one each."""
        if not receipts:
            return
        with self._transaction("store receipts in") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO receipts (record, authority, valid, at, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (r.record.raw, r.authority.raw, int(r.valid), r.at, r.signature)
                    for r in receipts
                ],
            )

    def receipts(self, record: ActionHash) -> list[Receipt]:
        with self._mapped("read receipts from"):
            rows = (
                self._open_conn()
                .execute(
                    "SELECT authority, valid, at, signature FROM receipts WHERE record = ?",
                    (record.raw,),
                )
                .fetchall()
            )
        return [Receipt(record, AgentKey(a), bool(v), at, sig) for a, v, at, sig in rows]

    # -- warrants ------------------------------------------------------------------------------------

    def add_warrant(
        self, warrant_hash: bytes, offender: AgentKey, warrant: bytes, now: int
    ) -> bool:
        """Keep a checked warrant; True if it was new."""
        with self._transaction("store a warrant in") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO warrants (hash, offender, warrant, received_at) VALUES (?, ?, ?, ?)",
                (warrant_hash, offender.raw, warrant, now),
            )
            return cursor.rowcount == 1

    def warranted(self, agent: AgentKey) -> bool:
        with self._mapped("read warrants from"):
            row = (
                self._open_conn()
                .execute("SELECT 1 FROM warrants WHERE offender = ? LIMIT 1", (agent.raw,))
                .fetchone()
            )
        return row is not None

    def warrants(self) -> list[tuple[bytes, AgentKey, bytes]]:
        """Every warrant held: (hash, offender, warrant bytes)."""
        with self._mapped("read warrants from"):
            rows = self._open_conn().execute(
                "SELECT hash, offender, warrant FROM warrants ORDER BY hash"
            )
            return [(h, AgentKey(o), w) for h, o, w in rows]

    # -- peers -----------------------------------------------------------------------------------------

    def remember_peer(self, peer_id: str, addrs: list[str], now: int) -> None:
        with self._transaction("remember a peer in") as conn:
            conn.execute(
                "INSERT INTO peers (peer_id, addrs, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET addrs = excluded.addrs, last_seen = excluded.last_seen",
                (peer_id, "\n".join(addrs), now),
            )

    def forget_peer(self, peer_id: str) -> None:
        """Drop a remembered peer (one unreachable for longer than the node keeps trying)."""
        with self._transaction("forget a peer in") as conn:
            conn.execute("DELETE FROM peers WHERE peer_id = ?", (peer_id,))

    def known_peers(self) -> list[tuple[str, list[str], int]]:
        with self._mapped("read peers from"):
            rows = self._open_conn().execute(
                "SELECT peer_id, addrs, last_seen FROM peers ORDER BY peer_id"
            )
            return [(p, [a for a in addrs.split("\n") if a], seen) for p, addrs, seen in rows]

    # -- sessions and metadata ------------------------------------------------------------------------

    def sessions(self) -> Iterator[tuple[bytes, AgentKey, bytes]]:
        """Every saved countersigning session: (id, agent, record bytes)."""
        with self._mapped("read sessions from"):
            rows = self._open_conn().execute("SELECT id, agent, record FROM sessions").fetchall()
        for session_id, agent, record in rows:
            yield session_id, AgentKey(agent), record

    def save_session(self, session_id: bytes, agent: AgentKey, record: bytes) -> None:
        self.append([], sessions={session_id: (agent, record)})

    def get_meta(self, key: str) -> bytes | None:
        with self._mapped("read metadata from"):
            row = (
                self._open_conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            )
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        with self._transaction("write metadata to") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- apps: approvals (ApprovalStore) and bundles by hash ------------------------------------------

    def approved_bundles(self) -> set[BundleHash]:
        """Every bundle hash the operator approved."""
        with self._mapped("read app approvals from"):
            rows = self._open_conn().execute("SELECT bundle FROM app_approvals").fetchall()
        return {BundleHash(raw) for (raw,) in rows}

    def approvals(self) -> list[tuple[BundleHash, str, str, int]]:
        """Every approval: (bundle hash, app id, version, approved at), oldest first."""
        with self._mapped("read app approvals from"):
            rows = self._open_conn().execute(
                "SELECT bundle, app_id, version, approved_at FROM app_approvals "
                "ORDER BY approved_at, bundle"
            )
            return [(BundleHash(b), app_id, version, at) for b, app_id, version, at in rows]

    def approve_bundle(
        self, bundle: BundleHash, app_id: str, version: str, now: int = 0
    ) -> None:
        """Record the operator's approval of this exact bundle (approving twice keeps the first)."""
        with self._transaction("record an app approval in") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO app_approvals (bundle, app_id, version, approved_at) "
                "VALUES (?, ?, ?, ?)",
                (bundle.raw, app_id, version, now),
            )

    def withdraw_bundle(self, bundle: BundleHash) -> None:
        """Forget an approval (the node stops running that code at its next start)."""
        with self._transaction("withdraw an app approval in") as conn:
            conn.execute("DELETE FROM app_approvals WHERE bundle = ?", (bundle.raw,))

    def keep_bundle(self, bundle: BundleHash, data: bytes) -> None:
        """Keep a bundle's bytes under its hash; ``ValueError`` if they do not hash to it.

        The caller checks the hash against the pin it fetched for; this check
        makes it impossible to keep bytes under any other name by mistake.
        """
        if len(data) > MAX_BUNDLE:
            raise ValueError(f"a bundle of {len(data)} bytes is over the {MAX_BUNDLE}-byte limit")
        if BundleHash.of(data) != bundle:
            raise ValueError(f"these bytes are not bundle {bundle}")
        with self._transaction("keep an app bundle in") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO app_bundles (bundle, data) VALUES (?, ?)",
                (bundle.raw, data),
            )

    def bundle(self, bundle: BundleHash) -> bytes | None:
        """The kept bytes of a bundle, if any."""
        with self._mapped("read an app bundle from"):
            row = (
                self._open_conn()
                .execute("SELECT data FROM app_bundles WHERE bundle = ?", (bundle.raw,))
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def bundles(self) -> list[BundleHash]:
        """The hashes of every kept bundle."""
        with self._mapped("read app bundles from"):
            rows = self._open_conn().execute("SELECT bundle FROM app_bundles ORDER BY bundle")
            return [BundleHash(raw) for (raw,) in rows]

    # -- records by position in the file (for indexes built beside the chains) ------------------------

    def records_after(
        self, row_id: int, entry_types: Collection[str], limit: int = 1_000
    ) -> list[tuple[int, Record]]:
        """Held records of ``entry_types`` stored after row ``row_id``, in storing order, with their rows.

        An index kept beside the chains (the text index) remembers the last
        row it saw and asks for what came after.
        """
        types = sorted(set(entry_types))
        if not types:
            return []
        sql = (
            "SELECT id, hash, action, signature, entry FROM records "
            f"WHERE id > ? AND entry_type IN ({', '.join('?' * len(types))}) ORDER BY id LIMIT ?"
        )
        with self._mapped("read records from"):
            rows = self._open_conn().execute(sql, (row_id, *types, limit)).fetchall()
        return [(rid, Record.from_bytes(self._read_blob(*parts))) for rid, *parts in rows]

    def text_index(self) -> TextIndex:
        """The full-text index of app records in this file (``conode.store.search``)."""
        return TextIndex(self._open_conn())

    def app_state(self, app_id: str) -> AppState:
        """One app's own key-value state in this file (``conode.store.appstate``)."""
        return AppState(self._open_conn(), app_id)

"""``ShardStore``: what a node of a sharded network holds besides whole chains.

A sharded node holds its share of the chains (``conode.store.sqlite.Store``)
and also records outside any chain it holds (``loose_records``; ``Loose`` says
why): dependencies fetched to judge, links at a base on its arc, governance
every judge needs. ``Store.get`` and the link reads see them; they are kept,
released and evicted here. Here too are the reads of the DHT ops index
(``conode.store.heldops``, kept up to date by ``Store``'s writes) that range
reconciliation compares, and the dropping of a chain that left the arc.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from enum import IntEnum

from conode.chain import Record
from conode.chain.ops import location
from conode.hashes import ActionHash, AgentKey
from conode.store import statements as sql
from conode.store import stored
from conode.store.heldops import Bound, HeldOps
from conode.store.sqlite import Store

__all__ = ["Loose", "ShardStore"]


class Loose(IntEnum):
    """Why a record is held by hash outside any held chain; a record kept for several keeps the strongest."""

    DEPENDENCY = 1
    """Fetched to judge another record (a counterparty's previous credit, a genesis): evictable."""
    LINK = 2
    """A link held at its base, whose location is on this node's arc: indexed by its base."""
    GLOBAL = 3
    """Data every judge needs (the governance log): never evicted."""
    ADDRESSED = 4
    """A record addressed to an agent hosted here (a bill to its payer, a bill's decline to the
    bill's payee): shown to that agent whichever chains the node holds, never evicted."""


def _drop(_record: Record) -> Loose | None:
    """Keep none of a forgotten chain's records."""
    return None


class ShardStore(Store):
    """A ``Store`` with the records a sharded node holds loose, and its held ops; see the module."""

    __slots__ = ()

    def record_total(self) -> int:
        """How many records the store holds: in chains, and loose."""
        with self._mapped("count records in"):
            conn = self._open_conn()
            (number,) = conn.execute("SELECT count(*) FROM records").fetchone()
            if self._holds_loose:
                number += conn.execute("SELECT count(*) FROM loose_records").fetchone()[0]
            return int(number)

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
            return self._keep_loose(conn, records, why, now)

    def _keep_loose(
        self, conn: sqlite3.Connection, records: Iterable[Record], why: Loose, now: int
    ) -> int:
        new = 0
        for given in records:
            record = stored.portable_form(given)
            digest = record.hash.raw
            if conn.execute(sql.IN_CHAINS, (digest,)).fetchone() is not None:
                continue
            new += conn.execute(sql.IN_LOOSE, (digest,)).fetchone() is None
            action = record.action
            conn.execute(
                sql.KEEP_LOOSE,
                (digest, action.author.raw, action.seq, int(why), now, record.action_bytes,
                 record.signature, record.entry),
            )  # fmt: skip
            if why is Loose.LINK:
                links = stored.link_rows([record])
                conn.executemany(sql.INSERT_LINK, links)
                self._held.add((location(base[1:]), digest) for base, _type, _r in links)
        return new

    def release_loose(self, hashes: Iterable[ActionHash]) -> None:
        """Keep these loose records only as dependencies (evictable): a link whose base left the arc."""
        with self._transaction("release records in") as conn:
            for h in hashes:
                row = conn.execute(sql.SELECT_LOOSE_WHY, (h.raw,)).fetchone()
                if row is None or row[0] != Loose.LINK:
                    continue
                record = self._read_record(*row[1:])
                links = stored.link_rows([record])
                conn.executemany(sql.DELETE_LINK, links)
                self._held.remove((location(base[1:]), h.raw) for base, _type, _r in links)
                conn.execute(sql.SET_LOOSE_WHY, (int(Loose.DEPENDENCY), h.raw))

    def evict_loose(self, before: int) -> int:
        """Forget the dependencies kept before ``before`` (node clock, µs); how many went."""
        with self._transaction("evict records from") as conn:
            cursor = conn.execute(sql.EVICT_LOOSE, (int(Loose.DEPENDENCY), before))
            return int(cursor.rowcount)

    def loose_counts(self) -> dict[Loose, int]:
        """How many records are held loose, for each reason."""
        if not self._holds_loose:
            return {}
        with self._mapped("count records in"):
            rows = self._open_conn().execute(sql.COUNT_LOOSE)
            return {Loose(why): int(count) for why, count in rows}

    def loose_records(self, why: Loose) -> list[Record]:
        """The records held loose for ``why``, in hash order."""
        with self._mapped("read records from"):
            rows = self._open_conn().execute(sql.SELECT_LOOSE_FOR, (int(why),)).fetchall()
        return [self._read_record(*row) for row in rows]

    def loose_genesis(self, agent: AgentKey) -> Record | None:
        """A genesis record of ``agent`` held loose (the lowest hash, if a fork left several)."""
        if not self._holds_loose:
            return None
        with self._mapped("read a record from"):
            row = self._open_conn().execute(sql.SELECT_LOOSE_GENESIS, (agent.raw,)).fetchone()
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

    def forget_chain(
        self, author: AgentKey, *, keep: Callable[[Record], Loose | None] = _drop, now: int = 0
    ) -> int:
        """Drop ``author``'s chain whole (records, head, kept state, link rows, ops); how many records.

        The records ``keep`` gives a reason for stay, held loose for it (kept at
        ``now``): the governance records every node holds whichever chains it holds
        (``Loose.GLOBAL``), a bill to an agent hosted here (``Loose.ADDRESSED``). One
        transaction. For a node shedding a chain that left its arc: whether the
        chain's new holders have it is the caller's to know, not the store's.
        """
        with self._transaction("drop a chain from") as conn:
            rows = conn.execute(sql.SELECT_PARTS, (author.raw, 0)).fetchall()
            records = [self._read_record(*row) for row in rows]
            if self._indexes_links:
                conn.executemany(sql.DELETE_LINK, stored.link_rows(records))
            if self._indexes_ops:
                self._held.remove(stored.op_rows(records))
            conn.execute("DELETE FROM chains WHERE author = ?", (author.raw,))
            conn.execute("DELETE FROM records WHERE author = ?", (author.raw,))
            for record in records:
                why = keep(record)
                if why is not None:
                    self._keep_loose(conn, [record], why, now)
        return len(records)

"""``HeldOps``: the index of the DHT ops a store holds, answering range counts, sums and keys
in time that grows with the sectors a range covers, not with the ops in it (a shell).

How it works:

- ``held_ops`` has one row per op held: ``(loc, hash)``, the op's basis
  location and the record's action hash (``conode.chain.ops``), in key order
  (the primary key). An op's **key** is the location as 4 bytes big-endian
  then the 32 hash bytes, read as a 288-bit number: the order and the sums of
  ``conode.dht.itemset``.
- ``held_sectors`` keeps, for each **sector** of 2**20 locations that holds
  any op, the number of ops in it and the sums of their keys' nine 32-bit
  limbs (``s0`` least significant; ``s8`` is the location). Limb sums are
  plain SQL integers (a sum overflows only past 2**31 ops in one sector), so
  a range of whole sectors is summed by SQLite in one query.
- A range ``[lo, hi)`` of keys is its whole sectors and at most two partial
  sectors at its ends (scanned from ``held_ops``): a full-arc node's
  fingerprint over 10**6 ops reads a few hundred ops, not 10**6. The whole
  sectors come from running totals of the sector rows, read once and kept
  in memory until the index changes (a write through this object, or a
  commit by another connection: ``PRAGMA data_version``).
- Writers (``add``, ``remove``) run inside the caller's transaction and keep
  both tables in step: the sector rows always equal what ``held_ops`` holds
  (``tests/node/test_held_ops.py`` recomputes them).

A bound is ``(location, hash prefix)``: the keys at or above the location
padded with the prefix and zero bytes; ``None`` as an upper bound is the end
of the ring. Ranges never wrap past location 0 (the caller splits them).
"""

from __future__ import annotations

import bisect
import sqlite3
import struct
from collections.abc import Iterable
from itertools import accumulate
from typing import Final

__all__ = ["SECTOR_BITS", "Bound", "HeldOps", "key_value"]

SECTOR_BITS: Final = 20
"""A sector is the 2**20 locations sharing their top 12 bits: 4 096 sectors on the ring."""
_SECTORS: Final = 1 << (32 - SECTOR_BITS)
_LIMBS: Final = 9
_WORDS: Final = struct.Struct(">8I")

Bound = tuple[int, bytes]
"""A place in key order: (location, hash prefix of 0 to 32 bytes)."""

_SUMS: Final = ", ".join(f"s{i}" for i in range(_LIMBS))
_UPSERT_SECTOR: Final = (
    f"INSERT INTO held_sectors (sector, count, {_SUMS}) VALUES (?, ?, {', '.join('?' * _LIMBS)}) "
    "ON CONFLICT (sector) DO UPDATE SET count = count + excluded.count, "
    + ", ".join(f"s{i} = s{i} + excluded.s{i}" for i in range(_LIMBS))
)
_UPDATE_SECTOR: Final = (
    "UPDATE held_sectors SET count = count + ?, "
    + ", ".join(f"s{i} = s{i} + ?" for i in range(_LIMBS))
    + " WHERE sector = ?"
)
_INSERT_OP: Final = "INSERT OR IGNORE INTO held_ops (loc, hash) VALUES (?, ?)"
_DELETE_OP: Final = "DELETE FROM held_ops WHERE loc = ? AND hash = ?"
_IN_RANGE: Final = "(loc, hash) >= (?, ?) AND (loc, hash) < (?, ?)"
_FROM: Final = "(loc, hash) >= (?, ?)"
_END: Final = (1 << 32, b"")


def key_value(loc: int, digest: bytes) -> int:
    """An op's key as a number: the location, then the hash bytes."""
    return (loc << 256) | int.from_bytes(digest, "big")


def _limbs(loc: int, digest: bytes) -> tuple[int, ...]:
    """The key's nine 32-bit limbs, least significant first."""
    return (*reversed(_WORDS.unpack(digest)), loc)


class _Totals:
    """Running totals of the sector rows: ``counts[i]``/``sums[i]`` are of the sectors before ``sectors[i]``."""

    __slots__ = ("counts", "sectors", "sums")

    def __init__(self, rows: list[tuple[int, ...]]) -> None:
        self.sectors = [row[0] for row in rows]
        self.counts = list(accumulate((row[1] for row in rows), initial=0))
        self.sums = list(
            accumulate(
                (sum(limb << (32 * i) for i, limb in enumerate(row[2:])) for row in rows), initial=0
            )
        )

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Indexes ``[i, j)`` of the held sectors from ``first`` up to ``last``."""
        return bisect.bisect_left(self.sectors, first), bisect.bisect_left(self.sectors, last)


class HeldOps:
    """The held-ops index of one store connection (see the module docstring); no transactions of its own.

    One object per connection, so its kept totals see every write made through it.
    """

    __slots__ = ("_conn", "_totals", "_version", "_writes")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._totals: _Totals | None = None
        self._version: tuple[int, int] | None = None
        self._writes = 0

    # -- writing (inside the caller's transaction) ------------------------------------------------

    def add(self, ops: Iterable[tuple[int, bytes]]) -> int:
        """Hold these ops (location, hash); those already held are skipped. How many were new."""
        return self._change(ops, _INSERT_OP, +1)

    def remove(self, ops: Iterable[tuple[int, bytes]]) -> int:
        """Stop holding these ops; those not held are skipped. How many were removed."""
        return self._change(ops, _DELETE_OP, -1)

    def _change(self, ops: Iterable[tuple[int, bytes]], sql: str, sign: int) -> int:
        self._writes += 1  # the kept totals are stale from here on, committed or rolled back
        sectors: dict[int, list[int]] = {}
        conn = self._conn
        for loc, digest in ops:
            if conn.execute(sql, (loc, digest)).rowcount != 1:
                continue
            sums = sectors.setdefault(loc >> SECTOR_BITS, [0] * (_LIMBS + 1))
            sums[0] += sign
            for i, limb in enumerate(_limbs(loc, digest), 1):
                sums[i] += sign * limb
        if sign > 0:
            conn.executemany(_UPSERT_SECTOR, [(sector, *sums) for sector, sums in sectors.items()])
        else:  # the sectors hold these ops, so their rows exist
            conn.executemany(_UPDATE_SECTOR, [(*sums, sector) for sector, sums in sectors.items()])
            conn.executemany(
                "DELETE FROM held_sectors WHERE sector = ? AND count = 0",
                [(sector,) for sector in sectors],
            )
        return sum(abs(sums[0]) for sums in sectors.values())

    # -- reading ---------------------------------------------------------------------------------

    def total(self) -> int:
        """How many ops are held."""
        return self._kept().counts[-1]

    def _kept(self) -> _Totals:
        """The running totals of the sector rows, read again if the index may have changed."""
        (data_version,) = self._conn.execute("PRAGMA data_version").fetchone()
        version = (int(data_version), self._writes)
        if self._totals is None or self._version != version:
            rows = self._conn.execute(
                f"SELECT sector, count, {_SUMS} FROM held_sectors ORDER BY sector"
            ).fetchall()
            self._totals, self._version = _Totals(rows), version
        return self._totals

    def count(self, lo: Bound, hi: Bound | None) -> int:
        """How many held ops have keys in ``[lo, hi)``."""
        return self.summary(lo, hi, sums=False)[1]

    def summary(self, lo: Bound, hi: Bound | None, *, sums: bool = True) -> tuple[int, int]:
        """(sum of keys, count) of the held ops in ``[lo, hi)`` (the sum is 0 if not ``sums``)."""
        upper = _END if hi is None else hi
        if upper <= lo:
            return 0, 0
        first, last = _whole_sectors(lo, upper)
        if first >= last:
            return self._scan(lo, upper, sums)
        total, count = self._scan(lo, (first << SECTOR_BITS, b""), sums)
        sector_total, sector_count = self._sectors(first, last)
        tail_total, tail_count = self._scan((last << SECTOR_BITS, b""), upper, sums)
        return total + sector_total + tail_total, count + sector_count + tail_count

    def keys(self, lo: Bound, hi: Bound | None, offset: int, limit: int) -> list[tuple[int, bytes]]:
        """The held ops in ``[lo, hi)`` from the ``offset``-th on, at most ``limit``, in key order."""
        upper = _END if hi is None else hi
        if upper <= lo or limit <= 0:
            return []
        start = lo
        first, last = _whole_sectors(lo, upper)
        if first < last:
            head = self._scan(lo, (first << SECTOR_BITS, b""), False)[1]
            if offset >= head:
                totals = self._kept()
                i, j = totals.span(first, last)
                target = totals.counts[i] + offset - head
                k = bisect.bisect_right(totals.counts, target, i, j + 1) - 1
                if k < j:  # it lands in a whole sector
                    start, offset = (totals.sectors[k] << SECTOR_BITS, b""), target - totals.counts[k]
                else:  # past the whole sectors
                    start, offset = (last << SECTOR_BITS, b""), target - totals.counts[j]
        if upper == _END:
            sql = f"SELECT loc, hash FROM held_ops WHERE {_FROM} ORDER BY loc, hash LIMIT ? OFFSET ?"
            params: tuple[object, ...] = (*start, limit, offset)
        else:
            sql = f"SELECT loc, hash FROM held_ops WHERE {_IN_RANGE} ORDER BY loc, hash LIMIT ? OFFSET ?"
            params = (*start, *upper, limit, offset)
        return [(loc, bytes(digest)) for loc, digest in self._conn.execute(sql, params)]

    def _scan(self, lo: Bound, hi: Bound, sums: bool) -> tuple[int, int]:
        """(sum, count) of ``[lo, hi)`` read op by op (a range within two sectors)."""
        if hi <= lo:
            return 0, 0
        params: tuple[object, ...]
        if hi == _END:
            where, params = _FROM, lo
        else:
            where, params = _IN_RANGE, (*lo, *hi)
        if not sums:
            row = self._conn.execute(f"SELECT count(*) FROM held_ops WHERE {where}", params)
            return 0, int(row.fetchone()[0])
        total = count = 0
        for loc, digest in self._conn.execute(f"SELECT loc, hash FROM held_ops WHERE {where}", params):
            total += key_value(loc, digest)
            count += 1
        return total, count

    def _sectors(self, first: int, last: int) -> tuple[int, int]:
        """(sum, count) of the whole sectors ``first`` to ``last - 1``, from the running totals."""
        totals = self._kept()
        i, j = totals.span(first, last)
        return totals.sums[j] - totals.sums[i], totals.counts[j] - totals.counts[i]


def _whole_sectors(lo: Bound, hi: Bound) -> tuple[int, int]:
    """The sectors ``[first, last)`` that lie wholly within ``[lo, hi)``."""
    loc, prefix = lo
    first = loc >> SECTOR_BITS
    if loc & ((1 << SECTOR_BITS) - 1) or prefix.strip(b"\0"):
        first += 1  # the bound is inside its sector: that sector is partial
    last = min(hi[0] >> SECTOR_BITS, _SECTORS)
    return first, last

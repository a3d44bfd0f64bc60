"""The store's index of held DHT ops (schema v11): a store-backed reconciliation view answers
exactly as the in-memory snapshot does, the sector sums always equal the ops, and appends,
imports, dropped chains and the migration keep it so."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store_links import ALICE, BOB, BREAD, TOOLS, Chain, market

import conode.store.migrations as migrations
from conode.chain.ops import location, op_locations
from conode.dht.arcs import RING, Arc
from conode.dht.itemset import HeldItems, IndexedItems, Item, KeyBound
from conode.dht.reconcile import Reconciler, Settings
from conode.hashes import ActionHash
from conode.store import MIGRATIONS, ShardStore
from conode.store.heldops import SECTOR_BITS, HeldOps, key_value


class Index:
    """``HeldOps`` on an in-memory connection, as the ``ItemIndex`` a store is."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        migrations.migrate(self.conn, ":memory:")
        self.ops = HeldOps(self.conn)

    def hold(self, items: set[Item]) -> None:
        self.ops.add((item.loc, item.hash.raw) for item in items)

    def held_count(self, lo: KeyBound, hi: KeyBound | None) -> int:
        return self.ops.count(lo, hi)

    def held_summary(self, lo: KeyBound, hi: KeyBound | None) -> tuple[int, int]:
        return self.ops.summary(lo, hi)

    def held_keys(self, lo: KeyBound, hi: KeyBound | None, offset: int, limit: int) -> list[tuple[int, bytes]]:
        return self.ops.keys(lo, hi, offset, limit)


def sectors_recomputed(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
    """Each sector's (count, sum of keys) recomputed from ``held_ops`` row by row."""
    found: dict[int, tuple[int, int]] = {}
    for loc, digest in conn.execute("SELECT loc, hash FROM held_ops"):
        count, total = found.get(loc >> SECTOR_BITS, (0, 0))
        found[loc >> SECTOR_BITS] = (count + 1, total + key_value(loc, digest))
    return found


def sectors_kept(conn: sqlite3.Connection) -> dict[int, tuple[int, int]]:
    """Each sector's (count, sum of keys) as ``held_sectors`` keeps it."""
    rows = conn.execute("SELECT sector, count, s0, s1, s2, s3, s4, s5, s6, s7, s8 FROM held_sectors")
    return {
        sector: (count, sum(limb << (32 * i) for i, limb in enumerate(limbs)))
        for sector, count, *limbs in rows
    }


# -- strategies: locations on and around sector edges, shared locations, long common prefixes -------

SECTOR = 1 << SECTOR_BITS
locations = st.one_of(
    st.integers(0, RING - 1),
    st.sampled_from([0, 1, SECTOR - 1, SECTOR, 5 * SECTOR, RING // 2, RING - SECTOR, RING - 1]),
    st.integers(0, 3).map(lambda k: 7 * SECTOR + k),  # a crowded sector
)
digests = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.builds(lambda tail: b"\xab" * 20 + tail, st.binary(min_size=12, max_size=12)),
    st.builds(lambda tail: bytes(31) + tail, st.binary(min_size=1, max_size=1)),  # near the zero prefix
)
items = st.builds(lambda loc, digest: Item(loc, ActionHash(digest)), locations, digests)
spans = st.one_of(
    st.just(Arc.full()),
    st.builds(Arc, st.integers(0, RING - 1), st.integers(1, RING - 1)),
    st.builds(  # spans starting and ending on sector edges
        Arc,
        st.sampled_from([0, SECTOR, 7 * SECTOR, RING - SECTOR]),
        st.sampled_from([1, SECTOR, RING // 2, RING - 1]),
    ),
    st.builds(lambda start: Arc(start, RING // 2), st.sampled_from([RING // 2 + 1, RING - 3])),  # wrapping
)


@settings(max_examples=150, deadline=None)
@given(st.lists(items, max_size=120, unique=True), spans, st.data())
def test_the_store_backed_view_answers_exactly_as_the_snapshot(
    held: list[Item], span: Arc, data: st.DataObject
) -> None:
    index = Index()
    index.hold(set(held))
    snapshot, live = HeldItems(held).within(span), IndexedItems(index).within(span)
    n = len(snapshot)
    assert len(live) == n
    assert live.end == snapshot.end
    assert live.keys(0, n) == snapshot.keys(0, n)
    for _ in range(6):
        first = data.draw(st.integers(0, n))
        last = data.draw(st.integers(first, n))
        assert live.summary(first, last) == snapshot.summary(first, last)
        assert live.fingerprint(first, last) == snapshot.fingerprint(first, last)
        assert live.keys(first, last) == snapshot.keys(first, last)
        if 0 < first < n:
            assert live.separator(first) == snapshot.separator(first)
        rel = data.draw(st.one_of(st.integers(0, span.length), st.sampled_from([0, span.length - 1])))
        prefix = data.draw(st.one_of(st.just(b""), digests.map(lambda d: d[: 1 + d[0] % 32])))
        assert live.position((rel, prefix)) == snapshot.position((rel, prefix))


@settings(max_examples=60, deadline=None)
@given(st.lists(items, max_size=200, unique=True), st.lists(st.integers(0, 199)), spans)
def test_sector_rows_always_equal_the_ops_held_as_ops_come_and_go(
    held: list[Item], dropped: list[int], span: Arc
) -> None:
    index = Index()
    index.hold(set(held))
    assert sectors_kept(index.conn) == sectors_recomputed(index.conn)
    gone = {held[i] for i in dropped if i < len(held)}
    assert index.ops.remove((i.loc, i.hash.raw) for i in gone) == len(gone)
    assert index.ops.remove((i.loc, i.hash.raw) for i in gone) == 0  # already gone: skipped
    assert index.ops.add((i.loc, i.hash.raw) for i in held[:3]) == len(set(held[:3]) & gone)
    assert sectors_kept(index.conn) == sectors_recomputed(index.conn)
    assert index.ops.total() == len(set(held) - gone) + len(set(held[:3]) & gone)


@settings(max_examples=60, deadline=None)
@given(st.lists(items, max_size=150, unique=True), st.lists(st.sampled_from(["a", "b", "both"]), max_size=150), spans)
def test_a_store_backed_side_reconciles_with_a_snapshot_side_to_the_exact_difference(
    pool: list[Item], sides: list[str], span: Arc
) -> None:
    a = {item for item, side in zip(pool, sides, strict=False) if side in ("a", "both")}
    b = {item for item, side in zip(pool, sides, strict=False) if side in ("b", "both")}
    index = Index()
    index.hold(a)
    small = Settings(branches=4, list_max=2, bulk_max=8, frame_limit=4096)
    first, message = Reconciler.initiate(IndexedItems(index), span, small)
    second, reply = Reconciler.accept(HeldItems(b), message, small)
    side = first
    while reply is not None:
        reply = side.receive(reply)
        side = second if side is first else first
    a_on, b_on = {i for i in a if span.contains(i.loc)}, {i for i in b if span.contains(i.loc)}
    assert first.have == a_on - b_on and first.need == b_on - a_on
    assert second.have == b_on - a_on and second.need == a_on - b_on


def test_a_large_store_backed_set_reconciles_a_small_difference_for_its_cost_not_the_sets() -> None:
    rnd = random.Random(7)
    common = {Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(20_000)}
    extra = {Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(3)}
    index = Index()
    index.hold(common | extra)
    first, message = Reconciler.initiate(IndexedItems(index), Arc.full())
    second, reply = Reconciler.accept(HeldItems(common), message)
    side = first
    while reply is not None:
        reply = side.receive(reply)
        side = second if side is first else first
    assert first.have == extra and second.need == extra and not first.need
    assert first.bytes_sent + second.bytes_sent < 20_000  # listing 20 003 keys would be ~700 KB


# -- the store keeps the index in its own transactions ---------------------------------------------


def held_rows(store: ShardStore) -> set[tuple[int, bytes]]:
    return set(store.held_keys((0, b""), None, 0, 1_000_000))


def ops_of(records: list) -> set[tuple[int, bytes]]:  # type: ignore[type-arg]
    return {(at, r.hash.raw) for r in records for at in op_locations(r)}


def raw_sectors(path: Path) -> Iterator[tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]]:
    conn = sqlite3.connect(path)
    try:
        yield sectors_kept(conn), sectors_recomputed(conn)
    finally:
        conn.close()


def test_appends_and_imports_hold_each_records_ops_and_a_dropped_chain_takes_its_own(tmp_path: Path) -> None:
    chains, links = market()
    alice, bob = chains
    path = tmp_path / "node.db"
    with ShardStore.open(path) as store:
        store.append(alice.records)
        store.import_chain(r.to_bytes() for r in bob.records)
        expected = ops_of(alice.records + bob.records)
        assert held_rows(store) == expected
        # a link is held twice: at its author and at its base
        bread = links["bread"][0]
        assert {(location(ALICE.public_key), bread.hash.raw), (location(BREAD.raw), bread.hash.raw)} <= expected
        assert store.held_total() == len(expected) > len(alice.records) + len(bob.records)
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        assert store.forget_chain(bob.head.author if bob.head else None) == len(bob.records)  # type: ignore[arg-type]
        assert held_rows(store) == ops_of(alice.records)
        assert store.head(bob.head.author) is None  # type: ignore[union-attr]
        assert store.links(TOOLS) == []  # bob's tools link went with his chain
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        # and the chain can come back whole
        store.import_chain(r.to_bytes() for r in bob.records)
        assert held_rows(store) == expected


def test_held_summary_of_the_whole_ring_is_the_sum_of_every_op_key(tmp_path: Path) -> None:
    alice = Chain(ALICE)
    for n in range(40):
        alice.item(f"loaf {n}")
    bob = Chain(BOB)
    bob.link(BREAD, alice.records[3])
    with ShardStore.open(tmp_path / "node.db") as store:
        store.append(alice.records + bob.records)
        ops = ops_of(alice.records + bob.records)
        assert store.held_summary((0, b""), None) == (sum(key_value(*op) for op in ops), len(ops))
        at = location(ALICE.public_key)
        assert store.held_count((at, b""), (at + 1, b"")) == len(alice.records)


def test_a_v10_file_gets_the_ops_it_holds_indexed_by_migration_v11(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    chains, _links = market()
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", tuple(MIGRATIONS[:10]))
        with ShardStore.open(path) as old:
            assert old.schema_version == 10
            old.append(chains[0].records)
            old.import_chain(r.to_bytes() for r in chains[1].records)
    with ShardStore.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 11
        assert held_rows(store) == ops_of(chains[0].records + chains[1].records)
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        more = chains[0]
        more.link(TOOLS, more.records[1])
        store.append(more.records[-1:])
        assert held_rows(store) == ops_of(chains[0].records + chains[1].records)

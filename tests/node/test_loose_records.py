"""Records held by hash outside any held chain (schema v12): dependencies fetched to judge another
record (evictable), links held at their base, and global data; one copy of each record, and the
held-ops index kept in step."""

from __future__ import annotations

from pathlib import Path

from test_held_ops import held_rows, ops_of, raw_sectors
from test_store_links import ALICE, BOB, BREAD, Chain

from conode.chain import Record
from conode.chain.ops import location
from conode.hashes import ActionHash, AgentKey, resolve
from conode.store import Loose, NodeStore


def test_a_dependency_is_found_by_hash_and_as_a_genesis_until_it_is_evicted(tmp_path: Path) -> None:
    bob = Chain(BOB)
    loaf = bob.item("loaf")
    with NodeStore.open(tmp_path / "node.db") as store:
        assert store.keep_loose([bob.records[0], loaf], Loose.DEPENDENCY, now=100) == 2
        assert store.get(loaf.hash) == loaf and store.get_record(loaf.hash) == loaf
        assert store.get_genesis(AgentKey(BOB.public_key)) == bob.records[0]
        assert store.head(AgentKey(BOB.public_key)) is None  # not a held chain
        assert held_rows(store) == set()  # a dependency is no op this node holds
        assert store.keep_loose([loaf], Loose.DEPENDENCY, now=300) == 0  # held already: kept later
        assert store.evict_loose(before=200) == 1  # the genesis, kept at 100; the loaf at 300 stays
        assert store.get(bob.records[0].hash) is None and store.get(loaf.hash) == loaf
        assert store.evict_loose(before=301) == 1
        assert store.loose_counts() == {}


def test_a_hash_prefix_names_a_record_held_loose_as_it_names_one_of_a_held_chain(
    tmp_path: Path,
) -> None:
    """`conode foundation vote act_ph5fmc57…` on a node holding the proposal loose (its author's
    chain off the node's arc): the prefix names it as it would a record of a held chain."""
    alice, bob = Chain(ALICE), Chain(BOB)
    proposal = bob.item("a proposal")
    with NodeStore.open(tmp_path / "node.db") as store:
        store.append(alice.records)
        store.keep_loose([proposal], Loose.GLOBAL, now=1)
        for record in (alice.records[0], proposal):
            printed = str(record.hash)[:12] + "…"  # as tables print it
            assert resolve(ActionHash, printed, store.actions_between) == record.hash
        every = store.actions_between(bytes(32), b"\xff" * 32)
        assert len(every) == 2 and every == sorted(every)  # at most two, from both, in order


def test_a_loose_link_is_indexed_and_held_at_its_base_only_until_released(tmp_path: Path) -> None:
    alice, bob = Chain(ALICE), Chain(BOB)
    loaf = alice.item("loaf")
    link = bob.link(BREAD, loaf)
    path = tmp_path / "node.db"
    with NodeStore.open(path) as store:
        store.keep_loose([link], Loose.LINK, now=1)
        store.keep_loose([link], Loose.DEPENDENCY, now=2)  # the stronger reason stays
        assert store.loose_counts() == {Loose.LINK: 1}
        assert [r.hash for r in store.links(BREAD)] == [link.hash]
        assert store.link_hashes(BREAD) == {link.hash}
        assert held_rows(store) == {(location(BREAD.raw), link.hash.raw)}
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        assert store.evict_loose(before=10) == 0  # a link op is not evicted
        store.release_loose([link.hash])
        assert store.links(BREAD) == [] and held_rows(store) == set()
        assert store.link_hashes(BREAD) == set()
        assert store.loose_counts() == {Loose.DEPENDENCY: 1}
        assert store.evict_loose(before=10) == 1


def test_a_chain_that_comes_to_hold_a_loose_record_holds_the_only_copy(tmp_path: Path) -> None:
    alice, bob = Chain(ALICE), Chain(BOB)
    loaf = alice.item("loaf")
    link = bob.link(BREAD, loaf)
    path = tmp_path / "node.db"
    with NodeStore.open(path) as store:
        store.keep_loose([link], Loose.LINK, now=1)
        store.keep_loose([loaf], Loose.GLOBAL, now=1)
        store.append(bob.records)
        store.import_chain(r.to_bytes() for r in alice.records)
        assert store.loose_counts() == {}
        assert held_rows(store) == ops_of(alice.records + bob.records)
        assert [r.hash for r in store.links(BREAD)] == [link.hash]
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        assert store.keep_loose([loaf], Loose.GLOBAL, now=2) == 0  # a held chain holds it
        assert store.loose_counts() == {}


def test_links_of_held_chains_and_loose_links_page_together_in_hash_order(tmp_path: Path) -> None:
    alice, bob = Chain(ALICE), Chain(BOB)
    items = [alice.item(f"loaf {n}") for n in range(6)]
    mine = [alice.link(BREAD, item) for item in items[:3]]
    theirs = [bob.link(BREAD, item) for item in items[3:]]
    with NodeStore.open(tmp_path / "node.db") as store:
        store.append(alice.records)
        store.keep_loose(theirs, Loose.LINK, now=1)
        every = sorted(h.hash for h in mine + theirs)
        first = store.link_blobs(BREAD, "shop/category", limit=4)
        rest = store.link_blobs(BREAD, after=first[-1][0], limit=10)
        assert [h for h, _ in first + rest] == every
        assert len(first) == 4
        assert store.link_hashes(BREAD, "shop/category") == set(every)


def test_a_chain_dropped_whole_keeps_the_records_given_a_reason_loose_for_it(
    tmp_path: Path,
) -> None:
    alice = Chain(ALICE)
    loaf, bun = alice.item("loaf"), alice.item("bun")
    link = alice.link(BREAD, loaf)
    author = AgentKey(ALICE.public_key)
    path = tmp_path / "node.db"

    def keep(record: Record) -> Loose | None:  # as a node keeps governance, and a bill to its own
        if record.hash == bun.hash:
            return Loose.ADDRESSED
        return Loose.GLOBAL if record.action.entry_type == "shop/item" else None

    with NodeStore.open(path) as store:
        store.append(alice.records)
        assert store.forget_chain(author, keep=keep, now=7) == len(alice.records)
        assert store.head(author) is None and store.count(author) == 0
        assert store.loose_counts() == {Loose.GLOBAL: 1, Loose.ADDRESSED: 1}
        assert [r.hash for r in store.loose_records(Loose.GLOBAL)] == [loaf.hash]
        assert [r.hash for r in store.records_of_type("shop/item")] == [loaf.hash, bun.hash]
        assert store.get(link.hash) is None and store.links(BREAD) == []
        assert held_rows(store) == set()  # held loose for judging, no op of this node's
        for kept, recomputed in raw_sectors(path):
            assert kept == recomputed
        assert store.evict_loose(before=10**9) == 0  # global and addressed: never evicted

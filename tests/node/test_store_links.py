"""The store's index of link records by base (schema v5): filled on append and import, and by
the v5 migration from the links an older file already holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import conode.store.migrations as migrations
from conode import encoding
from conode.chain import ActionKind, ChainHead, Record, author_record, link_base
from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.store import MIGRATIONS, Store

ALICE = Signer(bytes([1]) * 32)
BOB = Signer(bytes([2]) * 32)
BREAD = EntryHash.of(b"anchor: bread")
TOOLS = EntryHash.of(b"anchor: tools")


class Chain:
    """One agent's chain, built record by record."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.records: list[Record] = []
        self.add(ActionKind.GENESIS, {"net": "test"}, None)

    @property
    def head(self) -> ChainHead | None:
        return ChainHead.after(self.records[-1]) if self.records else None

    def add(self, kind: ActionKind, entry: Any, entry_type: str | None) -> Record:
        timestamp = 1_000 + 7 * len(self.records)
        record = author_record(
            self.signer, self.head, kind=kind, timestamp=timestamp, entry=entry,
            entry_type=entry_type,
        )  # fmt: skip
        self.records.append(record)
        return record

    def item(self, title: str) -> Record:
        return self.add(ActionKind.CREATE, {"title": title}, "shop/item")

    def link(self, base: EntryHash, target: Record, link_type: str = "shop/category") -> Record:
        entry = {"base": base.to_bytes(), "target": target.hash.to_bytes(), "tag": "x"}
        return self.add(ActionKind.LINK, entry, link_type)


def market() -> tuple[list[Chain], dict[str, list[Record]]]:
    """Two chains of items and links: bread links of two types, a tools link, and records that
    look like links but are not indexed (a create whose entry has a base, a link without one)."""
    alice, bob = Chain(ALICE), Chain(BOB)
    loaf, bun, saw = alice.item("loaf"), bob.item("bun"), bob.item("saw")
    bread = [alice.link(BREAD, loaf), bob.link(BREAD, bun)]
    tagged = [bob.link(BREAD, bun, "shop/tag")]
    tools = [bob.link(TOOLS, saw)]
    alice.add(ActionKind.CREATE, {"base": BREAD.to_bytes()}, "shop/item")  # not a link
    alice.add(ActionKind.LINK, {"target": loaf.hash.to_bytes()}, "shop/category")  # no base
    alice.add(ActionKind.LINK, {"base": b"short"}, "shop/category")  # not a typed hash
    return [alice, bob], {"bread": bread, "tagged": tagged, "tools": tools}


def hashes(records: list[Record]) -> list[ActionHash]:
    return sorted((r.hash for r in records), key=lambda h: h.raw)


def assert_indexed(store: Store, links: dict[str, list[Record]]) -> None:
    """``store`` lists exactly these links at each base, by type and in hash order."""
    bread, tagged, tools = links["bread"], links["tagged"], links["tools"]
    assert [r.hash for r in store.links(BREAD, "shop/category")] == hashes(bread)
    assert [r.hash for r in store.links(BREAD, "shop/tag")] == hashes(tagged)
    assert [r.hash for r in store.links(BREAD)] == hashes(bread + tagged)
    assert [r.hash for r in store.links(TOOLS)] == hashes(tools)
    assert store.links(EntryHash.of(b"anchor: nothing here")) == []
    assert store.links(TOOLS, "shop/tag") == []
    # the hashes alone, from the index: the same sets
    assert store.link_hashes(BREAD, "shop/category") == set(hashes(bread))
    assert store.link_hashes(BREAD) == set(hashes(bread + tagged))
    assert store.link_hashes(TOOLS, "shop/tag") == set()
    for record in bread + tagged + tools:
        (found,) = [r for r in store.links(BREAD) + store.links(TOOLS) if r.hash == record.hash]
        assert found == record  # the very record, read back from its stored bytes


def test_appended_links_are_listed_by_base_and_type(tmp_path: Path) -> None:
    chains, links = market()
    with Store.open(tmp_path / "node.db") as store:
        for chain in chains:
            store.append(chain.records)
        assert_indexed(store, links)


def test_imported_chains_index_their_links_and_a_repeated_import_adds_no_row(
    tmp_path: Path,
) -> None:
    chains, links = market()
    with Store.open(tmp_path / "node.db") as store:
        for _ in range(2):
            for chain in chains:
                store.import_chain(r.to_bytes() for r in chain.records)
        assert_indexed(store, links)


def test_link_blobs_pages_in_hash_order_after_a_hash(tmp_path: Path) -> None:
    alice = Chain(ALICE)
    items = [alice.item(f"loaf {n}") for n in range(5)]
    linked = [alice.link(BREAD, item) for item in items]
    with Store.open(tmp_path / "node.db") as store:
        store.append(alice.records)
        first = store.link_blobs(BREAD, "shop/category", limit=2)
        rest = store.link_blobs(BREAD, "shop/category", after=first[-1][0], limit=10)
        assert [h for h, _blob in first + rest] == hashes(linked)
        assert all(Record.from_bytes(blob).hash == h for h, blob in first + rest)


def test_a_v4_file_gets_the_links_it_holds_indexed_by_migration_v5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    chains, links = market()
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", tuple(MIGRATIONS[:4]))
        with Store.open(path) as old:
            assert old.schema_version == 4
            old.append(chains[0].records)
            old.import_chain(r.to_bytes() for r in chains[1].records)  # held for audit
    raw = sqlite3.connect(path)
    tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_schema")}
    raw.close()
    assert "links" not in tables
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 5
        assert_indexed(store, links)
        # and later appends go on indexing into the table the migration filled
        more = chains[0]
        more.link(TOOLS, more.records[1])
        store.append(more.records[-1:])
        assert len(store.links(TOOLS)) == len(links["tools"]) + 1


def test_link_base_reads_only_a_typed_hash_under_base() -> None:
    good = BREAD.to_bytes()
    assert link_base(encoding.encode({"base": good, "tag": "x"})) == good
    assert link_base(encoding.encode({"base": good[1:]})) is None  # 32 bytes: no kind
    assert link_base(encoding.encode([good])) is None
    assert link_base(b"\xff not cbor") is None
    assert link_base(None) is None
    assert link_base(encoding.encode({"base": str(AgentKey(ALICE.public_key))})) is None

"""The node's tables in the store: one write for a record and its publishing, and what survives a reopen."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conode.chain import ActionKind, author_record
from conode.crypto import Signer
from conode.errors import ChainError
from conode.hashes import ActionHash, AgentKey
from conode.store import NodeStore, Receipt
from conode.validation.activity import Activity, step


def genesis_and_next() -> tuple[Signer, list]:  # type: ignore[type-arg]
    signer = Signer(b"\x05" * 32)
    first = author_record(signer, None, kind=ActionKind.GENESIS, timestamp=1, entry={"g": 1})
    state, _ = step(Activity(), first)
    second = author_record(
        signer, state.head, kind=ActionKind.CREATE, timestamp=2, entry={"n": 2}, entry_type="t/n"
    )
    return signer, [first, second]


def test_a_record_and_its_place_in_the_publishing_queue_are_one_write(tmp_path: Path) -> None:
    _, (first, second) = genesis_and_next()
    with NodeStore.open(tmp_path / "n.db") as store:
        store.append(
            [first], activities={first.action.author: step(Activity(), first)[0]}, publish=True
        )
        assert store.publishing() == [first.hash]
        with pytest.raises(ChainError):
            store.append([second, second], publish=True)  # the batch is refused whole
        assert store.publishing() == [first.hash]
        store.append([second])  # not ours to publish (a peer's record, say)
        assert store.publishing() == [first.hash]
    with NodeStore.open(tmp_path / "n.db") as store:
        assert store.publishing() == [first.hash]
        store.done_publishing([first.hash])
        assert store.publishing() == []


def test_receipts_warrants_peers_sessions_and_metadata_survive_a_reopen(tmp_path: Path) -> None:
    record = ActionHash(b"\x01" * 32)
    authority = AgentKey(b"\x02" * 32)
    with NodeStore.open(tmp_path / "n.db") as store:
        store.add_receipts([Receipt(record, authority, True, 7, b"\x00" * 64)])
        assert store.add_warrant(b"w" * 32, authority, b"warrant", 8)
        assert not store.add_warrant(b"w" * 32, authority, b"warrant", 9)  # the same warrant again
        store.remember_peer("peer-a", ["/ip4/127.0.0.1/tcp/1"], 10)
        store.save_session(b"s" * 48, authority, b"record")
        store.set_meta("rules_head", b"head")
    with NodeStore.open(tmp_path / "n.db") as store:
        assert store.receipts(record) == [Receipt(record, authority, True, 7, b"\x00" * 64)]
        assert store.warranted(authority) and store.warrants() == [
            (b"w" * 32, authority, b"warrant")
        ]
        assert store.known_peers() == [("peer-a", ["/ip4/127.0.0.1/tcp/1"], 10)]
        assert list(store.sessions()) == [(b"s" * 48, authority, b"record")]
        assert store.get_meta("rules_head") == b"head" and store.get_meta("other") is None


def test_the_publishing_queue_is_read_a_page_at_a_time_oldest_first_with_its_receipts(
    tmp_path: Path,
) -> None:
    signer = Signer(b"\x06" * 32)
    records, state = [], Activity()
    for seq in range(7):
        kind = ActionKind.GENESIS if seq == 0 else ActionKind.CREATE
        record = author_record(
            signer, state.head, kind=kind, timestamp=10 + seq, entry={"n": seq},
            entry_type=None if seq == 0 else "t/n",
        )  # fmt: skip
        state, _ = step(state, record)
        records.append(record)
    authorities = AgentKey(b"\x02" * 32), AgentKey(b"\x03" * 32)
    with NodeStore.open(tmp_path / "n.db") as store:
        for record in records:  # one write each: the queue's order is the records' age
            store.append([record], publish=True)
        store.add_receipts(
            [Receipt(records[1].hash, a, True, 7, b"\x00" * 64) for a in authorities]
            + [Receipt(records[4].hash, authorities[0], True, 7, b"\x00" * 64)]
        )
        assert store.publishing_count() == 7
        first = store.publishing_page(None, 3)
        assert [q.hash for q in first] == [r.hash for r in records[:3]]
        assert [q.receipted for q in first] == [frozenset(), frozenset(authorities), frozenset()]
        second = store.publishing_page(first[-1].place, 3)
        assert [q.hash for q in second] == [r.hash for r in records[3:6]]
        assert second[1].receipted == {authorities[0]}
        assert [q.hash for q in store.publishing_page(second[-1].place, 3)] == [records[6].hash]
        store.done_publishing([records[0].hash, records[3].hash])
        assert [q.hash for q in store.publishing_page(first[0].place, 3)] == [
            records[1].hash, records[2].hash, records[4].hash,
        ]  # fmt: skip
        assert store.publishing_count() == 5
        # a page is read through the queue's index by age, never by sorting the whole queue
        with closing(sqlite3.connect(tmp_path / "n.db")) as raw:
            plan = raw.execute(
                "EXPLAIN QUERY PLAN SELECT created_at, record FROM publishing"
                " WHERE (created_at, record) > (?, ?) ORDER BY created_at, record LIMIT 3",
                (0, b""),
            ).fetchall()
        assert "publishing_by_age" in str(plan) and "TEMP B-TREE" not in str(plan)

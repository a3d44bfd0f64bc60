"""The store is not trusted blindly: a real store file damaged on disk is found out, never served.

Each test writes a real SQLite store, closes it (so everything is in the main
file), overwrites bytes of the file as a failing disk would, and opens it
again. Damage is found at start (``check_integrity``: SQLite's quick check
and every kept head read back) or when a record is read (its bytes against
its key); either way the error is one line saying what to do, the damaged
record is not returned, and the store takes no write after it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import Signer
from conode.errors import ChainError, ConodeError
from conode.hashes import AgentKey
from conode.store import Store
from conode.store.storefile import CORRUPT_ADVICE

ALICE = Signer(bytes([1]) * 32)
AUTHOR = AgentKey(ALICE.public_key)
PAGE = 4096


def chain(length: int, head: ChainHead | None = None, first: int = 0) -> list[Record]:
    records = []
    for n in range(first, first + length):
        record = author_record(
            ALICE,
            head,
            kind=ActionKind.GENESIS if n == 0 else ActionKind.CREATE,
            timestamp=1_700_000_000_000_000 + n,
            entry={"n": n, "memo": f"entry number {n:06d} " + "x" * 40},
            entry_type=None if n == 0 else "test/note",
        )
        records.append(record)
        head = ChainHead.after(record)
    return records


def write_store(path: Path, records: list[Record]) -> None:
    with Store.open(path) as store:
        store.append(records)  # closed: the WAL is checkpointed into the file


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def one_line_with_advice(error: ConodeError) -> bool:
    message = str(error)
    return "\n" not in message and "corrupt" in message and CORRUPT_ADVICE in message


def test_a_damaged_record_is_refused_when_read_and_no_write_follows(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    records = chain(50)
    write_store(path, records)
    victim = records[20]
    assert victim.entry is not None
    offset = path.read_bytes().index(victim.entry)
    overwrite(path, offset + 4, b"\xee" * 64)  # inside the entry (and whatever follows it)
    with Store.open(path) as store:
        store.check_integrity()  # the head is whole, and SQLite's pages are well formed
        assert store.get(records[3].hash) == records[3]  # a whole record is still read
        with pytest.raises(ChainError) as refused:
            store.get(victim.hash)
        assert one_line_with_advice(refused.value)
        with pytest.raises(ChainError):
            list(store.record_blobs(AUTHOR))  # what a peer's `chain` request reads
        with pytest.raises(ChainError):
            list(store.records(AUTHOR))  # what a view reads
        with pytest.raises(ChainError) as no_write:
            store.append(chain(1, ChainHead.after(records[-1]), first=50))
        assert one_line_with_advice(no_write.value)
    with Store.open(path) as store:
        assert store.head(AUTHOR) == ChainHead.after(records[-1])  # nothing was committed


def test_a_damaged_action_is_refused_by_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    records = chain(30)
    write_store(path, records)
    victim = records[10]
    offset = path.read_bytes().index(victim.action_bytes)
    overwrite(path, offset + len(victim.action_bytes) - 8, b"\x00" * 8)  # its timestamp
    with Store.open(path) as store:
        blobs = []
        with pytest.raises(ChainError, match="does not hash to its key"):
            for blob in store.record_blobs(AUTHOR):
                blobs.append(blob)
        assert blobs == [r.to_bytes() for r in records[:10]]  # served up to the damage only


def test_a_damaged_chain_head_is_found_at_start(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    records = chain(30)
    write_store(path, records)
    head = records[-1]
    assert head.entry is not None
    overwrite(path, path.read_bytes().index(head.entry) + 2, b"\x00" * 16)
    with Store.open(path) as store, pytest.raises(ChainError) as found:
        store.check_integrity()
    assert one_line_with_advice(found.value)


def test_a_damaged_page_is_found_at_start(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    write_store(path, chain(400))
    size = path.stat().st_size
    assert size > 8 * PAGE
    for page in range(1, size // PAGE):  # every page but the header page, one at a time
        damaged = tmp_path / f"damaged-{page}.db"
        damaged.write_bytes(path.read_bytes())
        overwrite(damaged, page * PAGE, b"\xff" * 64)  # the page's header
        with pytest.raises(ConodeError) as found, Store.open(damaged) as store:
            store.check_integrity()
            list(store.record_blobs(AUTHOR))
            for author in store.authors():
                list(store.records(author))
        assert "corrupt" in str(found.value) and "\n" not in str(found.value), page


@pytest.mark.parametrize("seed", range(12))
def test_five_random_64_byte_overwrites_are_never_served(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "node.db"
    records = chain(600)
    write_store(path, records)
    whole = {r.hash: r.to_bytes() for r in records}
    size = path.stat().st_size
    rng = random.Random(seed)
    for _ in range(5):
        overwrite(path, rng.randrange(PAGE, size - 64), rng.randbytes(64))
    try:
        with Store.open(path) as store:
            store.check_integrity()
            served = []
            try:
                for blob in store.record_blobs(AUTHOR):
                    served.append(blob)
            except ChainError as exc:
                assert one_line_with_advice(exc)
                with pytest.raises(ChainError):
                    store.append(chain(1, ChainHead.after(records[-1]), first=600))
            assert all(blob in whole.values() for blob in served)  # nothing broken is served
    except ConodeError as exc:  # found at start
        assert "corrupt" in str(exc) and "\n" not in str(exc)

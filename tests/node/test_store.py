"""The SQLite store: appends, reads, refusals, atomicity, reopening, migrations, corruption."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import conode.store.migrations as migrations
import conode.store.storefile as store_file
from conode import encoding
from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import SIG_ACTION, Signer
from conode.errors import ChainError, StorageError
from conode.hashes import ActionHash, AgentKey, EntryHash
from conode.store import APPLICATION_ID, MIGRATIONS, Store
from conode.testing.ledger import Ledger
from conode.validation.activity import Activity, step
from conode.validation.payment import commit_payment, position_after
from conode.validation.verdict import Invalid

ALICE = Signer(bytes([1]) * 32)
BOB = Signer(bytes([2]) * 32)
CAROL = Signer(bytes([3]) * 32)


def key(signer: Signer) -> AgentKey:
    return AgentKey(signer.public_key)


def next_record(signer: Signer, head: ChainHead | None, *, n: int = 0, note: str = "") -> Record:
    """The next record after ``head``: genesis, then a rotation of create/update/link/delete."""
    timestamp = 1_000 if head is None else head.timestamp + 7
    if head is None:
        return author_record(
            signer, None, kind=ActionKind.GENESIS, timestamp=timestamp, entry={"net": "test"}
        )
    step = (head.seq + 1) % 4
    if step == 1:
        return author_record(
            signer,
            head,
            kind=ActionKind.CREATE,
            timestamp=timestamp,
            entry={"n": n, "note": note},
            entry_type="note",
        )
    if step == 2:
        return author_record(
            signer,
            head,
            kind=ActionKind.UPDATE,
            timestamp=timestamp,
            entry={"n": n, "note": note + "!"},
            entry_type="note",
            ref=head.hash,
        )
    if step == 3:
        return author_record(
            signer,
            head,
            kind=ActionKind.LINK,
            timestamp=timestamp,
            entry={"base": head.hash.to_bytes(), "tag": "t"},
            entry_type="link",
        )
    return author_record(signer, head, kind=ActionKind.DELETE, timestamp=timestamp, ref=head.hash)


def make_chain(
    signer: Signer, length: int, head: ChainHead | None = None, note: str = ""
) -> list[Record]:
    records = []
    for n in range(length):
        record = next_record(signer, head, n=n, note=note)
        records.append(record)
        head = ChainHead.after(record)
    return records


def snapshot(store: Store) -> dict[AgentKey, tuple[ChainHead | None, list[Record]]]:
    return {a: (store.head(a), list(store.records(a))) for a in store.authors()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "node.db") as opened:
        yield opened


# -- opening -------------------------------------------------------------------------------


def test_open_creates_a_wal_file_at_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 1
        conn = store._conn  # white-box: the connection's own settings
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        raw.close()


def test_an_empty_store(store: Store) -> None:
    assert store.authors() == []
    assert store.head(key(ALICE)) is None
    assert store.count(key(ALICE)) == 0
    assert list(store.records(key(ALICE))) == []
    assert list(store.record_blobs(key(ALICE))) == []
    assert store.get(ActionHash(bytes(32))) is None
    assert store.verify(key(ALICE)) is None


def test_closed_store_is_a_caller_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "node.db")
    with store:
        pass
    store.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        store.head(key(ALICE))
    with pytest.raises(ValueError, match="closed"):
        store.append(make_chain(ALICE, 1))
    with pytest.raises(ValueError, match="closed"):
        list(store.records(key(ALICE)))


# -- appending and reading -----------------------------------------------------------------


def test_append_then_read_back(store: Store) -> None:
    chain = make_chain(ALICE, 9)
    store.append(chain[:1])
    store.append(chain[1:4])
    for record in chain[4:]:
        store.append([record])
    alice = key(ALICE)
    assert store.authors() == [alice]
    assert store.head(alice) == ChainHead.after(chain[-1])
    assert store.count(alice) == 9
    assert list(store.records(alice)) == chain
    assert list(store.records(alice, from_seq=5)) == chain[5:]
    assert list(store.records(alice, from_seq=50)) == []
    assert list(store.record_blobs(alice)) == [r.to_bytes() for r in chain]
    assert list(store.record_blobs(alice, 8)) == [chain[8].to_bytes()]
    for record in chain:
        assert store.get(record.hash) == record
    assert store.verify(alice) is None


def test_one_batch_can_hold_several_authors(store: Store) -> None:
    a, b, c = make_chain(ALICE, 4), make_chain(BOB, 3), make_chain(CAROL, 1)
    store.append([a[0], b[0], a[1], b[1], c[0], a[2], b[2], a[3]])
    assert store.authors() == sorted([key(ALICE), key(BOB), key(CAROL)])
    for signer, chain in ((ALICE, a), (BOB, b), (CAROL, c)):
        assert list(store.records(key(signer))) == chain
        assert store.head(key(signer)) == ChainHead.after(chain[-1])
        assert store.verify(key(signer)) is None


def test_empty_append_is_a_no_op(store: Store) -> None:
    store.append([])
    assert store.authors() == []


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    a, b = make_chain(ALICE, 6), make_chain(BOB, 2)
    with Store.open(path) as store:
        store.append(a[:3] + b)
        store.append(a[3:])
        before = snapshot(store)
    with Store.open(path) as store:
        assert snapshot(store) == before
        assert store.verify(key(ALICE)) is None
        store.append(make_chain(BOB, 1, ChainHead.after(b[-1])))  # and the chain continues
        assert store.count(key(BOB)) == 3


# -- refusals ------------------------------------------------------------------------------


def _resigned(signer: Signer, record: Record, **changes: Any) -> Record:
    """``record`` with action fields changed and signed again by ``signer``."""
    action = dataclasses.replace(record.action, **changes)
    return Record.make(action, signer.sign(SIG_ACTION, action.to_bytes()), record.entry)


def _bad_records(chain: list[Record], bob_chain: list[Record]) -> dict[str, tuple[str, Record]]:
    """Invalid next records for a stored ``chain`` of ALICE, each with the rule it breaks."""
    head = ChainHead.after(chain[-1])
    good = next_record(ALICE, head)
    skipped = next_record(ALICE, ChainHead.after(good))
    bob_head = ChainHead.after(bob_chain[-1])
    forged = dataclasses.replace(
        good, signature=bytes([good.signature[0] ^ 1]) + good.signature[1:]
    )
    return {
        "skipped seq": ("seq", skipped),
        "repeated seq": ("seq", chain[-1]),
        "wrong prev": ("prev", _resigned(ALICE, good, prev=chain[0].hash)),
        "bad signature": ("signature", forged),
        "signed by another": (
            "signature",
            Record.make(good.action, bob_chain[0].signature, good.entry),
        ),
        # BOB's record placed after ALICE's head: it can only go on BOB's own chain,
        # where it does not follow BOB's head
        "another author's record": (
            "seq",
            next_record(BOB, dataclasses.replace(head, author=bob_head.author)),
        ),
        "another author's, seq aligned": (
            "prev",
            next_record(BOB, dataclasses.replace(bob_head, hash=head.hash)),
        ),
        "earlier timestamp": ("timestamp", _resigned(ALICE, good, timestamp=head.timestamp - 1)),
        "second genesis": (
            "kind",
            _resigned(ALICE, chain[0], seq=head.seq + 1, prev=head.hash, timestamp=head.timestamp),
        ),
        "entry swapped": ("entry-hash", dataclasses.replace(good, entry=b"\xa0")),
        "fields disagree with bytes": (
            "format",
            dataclasses.replace(
                good, action=dataclasses.replace(good.action, timestamp=head.timestamp + 99)
            ),
        ),
        "entry not canonical": ("format", _with_entry(good, b"\x18\x01")),
    }


def _with_entry(record: Record, entry: bytes) -> Record:
    action = dataclasses.replace(record.action, entry_hash=EntryHash.of(entry))
    return Record.make(action, ALICE.sign(SIG_ACTION, action.to_bytes()), entry)


BAD_CASES = list(_bad_records(make_chain(ALICE, 3), make_chain(BOB, 2)))


@pytest.mark.parametrize("case", BAD_CASES)
def test_invalid_append_is_refused_with_its_rule(store: Store, case: str) -> None:
    chain, bob_chain = make_chain(ALICE, 3), make_chain(BOB, 2)
    store.append(chain + bob_chain)
    rule, bad = _bad_records(chain, bob_chain)[case]
    before = snapshot(store)
    author, seq = bad.action.author, bad.action.seq
    with pytest.raises(ChainError, match=rf"^refused {author.short()} seq {seq}: {rule}: "):
        store.append([bad])
    assert snapshot(store) == before
    assert store.verify(key(ALICE)) is None
    store.append([next_record(ALICE, ChainHead.after(chain[-1]))])  # no transaction left open
    assert store.count(key(ALICE)) == 4


def test_the_head_of_a_foreign_chain_is_not_another_authors(store: Store) -> None:
    """The core's ``author`` rule: a record is always checked against its own author's chain."""
    alice = make_chain(ALICE, 2)
    store.append(alice)
    bob_genesis = make_chain(BOB, 1)[0]
    store.append([bob_genesis])  # BOB's genesis does not join ALICE's chain
    assert store.count(key(ALICE)) == 2
    assert list(store.records(key(BOB))) == [bob_genesis]


def test_a_batch_with_one_bad_record_writes_nothing(store: Store) -> None:
    a, b = make_chain(ALICE, 6), make_chain(BOB, 4)
    store.append(a[:2] + b[:1])
    before = snapshot(store)
    bad = dataclasses.replace(a[4], signature=bytes(64))
    with pytest.raises(ChainError, match=r"seq 4: seq: "):
        store.append([a[2], b[1], b[2], a[4]])  # a[3] missing
    with pytest.raises(ChainError, match=r"seq 4: signature: "):
        store.append([a[2], b[1], b[2], a[3], bad])
    with pytest.raises(ChainError, match=r"seq 3: seq: "):
        store.append([b[1], b[2], b[3], a[3], a[2]])  # out of order within ALICE's records
    assert snapshot(store) == before
    store.append([a[2], b[1], b[2], a[3], a[4], b[3], a[5]])
    assert list(store.records(key(ALICE))) == a
    assert list(store.records(key(BOB))) == b


def test_a_closed_chain_takes_nothing_more(store: Store) -> None:
    chain = make_chain(ALICE, 2)
    head = ChainHead.after(chain[-1])
    close = author_record(
        ALICE, head, kind=ActionKind.CLOSE_CHAIN, timestamp=head.timestamp, entry={"to": "x"}
    )
    store.append([*chain, close])
    closed_head = store.head(key(ALICE))
    assert closed_head is not None and closed_head.closed
    with pytest.raises(ChainError, match=r"seq 3: closed: "):
        store.append([next_record(ALICE, ChainHead.after(close))])
    with Store.open(Path(store.path)) as again:
        assert again.head(key(ALICE)) == closed_head


# -- importing a chain for audit -----------------------------------------------------------


def test_import_a_chain_then_again(tmp_path: Path) -> None:
    chain = make_chain(BOB, 7)
    with Store.open(tmp_path / "node.db") as store:
        done = store.import_chain(r.to_bytes() for r in chain[:4])
        assert (done.head, done.added) == (ChainHead.after(chain[3]), 4)
        done = store.import_chain(r.to_bytes() for r in chain)  # extends what is held
        assert (done.head, done.added) == (ChainHead.after(chain[-1]), 3)
        done = store.import_chain(r.to_bytes() for r in chain)  # idempotent
        assert (done.head, done.added) == (ChainHead.after(chain[-1]), 0)
        done = store.import_chain(r.to_bytes() for r in chain[:2])  # a prefix: nothing new
        assert (done.head, done.added) == (ChainHead.after(chain[-1]), 0)
        assert list(store.records(key(BOB))) == chain
        assert store.verify(key(BOB)) is None


def test_import_refuses_a_bad_chain_and_writes_nothing(store: Store) -> None:
    chain = make_chain(BOB, 5)
    blobs = [r.to_bytes() for r in chain]
    with pytest.raises(ChainError, match=r"record 3 \(seq 4\): seq: "):
        store.import_chain(blobs[:3] + blobs[4:])
    flipped = bytearray(blobs[2])
    flipped[-70] ^= 0x10  # inside the signature
    with pytest.raises(ChainError, match=r"record 2 \(seq 2\): signature: "):
        store.import_chain([*blobs[:2], bytes(flipped), *blobs[3:]])
    with pytest.raises(ChainError, match=r"record 1: format: "):
        store.import_chain([blobs[0], b"\xff not cbor"])
    with pytest.raises(ChainError, match="no records"):
        store.import_chain([])
    assert store.authors() == []


def test_import_refuses_a_fork_of_a_held_chain(store: Store) -> None:
    chain = make_chain(BOB, 4)
    store.append(chain)
    fork = chain[:2] + make_chain(BOB, 3, ChainHead.after(chain[1]), note="fork")
    before = snapshot(store)
    with pytest.raises(ChainError, match=r"seq 2 differs .*fork"):
        store.import_chain(r.to_bytes() for r in fork)
    assert snapshot(store) == before


# -- storage errors and migrations ---------------------------------------------------------


def _assert_one_storage_error(excinfo: pytest.ExceptionInfo[StorageError]) -> None:
    assert excinfo.type is StorageError
    assert "\n" not in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, sqlite3.Error | type(None))


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    path.write_bytes(b"this is not an SQLite file at all, just some text. " * 100)
    with pytest.raises(StorageError, match="not an SQLite database") as excinfo:
        Store.open(path)
    _assert_one_storage_error(excinfo)
    assert isinstance(excinfo.value.__cause__, sqlite3.DatabaseError)


@pytest.mark.parametrize("where", ["missing-dir/node.db", "."])
def test_a_path_that_cannot_be_opened(tmp_path: Path, where: str) -> None:
    with pytest.raises(StorageError, match="cannot open the store") as excinfo:
        Store.open(tmp_path / where)
    _assert_one_storage_error(excinfo)


def test_an_sqlite_database_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE photos (name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="not a conode store"):
        Store.open(path)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA application_id = 42")
    raw.execute("PRAGMA user_version = 1")
    raw.close()
    with pytest.raises(StorageError, match="not a conode store"):
        Store.open(path)


def test_a_file_from_a_newer_conode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        store.append(make_chain(ALICE, 2))
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(StorageError, match=rf"schema version {len(MIGRATIONS) + 1}, newer"):
        Store.open(path)


@pytest.mark.parametrize("how", ["zero bytes", "sqlite file at version 0"])
def test_a_version_0_file_is_migrated(tmp_path: Path, how: str) -> None:
    path = tmp_path / "node.db"
    if how == "zero bytes":
        path.touch()
    else:
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA user_version = 0")
        raw.execute("VACUUM")  # writes a real, empty database header
        raw.close()
        assert path.stat().st_size > 0
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        store.append(make_chain(ALICE, 3))
    with Store.open(path) as store:
        assert store.count(key(ALICE)) == 3


def test_an_older_file_is_migrated_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    chain = make_chain(ALICE, 5)
    with Store.open(path) as store:
        store.append(chain)
    v1 = len(MIGRATIONS)
    broken = migrations.Step("fails halfway", ("CREATE TABLE half (x)", "NOT SQL AT ALL"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StorageError):
        Store.open(path)
    monkeypatch.undo()
    with Store.open(path) as store:  # the failed step left nothing behind
        assert store.schema_version == v1
    step = migrations.Step("a test step", ("CREATE TABLE extra (x INTEGER)",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, step))
    with Store.open(path) as store:
        assert store.schema_version == v1 + 1
        assert list(store.records(key(ALICE))) == chain
        assert store.verify(key(ALICE)) is None
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == v1 + 1
    assert raw.execute("SELECT count(*) FROM extra").fetchone()[0] == 0
    raw.close()


def _v2_activity_bytes(state: Activity) -> bytes:
    """An activity state as schema v2 kept it: no ``genesis``."""
    return encoding.encode(
        {
            "last_credit": None if state.last_credit is None else state.last_credit.to_bytes(),
            "balance": state.balance,
            "votes": sorted(v.to_bytes() for v in state.votes),
            "bills_paid": sorted(b.to_bytes() for b in state.bills_paid),
        }
    )


def _traded_ledger() -> Ledger:
    """Chains whose activity states have a last credit, balances, a vote and a bill paid."""
    ledger = Ledger()
    assert ledger.pay("coop0-m0", "coop1-m0", 30)
    bill, verdict = ledger.bill("coop1-m1", "coop0-m0", 5)
    assert verdict
    assert ledger.pay("coop0-m0", "coop1-m1", 5, ref=bill.hash)
    proposal, verdict = ledger.propose("coop0", "opaque", {"app": "demo", "data": 1})
    assert verdict
    assert ledger.vote("coop1", proposal.hash)[1]
    return ledger


def _write_old_file(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    version: int,
    kept: Callable[[Activity], bytes],
    also: Callable[[Store], object] | None = None,
) -> None:
    """A file at schema ``version``, as conode wrote it then: every chain of ``ledger``, each
    activity state kept as ``kept`` writes it; ``also`` does more at that version."""
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", tuple(MIGRATIONS[:version]))
        with Store.open(path) as store:
            assert store.schema_version == version
            for agent in ledger.agents.values():
                store.append(agent.chain, activities={agent.key: agent.activity})
            if also is not None:
                also(store)
    raw = sqlite3.connect(path, isolation_level=None)
    for agent in ledger.agents.values():
        raw.execute(
            "UPDATE chains SET activity = ? WHERE author = ?", (kept(agent.activity), agent.key.raw)
        )
    raw.close()


def _write_v2_file(path: Path, monkeypatch: pytest.MonkeyPatch, ledger: Ledger) -> None:
    """A schema-v2 file, as conode wrote it before v3, holding every chain of ``ledger``
    with its activity state, and one chain imported for audit (which has none)."""
    _write_old_file(
        path, monkeypatch, ledger, 2, _v2_activity_bytes,
        also=lambda store: store.import_chain(r.to_bytes() for r in make_chain(CAROL, 3)),
    )  # fmt: skip


def test_a_v2_file_opens_as_v3_with_each_kept_activity_pinning_its_chains_genesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    ledger = _traded_ledger()
    _write_v2_file(path, monkeypatch, ledger)
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 3
        for agent in ledger.agents.values():
            state = store.activity(agent.key)
            assert state == agent.activity  # genesis filled in, everything else as it was
            assert state.genesis == agent.chain[0].hash
            assert position_after(state, 0).genesis == agent.chain[0].hash
        assert store.activity(ledger["coop0-m0"].key).bills_paid
        assert store.activity(ledger["coop1"].key).votes
        assert store.count(key(CAROL)) == 3
    raw = sqlite3.connect(path)
    row = raw.execute("SELECT activity FROM chains WHERE author = ?", (key(CAROL).raw,)).fetchone()
    assert row == (None,)  # a chain held for audit has no activity state to pin
    raw.close()


def test_a_v2_file_whose_activity_state_cannot_be_read_is_refused_and_left_at_v2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    ledger = _traded_ledger()
    _write_v2_file(path, monkeypatch, ledger)
    broken = ledger["coop0-m1"].key
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE chains SET activity = ? WHERE author = ?", (encoding.encode([1, 2]), broken.raw))
    raw.close()
    with pytest.raises(StorageError, match=rf"to v3: the activity state of {broken.short()} is not a map") as excinfo:
        Store.open(path)
    _assert_one_storage_error(excinfo)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    kept = raw.execute("SELECT activity FROM chains WHERE author = ?", (ledger["coop0-m0"].key.raw,)).fetchone()
    assert kept == (_v2_activity_bytes(ledger["coop0-m0"].activity),)  # nothing half-rewritten
    raw.close()


def test_a_v6_file_opens_as_v7_with_the_bills_each_chain_declined_in_its_kept_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    ledger = _traded_ledger()
    bill, _ = ledger.bill("coop1-m1", "coop0-m1", 7)
    assert ledger.decline("coop0-m1", bill.hash)[1]
    decliner = ledger["coop0-m1"]
    assert decliner.activity.bills_declined == {bill.hash}

    def v6_bytes(state: Activity) -> bytes:  # as v6 kept it: no declines
        value = encoding.decode(state.to_bytes())
        value.pop("bills_declined", None)
        return encoding.encode(value)

    _write_old_file(path, monkeypatch, ledger, 6, v6_bytes)
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 7
        for agent in ledger.agents.values():
            assert store.activity(agent.key) == agent.activity
        # so the node's own fold refuses paying the declined bill, as a fresh peer's does
        payment = ledger.payment("coop0-m1", "coop1-m1", 7, ref=bill.hash)
        record = commit_payment(decliner.signer, payment)
        _, verdict = step(store.activity(decliner.key), record)
        assert isinstance(verdict, Invalid) and verdict.rule == "bill-settled"


def test_a_lock_held_too_long_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_file, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked") as excinfo:
            store.append(make_chain(ALICE, 1))
        _assert_one_storage_error(excinfo)
        other.execute("ROLLBACK")
        other.close()
        store.append(make_chain(ALICE, 1))
        assert store.count(key(ALICE)) == 1


# -- corruption ----------------------------------------------------------------------------


def _corrupt(path: Path, sql: str, *params: object) -> None:
    raw = sqlite3.connect(path)
    try:
        raw.execute(sql, params)
        raw.commit()
    finally:
        raw.close()


def test_verify_does_not_trust_the_kept_head(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        store.append(make_chain(ALICE, 4))
    _corrupt(path, "UPDATE chains SET seq = 2")
    with Store.open(path) as store:
        violation = store.verify(key(ALICE))
        assert violation is not None and violation.rule == "head"
    _corrupt(path, "DELETE FROM records WHERE seq = 3")
    with Store.open(path) as store:
        violation = store.verify(key(ALICE))
        assert violation is not None and violation.rule == "head"


@pytest.mark.parametrize("column", ["kind", "timestamp", "entry_type", "seq"])
def test_verify_checks_the_index_columns(tmp_path: Path, column: str) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        store.append(make_chain(ALICE, 4))
    value: object = {"kind": 3, "timestamp": 1, "entry_type": "other", "seq": 7}[column]
    _corrupt(path, f"UPDATE records SET {column} = ? WHERE seq = 1", value)
    with Store.open(path) as store:
        violation = store.verify(key(ALICE))
        assert violation is not None
        assert violation.rule in {"index", "seq"}
        assert column in violation.reason or violation.rule == "seq"


def test_reading_a_corrupt_record_is_a_chain_error(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    chain = make_chain(ALICE, 3)
    with Store.open(path) as store:
        store.append(chain)
    _corrupt(path, "UPDATE records SET action = ? WHERE seq = 1", b"\x00garbage")
    with Store.open(path) as store:
        with pytest.raises(ChainError, match="corrupt"):
            list(store.records(key(ALICE)))
        with pytest.raises(ChainError, match="corrupt"):
            store.get(chain[1].hash)
        violation = store.verify(key(ALICE))
        assert violation is not None and violation.rule == "format"


COLUMNS = ("action", "signature", "entry", "hash")


# A template store, built once: two chains of every record kind.
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "node.db"
    with Store.open(path) as store:
        store.append(make_chain(ALICE, 9) + make_chain(BOB, 6))
    return path


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_bit_flip_in_a_stored_record_is_found(template: Path, data: st.DataObject) -> None:
    signer = data.draw(st.sampled_from([ALICE, BOB]), label="author")
    author = key(signer)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.db"
        shutil.copyfile(template, path)
        raw = sqlite3.connect(path)
        try:
            rows = raw.execute(
                "SELECT seq, action, signature, entry, hash FROM records WHERE author = ?",
                (author.raw,),
            ).fetchall()
            seq, *columns = data.draw(st.sampled_from(rows), label="row")
            names = [n for n, v in zip(COLUMNS, columns, strict=True) if v is not None]
            name = data.draw(st.sampled_from(names), label="column")
            value = bytearray(columns[COLUMNS.index(name)])
            bit = data.draw(st.integers(0, len(value) * 8 - 1), label="bit")
            value[bit // 8] ^= 1 << (bit % 8)
            raw.execute(
                f"UPDATE records SET {name} = ? WHERE author = ? AND seq = ?",
                (bytes(value), author.raw, seq),
            )
            raw.commit()
        finally:
            raw.close()
        with Store.open(path) as store:
            violation = store.verify(author)
            assert violation is not None
            other = key(BOB if signer is ALICE else ALICE)
            assert store.verify(other) is None


def test_a_long_import_that_fails_late_writes_nothing(store: Store) -> None:
    """Imports are written in chunks as they stream: a late violation rolls them all back."""
    chain = make_chain(CAROL, 300)
    blobs = [r.to_bytes() for r in chain]
    blobs[-1] = make_chain(CAROL, 1)[0].to_bytes()  # a second genesis at the end
    with pytest.raises(ChainError, match=r"record 299 \(seq 0\): seq: "):
        store.import_chain(iter(blobs))
    assert store.authors() == []
    assert store.count(key(CAROL)) == 0

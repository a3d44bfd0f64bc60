"""Benchmark of the source chain and its store, against raw references measured in the same run.

Prints:
- durable single appends/s vs raw SQLite single-row transactions/s with the
  same durability (WAL, synchronous=FULL) and the same row size:
  ``append_ratio`` (target >= 0.5);
- batched appends/s (100 records a transaction);
- ``verify_chain`` actions/s over chains of 1k, 10k and 100k actions (from
  their portable bytes, as an auditor reads them) vs raw pynacl verifies/s:
  ``verify_ratio`` (target >= 0.7) and the rate at each length (linear means flat);
- the time to open a store holding a 100k-action chain, check it as the
  daemon does at start (SQLite's quick check, every kept head read back) and
  read its head (target <= 2 s), and the check alone;
- reading that chain for a peer (``record_blobs``, each record checked
  against its key) and as records for a view (``records``), records/s.

Usage: ``python bench/chain.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import nacl.signing

from conode.chain import ActionKind, ChainHead, Record, author_record, verify_encoded_chain
from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.store import Store


def make_chain(length: int, signer: Signer) -> list[Record]:
    """A valid chain: a genesis, then create-entry records with small entries."""
    records: list[Record] = []
    head: ChainHead | None = None
    for seq in range(length):
        kind = ActionKind.GENESIS if seq == 0 else ActionKind.CREATE
        record = author_record(
            signer,
            head,
            kind=kind,
            timestamp=1_700_000_000_000_000 + seq,
            entry={"n": seq, "memo": "bench entry"},
            entry_type=None if seq == 0 else "bench/n",
        )
        records.append(record)
        head = ChainHead.after(record)
    return records


def raw_commit_rate(directory: Path, count: int, row_size: int) -> float:
    """Single-row INSERT transactions/s on a fresh WAL database with synchronous=FULL."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB UNIQUE, v BLOB)")
    payload = os.urandom(row_size)
    start = time.perf_counter()
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (i.to_bytes(32, "big"), payload))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def append_rate(directory: Path, records: list[Record], batch: int) -> float:
    """Records/s appended through ``Store.append`` in batches of ``batch`` (1 = single appends)."""
    path = directory / f"append-{batch}.db"
    with Store.open(path) as store:
        store.append(records[:1])
        rest = records[1:]
        start = time.perf_counter()
        for i in range(0, len(rest), batch):
            store.append(rest[i : i + batch])
        elapsed = time.perf_counter() - start
    return len(rest) / elapsed


def raw_verify_rate(seconds: float, message_size: int) -> float:
    key = nacl.signing.SigningKey(b"\x02" * 32)
    message = os.urandom(message_size)
    signature = key.sign(message).signature
    verify_key = key.verify_key
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verify_key.verify(message, signature)
        count += 200
    return count / (time.perf_counter() - start)


def verify_rate(blobs: list[bytes], rounds: int) -> float:
    """Actions/s of ``verify_encoded_chain`` (median of ``rounds``)."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        violation = verify_encoded_chain(blobs)
        elapsed = time.perf_counter() - start
        assert violation is None, violation
        rates.append(len(blobs) / elapsed)
    return statistics.median(rates)


def open_time(directory: Path, records: list[Record], author: AgentKey) -> tuple[float, float]:
    """Seconds to open a store holding ``records``, check it and read the chain's head; and the check."""
    path = directory / "open.db"
    with Store.open(path) as store:
        for i in range(0, len(records), 5_000):
            store.append(records[i : i + 5_000])
    samples, checks = [], []
    for _ in range(3):
        start = time.perf_counter()
        with Store.open(path) as store:
            checked = time.perf_counter()
            store.check_integrity()
            checks.append(time.perf_counter() - checked)
            head = store.head(author)
            assert head is not None and head.seq == len(records) - 1
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), statistics.median(checks)


def read_rates(directory: Path, author: AgentKey, count: int) -> tuple[float, float]:
    """Records/s read from the store of ``open_time`` for a peer (portable bytes) and for a view."""
    with Store.open(directory / "open.db") as store:
        start = time.perf_counter()
        blobs = sum(1 for _ in store.record_blobs(author))
        for_peers = blobs / (time.perf_counter() - start)
        start = time.perf_counter()
        records = sum(1 for _ in store.records(author))
        for_views = records / (time.perf_counter() - start)
    assert blobs == records == count
    return for_peers, for_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    args = parser.parse_args()
    quick = args.quick
    signer = Signer(b"\x07" * 32)
    author = AgentKey(signer.public_key)
    lengths = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    appends = 300 if quick else 2_000
    figures: dict[str, object] = {"quick": quick}

    print("building chains ...", flush=True)
    longest = make_chain(max(lengths), signer)
    row_size = len(longest[1].action_bytes) + len(longest[1].signature) + len(longest[1].entry or b"")

    with tempfile.TemporaryDirectory(prefix="conode-bench-") as tmp:
        directory = Path(tmp)
        raw = raw_commit_rate(directory, appends, row_size)
        single = append_rate(directory, longest[: appends + 1], 1)
        batched = append_rate(directory, longest[: min(len(longest), 20_001)], 100)
        figures.update(
            raw_commits_per_s=round(raw),
            single_appends_per_s=round(single),
            append_ratio=round(single / raw, 3),
            batched_appends_per_s=round(batched),
        )
        print(f"raw SQLite commits/s (WAL, FULL)   {raw:10,.0f}   (reference)")
        print(f"durable single appends/s            {single:10,.0f}   (ratio {single / raw:.3f}, target >= 0.5)")
        print(f"batched appends/s (100 a batch)     {batched:10,.0f}")

        raw_verify = raw_verify_rate(1.0 if quick else 3.0, len(longest[1].action_bytes))
        figures["raw_verify_per_s"] = round(raw_verify)
        print(f"raw pynacl Ed25519 verifies/s       {raw_verify:10,.0f}   (reference)")
        rates = {}
        for length in lengths:
            blobs = [r.to_bytes() for r in longest[:length]]
            rate = verify_rate(blobs, 3 if length < 100_000 else 1)
            rates[length] = rate
            figures[f"verify_per_s_{length}"] = round(rate)
            print(f"verify_chain, {length:>7,} actions     {rate:10,.0f} actions/s (ratio {rate / raw_verify:.3f})")
        worst = min(rates.values())
        figures["verify_ratio"] = round(worst / raw_verify, 3)
        figures["verify_linearity"] = round(rates[lengths[-1]] / rates[lengths[0]], 3)
        print(f"verify_ratio (slowest length)       {worst / raw_verify:10.3f}   (target >= 0.7)")

        seconds, check = open_time(directory, longest, author)
        figures["open_s"] = round(seconds, 4)
        figures["integrity_check_s"] = round(check, 4)
        figures["open_chain_length"] = len(longest)
        print(f"open a store with {len(longest):,} actions   {seconds:10.4f} s (target <= 2 s)")
        print(f"  of which the integrity check      {check:10.4f} s")
        for_peers, for_views = read_rates(directory, author, len(longest))
        figures["read_for_peers_per_s"] = round(for_peers)
        figures["read_for_views_per_s"] = round(for_views)
        print(f"read the chain for a peer           {for_peers:10,.0f} records/s (checked)")
        print(f"read the chain for a view           {for_views:10,.0f} records/s (checked)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

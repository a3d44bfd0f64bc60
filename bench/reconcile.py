"""Benchmark of range-based set reconciliation (and of arc sizes), against listing every hash.

Two holders share n items; between them they differ by d (the initiator lacks
ceil(d/2) items the responder holds, the responder lacks floor(d/2)). For
n = 10^3 .. 10^6 and d = 0, 1, 10, 1000 it prints, for one whole session on
the full ring:

- bytes (both ways) and messages, next to the reference: each side sends
  the 32-byte hash of every item it holds, one message each way (roughly
  what today's heads gossip does, a hash per item) -- ``bytes_ratio`` is
  reconciliation bytes / reference bytes;
- CPU seconds of the session (both sides, in this process; median of 3), next to the
  reference's CPU (joining the hashes into messages and taking the set
  difference on both sides), and the one-off time to build each side's
  sorted snapshot (``HeldItems``), which a node would keep, not rebuild;
- a store-backed side (``IndexedItems`` over a node's SQLite store on tmpfs,
  ``conode.store.heldops``) reconciling with an in-memory one, for n = 10^4
  .. 10^6 and d = 0, 10: CPU seconds of the session (median of 3) next to the
  same session with both sides in memory, and next to the time to snapshot
  the store's n items into memory (what a node would pay each session
  without the sector index);
- the storage arcs of 1 000 nodes with R = 3: the busiest node's share of
  the ring as a multiple of R/N, with random places and with the joiner
  taking the best of ``LOCATION_CHOICES`` candidates (the scale target is
  at most 3).

Usage: ``python bench/reconcile.py [--quick]`` (quick: n up to 10^5). The
last line is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from conode.dht.arcs import (
    LOCATION_CHOICES,
    RING,
    Arc,
    Holder,
    Ring,
    choose_location,
    location_candidates,
)
from conode.dht.itemset import HeldItems, IndexedItems, Item, ItemSource
from conode.dht.reconcile import Reconciler, Settings
from conode.hashes import ActionHash
from conode.store import ShardStore
from conode.store.heldops import HeldOps
from conode.store.migrations import migrate

_FULL = Arc.full()


def make_items(rnd: random.Random, count: int) -> list[Item]:
    return [Item(rnd.randrange(RING), ActionHash(rnd.randbytes(32))) for _ in range(count)]


def session(a: ItemSource, b: ItemSource, settings: Settings) -> tuple[int, int, float, Reconciler]:
    """Bytes, messages and CPU seconds (median of 3 runs) of one whole session; the initiator."""
    times = []
    for _ in range(3):
        start = time.process_time()
        first, message = Reconciler.initiate(a, _FULL, settings)
        second, reply = Reconciler.accept(b, message, settings)
        side, other = first, second
        while reply is not None:
            reply = side.receive(reply)
            side, other = other, side
        times.append(time.process_time() - start)
    return first.bytes_sent + first.bytes_received, first.messages, statistics.median(times), first


def reference(a: list[Item], b: list[Item]) -> tuple[int, float]:
    """Bytes and CPU seconds of listing every hash both ways and taking the differences."""
    start = time.process_time()
    to_b = b"".join(item.hash.raw for item in a)
    to_a = b"".join(item.hash.raw for item in b)
    held_a = {item.hash.raw for item in a}
    held_b = {item.hash.raw for item in b}
    need_a = {to_a[i : i + 32] for i in range(0, len(to_a), 32)} - held_a
    need_b = {to_b[i : i + 32] for i in range(0, len(to_b), 32)} - held_b
    cpu = time.process_time() - start
    assert len(need_a) + len(need_b) >= 0
    return len(to_a) + len(to_b), cpu


def busiest_share(nodes: int, replication: int, choices: int, seed: int) -> float:
    """The largest arc among ``nodes`` nodes joining one by one, as a multiple of R/N."""
    rnd = random.Random(seed)
    peers = [f"peer-{rnd.getrandbits(64):016x}" for _ in range(nodes)]
    seen: list[int] = []
    holders = []
    for peer in peers:
        loc = choose_location(peer, seen, choices) if choices > 1 else location_candidates(peer, 1)[0]
        seen.append(loc)
        holders.append(Holder(loc, peer))
    arcs = Ring.of(holders, replication).arcs()
    return max(arc.fraction for arc in arcs.values()) * nodes / replication


def store_of(path: Path, items: list[Item]) -> ShardStore:
    """A node store file holding ``items`` as its ops (written straight into the index)."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path))
    conn.execute("BEGIN")
    HeldOps(conn).add((item.loc, item.hash.raw) for item in items)
    conn.execute("COMMIT")
    conn.close()
    return ShardStore.open(path, durable=False)


def store_backed(sizes: list[int], settings: Settings, figures: dict[str, object]) -> None:
    """Sessions with a store-backed initiator, next to both sides in memory and to snapshotting."""
    print(f"{'n':>9} {'d':>5} {'store cpu s':>11} {'memory cpu s':>12} {'snapshot s':>10}")
    rnd = random.Random(99)
    where = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    for n in sizes:
        common = make_items(rnd, n)
        extra = make_items(rnd, 10)
        for d in (0, 10):
            items_a, items_b = common + extra[: d // 2], common + extra[d // 2 : d]
            with tempfile.TemporaryDirectory(dir=where) as tmp:
                store = store_of(Path(tmp) / "node.db", items_a)
                try:
                    start = time.process_time()
                    snapshot = HeldItems(
                        Item(loc, ActionHash(digest))
                        for loc, digest in store.held_keys((0, b""), None, 0, n + d)
                    )
                    snapshot_cpu = time.process_time() - start
                    b = HeldItems(items_b)
                    _, _, store_cpu, first = session(IndexedItems(store), b, settings)
                    assert len(first.have) == d // 2 and len(first.need) == d - d // 2
                    _, _, memory_cpu, _ = session(snapshot, b, settings)
                finally:
                    store.close()
            tag = f"n{n}_d{d}"
            figures.update({
                f"store_cpu_s_{tag}": round(store_cpu, 4), f"memory_cpu_s_{tag}": round(memory_cpu, 4),
                f"snapshot_s_{tag}": round(snapshot_cpu, 4),
            })
            print(f"{n:>9,} {d:>5} {store_cpu:>11.4f} {memory_cpu:>12.4f} {snapshot_cpu:>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 10^5, under a minute")
    args = parser.parse_args()
    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    differences = [0, 1, 10, 1_000]
    settings = Settings()
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    figures: dict[str, object] = {"quick": args.quick, "loadavg": load, "branches": settings.branches,
                                  "list_max": settings.list_max, "frame_limit": settings.frame_limit}
    print(f"load average {load}; branches {settings.branches}, list_max {settings.list_max}, "
          f"bulk_max {settings.bulk_max}, frame_limit {settings.frame_limit}")
    print(f"{'n':>9} {'d':>5} {'bytes':>11} {'ref bytes':>11} {'ratio':>8} {'msgs':>5} "
          f"{'cpu s':>7} {'ref cpu s':>9} {'build s':>8}")
    rnd = random.Random(2024)
    for n in sizes:
        common = make_items(rnd, n)
        extra = make_items(rnd, max(differences))
        for d in differences:
            only_b, only_a = extra[: math.ceil(d / 2)], extra[math.ceil(d / 2) : d]
            items_a, items_b = common + only_a, common + only_b
            start = time.process_time()
            a, b = HeldItems(items_a), HeldItems(items_b)
            build = (time.process_time() - start) / 2
            sent, messages, cpu, first = session(a, b, settings)
            assert len(first.need) == len(only_b) and len(first.have) == len(only_a)
            ref_bytes, ref_cpu = reference(items_a, items_b)
            tag = f"n{n}_d{d}"
            figures.update({
                f"bytes_{tag}": sent, f"messages_{tag}": messages, f"cpu_s_{tag}": round(cpu, 4),
                f"ref_bytes_{tag}": ref_bytes, f"ref_cpu_s_{tag}": round(ref_cpu, 4),
                f"bytes_ratio_{tag}": round(sent / ref_bytes, 6),
            })
            print(f"{n:>9,} {d:>5} {sent:>11,} {ref_bytes:>11,} {sent / ref_bytes:>8.5f} {messages:>5} "
                  f"{cpu:>7.3f} {ref_cpu:>9.3f} {build:>8.3f}")
        figures[f"build_s_n{n}"] = round(build, 3)
        del common, extra, a, b, items_a, items_b
    for d in differences:
        per_difference = [figures[f"bytes_n{n}_d{d}"] for n in sizes]
        print(f"d = {d:>5}: bytes at n = {sizes[0]:,} .. {sizes[-1]:,}: {per_difference}")
    store_backed([n for n in sizes if n >= 10_000], settings, figures)
    for choices in (1, LOCATION_CHOICES):
        shares = [busiest_share(1_000, 3, choices, seed) for seed in range(5)]
        mean = sum(shares) / len(shares)
        figures[f"arc_busiest_x_mean_choices{choices}"] = round(mean, 3)
        print(f"1 000 nodes, R = 3, {choices} candidate place(s): busiest arc = {mean:.2f} x R/N "
              f"(mean of 5 networks; target <= 3)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

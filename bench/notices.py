"""Benchmark of pushed want notices: what the exchange's watcher costs a node per offer it stores.

A real ``NodeStore`` (SQLite WAL in a temporary directory) holds 10k wants by 100 agents the
node does not host (2k with ``--quick``), 1k updates, and 20 wants of the one member it hosts;
a real ``AppHost`` runs the exchange's watchers. Each offer is appended to the store and the
host's watch pass is run on it (``AppHost.watch_new``, what the watch task runs when ingest
wakes it): ``watch_offer_p50_ms``/``p99``: the watcher's time per offer, reading every held want
and update from the store (the rule is the pull view's, over the new offer and every want).
``catch_up_per_offer_ms``: the same offers watched again from a cursor at zero (a first start),
per offer. ``inbox_ms``: the ``inbox`` function listing the member's notices.

Usage: ``python bench/notices.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import OFFER, UPDATE, WANT, app
from conode.apps.exchange.entries import DAY_US
from conode.apps.hosting import NodeApps
from conode.chain import ActionKind, ChainHead, Record, author_record
from conode.crypto import Signer
from conode.dht.memnet import MemoryNetwork
from conode.hashes import AgentKey
from conode.node import HostedAgent, Node
from conode.store import NodeStore
from conode.testing.network import make_charter

START = 1_700_000_000_000_000
WORDS = ("bread", "sourdough", "rye", "cheese", "apples", "honey", "soap", "repair", "timber")
CATEGORIES = ("food/bakery", "food/dairy", "food/fruit", "household", "services/repair")
RUNNING = {"exchange": app}


class Chains:
    """Signed chains appended straight to a store (a benchmark's setup, not ingest)."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.heads: dict[AgentKey, ChainHead | None] = {}
        self.clock = START

    def add(self, signer: Signer, entry_type: str, entry: dict[str, Any]) -> Record:
        key = AgentKey(signer.public_key)
        if key not in self.heads:
            genesis = author_record(
                signer, None, kind=ActionKind.GENESIS, timestamp=self.clock, entry={"bench": 1}
            )
            self.store.append([genesis])
            self.heads[key] = ChainHead.after(genesis)
        self.clock += 1_000
        record = author_record(
            signer, self.heads[key], kind=ActionKind.CREATE, timestamp=self.clock,
            entry=entry, entry_type=entry_type,
        )  # fmt: skip
        self.store.append([record])
        self.heads[key] = ChainHead.after(record)
        return record


def listing(rng: random.Random, entry_type: str, expires: int, **extra: Any) -> dict[str, Any]:
    return app.entry(
        entry_type, title=f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)}",
        description=" ".join(rng.choice(WORDS) for _ in range(5)),
        category=rng.choice(CATEGORIES), price=rng.randint(50, 5_000), unit="each",
        quantity=rng.randint(1, 100), location={"lat": 51_507_400, "lon": -127_800},
        region=None, expires=expires, **extra,
    )  # fmt: skip


def measure(quick: bool) -> dict[str, Any]:
    rng = random.Random(7)
    wants, offers = (2_000, 50) if quick else (10_000, 200)
    member = Signer(bytes([200]) * 32)
    coop = Signer(bytes([201]) * 32)
    others = [Signer(bytes([i + 1]) * 32) for i in range(100)]
    charter = make_charter([("coop", coop)])
    figures: dict[str, Any] = {"notice_wants_held": wants, "notice_offers": offers}
    with tempfile.TemporaryDirectory() as tmp:
        store = NodeStore.open(Path(tmp) / "node.db")
        chains = Chains(store)
        expires = START + 300 * DAY_US
        started = time.perf_counter()
        held = [
            chains.add(rng.choice(others), WANT, listing(rng, WANT, expires)) for _ in range(wants)
        ]
        for want in rng.sample(held, wants // 10):
            update = app.entry(UPDATE, item=want.hash, prev=want.hash, expires=expires + DAY_US)
            chains.add(_signer_of(others, want), UPDATE, update)
        for _ in range(20):
            chains.add(member, WANT, listing(rng, WANT, expires))
        print(f"stored {wants} wants and their updates in {time.perf_counter() - started:.1f} s")
        node = Node(
            store=store, charter=charter, transport=MemoryNetwork(seed=1).transport("bench"),
            node_signer=Signer(bytes([202]) * 32), agents=[HostedAgent("member", member)],
            clock=lambda: chains.clock, apps=NodeApps(RUNNING),
        )  # fmt: skip
        plan = AppPlan((), RUNNING, NodeApps(RUNNING))
        host = AppHost(node, AppCatalog(store, charter, {}), plan)

        async def run() -> None:
            await host.watch_new()  # the wants and updates: watched once, as at a first start
            each: list[float] = []
            for _ in range(offers):
                chains.add(coop, OFFER, listing(rng, OFFER, expires))
                t0 = time.perf_counter()
                assert await host.watch_new() == 1
                each.append((time.perf_counter() - t0) * 1_000)
            figures["watch_offer_p50_ms"] = round(statistics.median(each), 2)
            figures["watch_offer_p99_ms"] = round(sorted(each)[int(0.99 * (len(each) - 1))], 2)
            store.set_meta(f"app_watch/{OFFER}", (0).to_bytes(8, "big"))
            t0 = time.perf_counter()
            assert await host.watch_new() == offers
            figures["catch_up_per_offer_ms"] = round((time.perf_counter() - t0) * 1_000 / offers, 2)
            kept = store.app_state("exchange").items("notice/")
            figures["notices_kept"] = len(kept)
            t0 = time.perf_counter()
            told = app.functions["inbox"](host.api("exchange"), agent=AgentKey(member.public_key))
            figures["inbox_ms"] = round((time.perf_counter() - t0) * 1_000, 2)
            assert len(told) == len(kept)

        trio.run(run)
        store.close()
    print(
        f"watching an offer with {wants} wants held: p50 {figures['watch_offer_p50_ms']} ms, "
        f"p99 {figures['watch_offer_p99_ms']} ms; catch-up {figures['catch_up_per_offer_ms']} ms "
        f"per offer; {figures['notices_kept']} notices kept, listed in {figures['inbox_ms']} ms"
    )
    return figures


def _signer_of(signers: list[Signer], record: Record) -> Signer:
    return next(s for s in signers if AgentKey(s.public_key) == record.action.author)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer wants and offers")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick)))


if __name__ == "__main__":
    main()

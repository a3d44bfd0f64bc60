"""The web page's search data at full size: text hits read in a search's first round, 200 (as
before) against a page and its margin (``SEARCH_MARGIN``), in one process, interleaved.

One node of ``bench/web.py``'s two-node network takes 10 000 offers (``--offers N``) with the
same titles; then ``NodeAdapter.search_offers("bread")`` (what the search page shows: 50 of
212 hits at 10 000 offers) runs in turns with the first round reading 200 hits (the reference:
``SEARCH_MARGIN`` 150 makes the first round 50 + 150, the old depth) and 50 + 8, the CPU time
(``time.process_time``) of each call recorded, 200 rounds (``--quick``: 50). Both must show the
same page. At 1 000 offers "bread" has 21 hits, fewer than either round reads: no difference.

Usage: ``python bench/search_page.py [--quick] [--offers N]``. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).parent))
import web  # bench/ is not a package: bench/web.py's network, titles and settings

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import functions
from conode.apps.hosting import NodeApps
from conode.testing.network import TestNetwork
from conode.web.adapter import NodeAdapter

OLD_MARGIN = 150
"""With a page of 50, a first round of 50 + 150 = 200 hits: the depth before this change."""


async def measure(directory: Path, offers: int, rounds: int) -> dict[str, Any]:
    async with TestNetwork.start(
        directory, nodes=2, members=2, apps=("exchange",), settings=web.SETTINGS, seed="bench-web"
    ) as net:
        node = net.nodes[0]
        host = AppHost(
            node, AppCatalog(node.store, net.charter, {}),
            AppPlan((), web.RUNNING, NodeApps(web.RUNNING)),
        )  # fmt: skip
        adapter = NodeAdapter(node, host)
        coop = str(net.agents["coop0"])
        started = time.perf_counter()
        for i in range(offers):
            words = " ".join(web.WORDS[(i * k + k) % len(web.WORDS)] for k in (1, 7, 13))
            await host.call(
                "exchange", "offer-add",
                {"title": f"{words} {i}", "category": f"cat{i % 20}", "price": 100 + i % 900,
                 "unit": "unit", "quantity": 10, "days": 365},
                agent=coop, resolve=lambda text, _hosted: net.agents["coop0"],
            )  # fmt: skip
        print(f"  {offers} offers posted in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        await adapter.search_offers("bread", None, None, None)  # builds the text index
        margins = {"first_round_200": OLD_MARGIN, "first_round_page": functions.SEARCH_MARGIN}
        cpu: dict[str, list[float]] = {name: [] for name in margins}
        shown: dict[str, list[str]] = {}
        try:
            for _ in range(rounds):
                for name, margin in margins.items():
                    functions.SEARCH_MARGIN = margin  # type: ignore[misc]
                    start = time.process_time()
                    found = await adapter.search_offers("bread", None, None, None)
                    cpu[name].append((time.process_time() - start) * 1000)
                    shown[name] = [str(o["hash"]) for o in found]
        finally:
            functions.SEARCH_MARGIN = margins["first_round_page"]  # type: ignore[misc]
        assert shown["first_round_200"] == shown["first_round_page"], "the two show other pages"
        figures: dict[str, Any] = {
            "offers": offers,
            "rounds": rounds,
            "shown": len(shown["first_round_page"]),
        }
        for name, times in cpu.items():
            figures[f"{name}_cpu_p50_ms"] = round(statistics.median(times), 2)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 rounds instead of 200")
    parser.add_argument("--offers", type=int, default=10_000, metavar="N")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        figures = trio.run(measure, Path(tmp), args.offers, 50 if args.quick else 200)
    figures.update(loadavg_before=round(before, 2), loadavg_after=round(os.getloadavg()[0], 2))
    print(
        f"search page data, CPU p50: first round of 200 hits {figures['first_round_200_cpu_p50_ms']} ms"
        f" (reference), of a page and its margin {figures['first_round_page_cpu_p50_ms']} ms;"
        f" the same {figures['shown']} shown"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""The grant duty pass (``grants-reestimate``, run every 30 s by a node) over many grant lines.

One co-op posts ``--lines`` offers (each granted), then the month turns and the
pass runs twice: the first does the month's work, the second finds nothing to
do (the idle pass a node repeats every 30 s). With ``grant_expiry_months`` off
the first pass only skips (each offer's first whole month is not over); with it
on (1 month) the first pass expires every line. Built through the real rules in a
``Ledger`` with ``bench/apps.py``'s ``GrantBenchAPI``.

Usage: ``python bench/grant_duty.py [--quick] [--lines N]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import trio
from apps import GrantBenchAPI  # bench/apps.py: the script's directory is on the path

from conode.apps.exchange import app, period_of, period_start
from conode.apps.exchange.entries import DAY_US
from conode.testing import Ledger
from conode.validation.charter import Limits


def measure(lines: int, expiry_months: int) -> tuple[float, float, int]:
    """(first pass ms, idle pass ms, expiries written) over ``lines`` lines of one co-op."""
    config: dict[str, Any] = {"issues_credit": True, "grant_cap": 50_000}
    if expiry_months:
        config["grant_expiry_months"] = expiry_months
    wide = Limits(10**12, 10**13)
    ledger = Ledger(
        apps={"exchange": app}, foundation=True, coop_limits=wide, member_limits=wide,
        app_config={"exchange": config},
    )  # fmt: skip
    api = GrantBenchAPI(ledger)
    seller = ledger["coop0"].key

    async def run() -> tuple[float, float, int]:
        for i in range(lines):
            await app.functions["offer-add"](
                api, title=f"Jam {i}", category="food", price=10, unit="jar", quantity=5,
                agent=seller,
            )  # fmt: skip
        ledger.advance(period_start(period_of(ledger.clock) + 1) + DAY_US - ledger.clock)
        t0 = time.perf_counter()
        rows = await app.functions["grants-reestimate"](api)
        first = (time.perf_counter() - t0) * 1_000
        t0 = time.perf_counter()
        await app.functions["grants-reestimate"](api)
        idle = (time.perf_counter() - t0) * 1_000
        return first, idle, sum(1 for row in rows if "grant" in row.get("expiry", {}))

    return trio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300, help="grant lines (default 300)")
    parser.add_argument("--quick", action="store_true", help="50 lines: a run of a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.lines = 50
    figures: dict[str, Any] = {"quick": args.quick, "grant_lines": args.lines}
    for name, months in (("off", 0), ("on", 1)):
        first, idle, expired = measure(args.lines, months)
        print(
            f"expiry {name}: first pass {first:.0f} ms ({expired} expired), "
            f"idle pass {idle:.0f} ms, over {args.lines} lines"
        )
        figures[f"duty_first_ms_expiry_{name}"] = round(first, 1)
        figures[f"duty_idle_ms_expiry_{name}"] = round(idle, 1)
        figures[f"duty_expired_{name}"] = expired
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

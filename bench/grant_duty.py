"""The grant duty pass (``grants-reestimate``, run every 30 s by a node) over many offers and lines.

Two shapes, each built through the real rules in a ``Ledger`` with ``bench/apps.py``'s
``GrantBenchAPI``; in each the month then turns and the pass runs twice: the first does the
month's work, the second finds nothing to do (the idle pass a node repeats every 30 s).

- **one co-op, ``--lines`` offers** (each raising what it has on offer, so each granted): one
  grant line of many offers. The first pass writes the line's re-estimate (the month's sales
  and what the co-op has on offer read once); with ``grant_expiry_months`` on (1 month) it
  then expires the line.
- **``--lines`` co-ops, one offer each**: as many grant lines, each re-estimated (and, with
  expiry on, expired) by the pass.

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


def measure(lines: int, expiry_months: int, coops: int) -> tuple[float, float, int, int]:
    """(first pass ms, idle pass ms, grants written, expiries written): ``lines`` offers over
    ``coops`` co-ops (one co-op: all of them; else one each)."""
    config: dict[str, Any] = {"issues_credit": True, "grant_cap": 50_000}
    if expiry_months:
        config["grant_expiry_months"] = expiry_months
    wide = Limits(10**12, 10**13)
    ledger = Ledger(
        coops=max(coops, 2), members=0 if coops > 2 else 2, apps={"exchange": app},
        foundation=True, coop_limits=wide, member_limits=wide, app_config={"exchange": config},
    )  # fmt: skip
    api = GrantBenchAPI(ledger)
    sellers = [ledger[f"coop{i % coops}"].key for i in range(lines)]

    async def run() -> tuple[float, float, int, int]:
        for i, seller in enumerate(sellers):
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
        written = sum(1 for row in rows if "grant" in row)
        return first, idle, written, sum(1 for row in rows if "grant" in row.get("expiry", {}))

    return trio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300, help="offers and lines (default 300)")
    parser.add_argument("--quick", action="store_true", help="50: a run of a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.lines = 50
    figures: dict[str, Any] = {"quick": args.quick, "grant_lines": args.lines}
    for shape, coops in (("", 1), ("_coops", args.lines)):
        for name, months in (("off", 0), ("on", 1)):
            first, idle, written, expired = measure(args.lines, months, coops)
            what = f"1 co-op, {args.lines} offers" if coops == 1 else f"{coops} co-ops, 1 offer each"
            print(
                f"{what}, expiry {name}: first pass {first:.0f} ms ({written} re-estimated, "
                f"{expired} expired), idle pass {idle:.0f} ms"
            )
            figures[f"duty{shape}_first_ms_expiry_{name}"] = round(first, 1)
            figures[f"duty{shape}_idle_ms_expiry_{name}"] = round(idle, 1)
            figures[f"duty{shape}_expired_{name}"] = expired
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Grants across real nodes: two ``Node``s with their own SQLite stores on an in-memory network,
the exchange app hosted as ``conode run`` hosts it (``AppHost``), months passing on their clocks.

Co-op 0 (node 0, also the steward hosting the Foundation) posts an offer and is granted credit;
buyers on node 1 pay with ``offer=``; at the next month the node's own duties re-estimate the grant
from the sales it counts and collect the Foundation's share; node 1 judges every grant with the
same rules and the whole network audits to zero.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from grantnet import grant_network

from conode.apps.exchange import GRANT, SHARE, app
from conode.hashes import ActionHash
from conode.validation.audit import audit

SEED = "grants"
GRANTS = {"issues_credit": True, "grant_cap": 50_000}


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    with trio.fail_after(timeout):
        while not (value := check()):
            await trio.sleep(0.05)
    return value


async def test_grants_re_estimates_and_shares_across_two_nodes(tmp_path: Path) -> None:
    async with grant_network(tmp_path, SEED, GRANTS) as grants:
        net, hosts, clock, charter = grants.net, grants.hosts, grants.clock, grants.charter
        node0, node1 = net.nodes
        api0 = hosts[0].api("exchange")

        posted = await app.functions["offer-add"](
            api0, title="Sourdough bread", category="food/bakery", price=100, unit="loaf",
            quantity=200, agent=net.agents["coop0"],
        )  # fmt: skip
        offer = ActionHash.parse(posted["hash"])
        first = posted["grant"]["grant"]
        assert (first["gross"], first["share"], first["credit"]) == (20_000, 2_000, 18_000)
        assert net.balance("coop0") == 18_000

        clock.next_month()
        bought = await node1.pay(
            net.agents["coop1-m0"], net.agents["coop0"], 6_000, memo="a month", offer=offer
        )
        assert bought.committed, bought.reason
        own = await node0.pay(net.agents["coop0-m0"], net.agents["coop0"], 3_000, offer=offer)
        assert own.committed, own.reason
        history = node1.history(net.agents["coop1-m0"])
        assert (history[-1]["offer"], history[-1]["offer_title"]) == (
            str(offer),
            "Sourdough bread",
        )

        clock.next_month()
        await hosts[1].run_duties()  # node 1 hosts no granted co-op and not the Foundation
        assert node1.store.activity(net.agents["coop1"]).balance == 0
        await hosts[0].run_duties()  # node 0: re-estimate, then collect as the steward
        (line,) = await hosts[0].call(
            "exchange", "grants", {"coop": "coop0"}, agent=None,
            resolve=lambda text, hosted: net.agents[str(text)],
        )  # fmt: skip
        assert [g["basis"] for g in line["grants"]] == ["new", "reestimate"]
        again = line["grants"][-1]
        assert again["sales"] == {"count": 1, "total": 6_000, "excluded": 3_000, "new": 0}
        assert (again["gross"], line["granted"]) == (-14_000, 6_000)
        assert line["collected"] == line["shares"] == 2_000
        assert net.balance("foundation") == 2_000
        await hosts[0].run_duties()  # idempotent: nothing more to do this month
        assert len(list(node0.store.records_of_type(GRANT))) == 2

        # node 1 judges the grants and the share with the same rules (it walks co-op 0's chain)
        await net.converge()
        for kind, count in ((GRANT, 2), (SHARE, 1)):
            held = list(node1.store.records_of_type(kind))
            assert len(held) == count and all(node1.store.validated(r.hash) for r in held)
        chains = [list(node1.store.records(key)) for key in net.agents.values()]
        report = audit(charter, chains, grants.apps)
        assert report.ok, report.violations
        assert report.zero_sum and report.issued == 20_000 - 14_000

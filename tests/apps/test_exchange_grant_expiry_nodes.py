"""An expiry across real nodes: the co-op's node expires its due grant line by itself (its app
duties, as ``conode run`` runs them), and a second node judges the expiry with the same rules.

Two ``Node``s with their own SQLite stores on an in-memory network, the exchange hosted by
``AppHost``; the charter switches expiry on after one month (``grant_expiry_months`` = 1). Every
node's clock is the wall clock moved on by whole months when the test says so.
"""

from __future__ import annotations

from pathlib import Path

from grantnet import grant_network

from conode.apps.exchange import GRANT, SHARE, app, period_label, period_of
from conode.validation.audit import audit

SEED = "grant-expiry"
EXPIRING = {"issues_credit": True, "grant_cap": 50_000, "grant_expiry_months": 1}


async def test_the_coops_node_expires_a_due_line_by_itself_and_peers_accept_it(
    tmp_path: Path,
) -> None:
    async with grant_network(tmp_path, SEED, EXPIRING) as grants:
        net, hosts, clock, charter = grants.net, grants.hosts, grants.clock, grants.charter
        node0, node1 = net.nodes
        api0 = hosts[0].api("exchange")

        posted = await app.functions["offer-add"](
            api0, title="Sourdough bread", category="food/bakery", price=100, unit="loaf",
            quantity=200, agent=net.agents["coop0"],
        )  # fmt: skip
        assert posted["grant"]["grant"]["credit"] == 18_000
        posted_in = period_of(clock())
        await hosts[0].run_duties()  # this month: not due, nothing expires
        assert net.balance("coop0") == 18_000
        assert len(list(node0.store.records_of_type(GRANT))) == 1

        clock.next_month()
        # the month's re-estimate (unchanged), then due: expire the unspent 18 000; collect
        await hosts[0].run_duties()
        assert net.balance("coop0") == 0
        assert net.balance("foundation") == 2_000
        await hosts[0].run_duties()  # idempotent: one expiry per positive grant
        assert len(list(node0.store.records_of_type(GRANT))) == 3

        await net.converge()
        for kind, count in ((GRANT, 3), (SHARE, 1)):
            held = list(node1.store.records_of_type(kind))
            assert len(held) == count and all(node1.store.validated(r.hash) for r in held)
        (line,) = await hosts[1].call(
            "exchange", "grants", {"coop": "coop0"}, agent=None,
            resolve=lambda text, hosted: net.agents[str(text)],
        )  # fmt: skip
        assert [g["basis"] for g in line["grants"]] == ["new", "reestimate", "expire"]
        assert (line["last_expiry"], line["expires"], line["granted"]) == (
            period_label(posted_in + 1), None, 2_000,
        )  # fmt: skip
        chains = [list(node1.store.records(key)) for key in net.agents.values()]
        report = audit(charter, chains, grants.apps)
        assert report.ok, report.violations
        assert report.zero_sum and report.issued == 2_000  # only the Foundation's share

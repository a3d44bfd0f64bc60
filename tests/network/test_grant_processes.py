"""``conode grants`` and ``conode pay --offer`` with real ``conode run`` processes on 127.0.0.1.

Two nodes on a devnet charter that pins the exchange with grants on
(``issues_credit``, ``grant_cap``). Co-op 0 offers bread on node 0 and is granted
credit at once; a member on node 1 buys with ``pay --offer`` and sees what it
bought in ``history``; ``grants`` on node 1 shows co-op 0's grant line (node 1 holds and
judged it); a re-estimate in the line's first month does nothing and says why;
a node that does not host the Foundation collects nothing and says so.
(Re-estimation across months is in ``tests/apps/test_exchange_grants_nodes.py``,
where the nodes' clocks can be moved on.)
"""

from __future__ import annotations

from typing import Any

import pytest
from procs import Net, conode, conode_json, wait_for

from cli.devnet import DEVNET_GRANT_CAP, prepare, start_nodes
from conode.apps.loader import installed_apps
from conode.validation.charter import AppPin

pytestmark = pytest.mark.slow

EXCHANGE = AppPin("exchange", "0.2.0", installed_apps()["exchange"].bundle_hash())


def test_grants_and_offer_payments_across_processes(tmp_path: Any) -> None:
    plan = prepare(tmp_path, 2, "grants-cli", members=1, apps=(EXCHANGE,))
    dirs = [d.root for d in plan.dirs]
    for d in dirs:
        conode(d, "app", "approve", str(EXCHANGE.code_hash))
    net = Net(plan, start_nodes(plan))
    try:
        net.settle()
        offer = conode_json(
            dirs[0], "offer", "add", "Sourdough bread", "--category", "food/bakery",
            "--price", "3.50", "--unit", "loaf", "--quantity", "100", "--as", "coop0",
        )  # fmt: skip
        granted = offer["grant"]["grant"]
        assert (granted["basis"], granted["estimate"]) == ("new", min(35_000, DEVNET_GRANT_CAP))
        assert net.balance(0, "coop0") == granted["credit"]

        def offer_on_node1() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = conode_json(dirs[1], "offer", "search", "sourdough")
            return found or None

        wait_for(offer_on_node1, "node 1 to hold the offer", 60)
        paid = conode_json(
            dirs[1], "pay", net.key("coop0"), "4.00", "--offer", offer["hash"], "--from", "coop1-m0"
        )
        assert paid["committed"], paid
        text = conode(dirs[1], "history", "coop1-m0").stdout
        assert "Sourdough bread" in text and "-4.00" in text
        (row,) = conode_json(dirs[1], "history", "coop1-m0")["payments"]
        assert (row["offer"], row["offer_title"]) == (offer["hash"], "Sourdough bread")
        refused = conode(
            dirs[1], "pay", net.key("coop0"), "1.00", "--offer", row["record"], "--from", "coop1-m0",
            expect=1,
        )  # fmt: skip
        assert "not an exchange offer of the payee" in refused.stderr

        def line_on_node1() -> list[dict[str, Any]] | None:
            lines: list[dict[str, Any]] = conode_json(dirs[1], "grants", "--coop", net.key("coop0"))
            return lines or None

        (line,) = wait_for(line_on_node1, "node 1 to hold the grant", 60)
        assert (line["coop"], line["granted"], line["basis"]) == (
            net.key("coop0"), granted["granted"], "new",
        )  # fmt: skip
        assert [o["offer"] for o in line["offers"]] == [offer["hash"]]
        assert "Sourdough bread" in conode(dirs[1], "grants").stdout
        (again,) = conode_json(dirs[0], "grants", "reestimate")
        assert "its first re-estimate is next month" in again["skipped"]
        assert "does not host the Foundation" in conode(dirs[0], "grants", "collect").stdout
        wrong = conode(dirs[0], "grants", "collect", "--offer", offer["hash"], expect=1)
        assert "grants collect takes no --offer" in wrong.stderr
    finally:
        net.stop()

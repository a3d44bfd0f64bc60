"""Seeing the network (``conode warrants``, ``conode directory``): what the API answers, in memory.

A member double-spends one position of its chain (the fork of
``test_memnet_warrants``); every node warrants it. ``conode.seeing`` then
names it, its co-op, the rule its evidence breaks and what that means; the
directory lists every agent with its role, co-op, host and standing.
"""

from __future__ import annotations

from pathlib import Path

import trio.testing
from netkit import countersigned, network_with_rogue, push, wait_until

from conode import seeing


async def test_warrants_name_the_offender_its_rule_and_evidence_and_the_directory_marks_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=2) as (net, rogue):
        x = net.agents["coop2-m0"]
        home = net.home["coop2-m0"]
        x_before, y_before = home.store.activity(x), home.store.activity(net.agents["coop2-m1"])
        assert (await net.pay("coop2-m0", "coop0-m0", 100)).committed
        await net.converge()
        spent = home.store.head(x)
        assert spent is not None
        again, _ = countersigned(net, "coop2-m0", "coop2-m1", 100, at=(x_before, y_before))
        observer = net.nodes[0]
        assert seeing.warrants(observer) == []
        await push(rogue, observer, again)
        await wait_until(lambda: observer.store.warranted(x))

        [row] = seeing.warrants(observer)
        name = observer.name_of(x)
        assert (row["offender"], row["name"], row["kind"], row["rule"]) == (
            str(x),
            name,
            "fork",
            "fork",
        )
        assert row["coop"] == observer.name_of(net.agents["coop2"])
        assert {e["record"] for e in row["evidence"]} == {str(spent.hash), str(again.hash)}
        assert "neither pay nor be paid" in row["meaning"] and not row["hosted_here"]

        directory = {r["agent"]: r for r in seeing.directory(observer)}
        assert set(directory) == {str(a) for a in observer.store.authors()}
        member = directory[str(x)]
        assert member["role"] == "member" and member["warranted"] and not member["revoked"]
        assert member["coop"] == str(net.agents["coop2"])
        assert member["hosted_by"] == home.transport.peer_id
        own = directory[str(net.agents["coop0"])]
        assert own["role"] == "coop" and own["hosted_by"] == "this node" and not own["warranted"]

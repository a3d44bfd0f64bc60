"""Seeing the network (``conode warrants``, ``conode directory``): what the API answers, in memory.

A member double-spends one position of its chain (the fork of
``test_memnet_warrants``); every node warrants it. ``conode.seeing`` then
names it, its co-op, the rule its evidence breaks and what that means; the
directory lists every agent with its role, co-op, host and standing; and the
``conode warrants`` command, run as a process against the observer's API on a
real Unix socket, prints the warrant for people.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import trio.testing
from netkit import countersigned, network_with_rogue, push, wait_until
from procs import conode, conode_json

from conode import seeing
from conode.api import ApiServer
from conode.chain import Record
from conode.dht.memnet import MemoryTransport
from conode.hashes import AgentKey
from conode.node import Node
from conode.testing.network import TestNetwork


async def fork_seen(
    net: TestNetwork, rogue: MemoryTransport, observer: Node
) -> tuple[AgentKey, Record, Record]:
    """coop2-m0 pays, then double-spends the same position (its rogue copy countersigned with
    coop2-m1), pushed to ``observer`` until it warrants her: her key, the spent and the forked
    record."""
    x = net.agents["coop2-m0"]
    home = net.home["coop2-m0"]
    x_before, y_before = home.store.activity(x), home.store.activity(net.agents["coop2-m1"])
    assert (await net.pay("coop2-m0", "coop0-m0", 100)).committed
    await net.converge()
    spent = home.store.head(x)
    assert spent is not None
    again, _ = countersigned(net, "coop2-m0", "coop2-m1", 100, at=(x_before, y_before))
    await push(rogue, observer, again)
    await wait_until(lambda: observer.store.warranted(x))
    return x, spent, again


async def test_warrants_name_the_offender_its_rule_and_evidence_and_the_directory_marks_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with network_with_rogue(tmp_path, nodes=3, members=2) as (net, rogue):
        observer = net.nodes[0]
        assert seeing.warrants(observer) == []
        x, spent, again = await fork_seen(net, rogue, observer)

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
        assert member["hosted_by"] == net.home["coop2-m0"].transport.peer_id
        own = directory[str(net.agents["coop0"])]
        assert own["role"] == "coop" and own["hosted_by"] == "this node" and not own["warranted"]
        # each row's head is the newest record of the chain held there, as its records count it
        for key, row in directory.items():
            head = observer.store.head(AgentKey.parse(key))
            assert head is not None and row["head"] == str(head.hash), row
            assert row["records"] == head.seq + 1, row


async def test_conode_warrants_prints_the_offender_its_coop_rule_evidence_and_meaning(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    data = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))  # DIR/conode.sock is < 108 bytes
    try:
        conode(data, "init")  # a data dir whose socket the command reads
        async with network_with_rogue(tmp_path, nodes=3, members=2) as (net, rogue):
            observer = net.nodes[0]
            x, spent, again = await fork_seen(net, rogue, observer)
            offender, coop = observer.name_of(x), observer.name_of(net.agents["coop2"])

            # the command runs in another process: the clock stands still while the node answers
            autojump_clock.autojump_threshold = math.inf
            api = ApiServer(observer, data / "conode.sock")
            async with trio.open_nursery() as nursery:
                await nursery.start(api.run)
                text = await trio.to_thread.run_sync(lambda: conode(data, "warrants").stdout)
                rows = await trio.to_thread.run_sync(lambda: conode_json(data, "warrants"))
                nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(data, ignore_errors=True)

    [row] = rows
    lines = text.splitlines()
    assert lines[0] == f"{offender} ({x}), of {coop}", text
    assert lines[1].startswith("  warranted ") and " UTC: fork: " in lines[1], text
    assert lines[1].endswith(row["reason"]), text
    assert lines[2].startswith("  evidence: ") and str(spent.hash) in lines[2], text
    assert str(again.hash) in lines[2] and len(lines) == 4, text
    assert lines[3] == f"  what it means: {row['meaning']}", text
    assert "neither pay nor be paid" in lines[3]

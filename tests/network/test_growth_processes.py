"""A network that grows, built and run as the user guide says, with real ``conode run`` processes.

The founders found it by hand (no ``devnet``), riverside's node hosts the
Foundation (``conode foundation host``), a third co-op is admitted by a
vote and starts its chain with the ratified admission as its proof
(``conode coop genesis``), trades and votes like a founder, and the
Foundation's steward pays the disbursement the co-ops ratified; moved to
another node by ``conode recover``, the Foundation pays the next one from
there. Every
step is a ``conode`` command (``guide.Walkthrough``); the machines are on
loopback here and on hosts of their own in ``test_guide_hosts.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from guide import Machine, Walkthrough, loopback_machines
from procs import conode, conode_json, running_net, wait_for

pytestmark = pytest.mark.slow


def test_an_admitted_coop_starts_trades_and_votes_and_the_hosted_foundation_pays(
    tmp_path: Path,
) -> None:
    names = ["riverside", "hillside", "ben", "greenside"]
    walk = Walkthrough(tmp_path, {m.name: m for m in loopback_machines(tmp_path, names)})
    try:
        charter, fund = walk.steps_1_to_9()
        green = walk.m["greenside"]
        shown = green.json("foundation", "show", fund)
        assert shown["status"] == "ratified" and shown["executed"], shown
        assert shown["author_name"] == "Greenside Growers Ltd"  # people named beside their keys
        assert {v["voter_name"] for v in shown["votes"]} == {
            "Riverside Bakery Co-operative Ltd", "Hillside Growers Co-operative Ltd",
            "Greenside Growers Ltd",
        }  # fmt: skip
        assert (
            "proposed by Greenside Growers Ltd (agt_"
            in green.conode("foundation", "show", fund).stdout
        )
        assert green.json("balance", "greenside")["balance"] == -300 + 200

        # each node's directory lists the chains it holds, its share (host and R = 3 of 4 nodes
        # hold each chain): together they name all six, and a node holding both Ben's chain and
        # Hillside's (two at least) names his co-op
        rows = [row for machine in walk.machines() for row in machine.json("directory")]
        directory = {row["name"]: row for row in rows}
        assert {r["role"] for r in directory.values()} == {"coop", "member", "foundation"}
        assert len(directory) == 6
        mine = {row["name"]: row for row in green.json("directory")}
        assert mine["Greenside Growers Ltd"]["hosted_by"] == "this node"
        ben = [r for r in rows if r["name"] == "Ben Okafor"]
        assert {r["coop"] for r in ben} == {walk.keys["hillside"]}
        assert "Hillside Growers Co-operative Ltd" in {r["coop_name"] for r in ben}
        assert not any(r["warranted"] or r["revoked"] for r in rows)
        assert all(machine.json("warrants") == [] for machine in walk.machines())

        owners = {"riverside": "riverside", "foundation": "riverside", "ana": "riverside",
                  "hillside": "hillside", "ben": "ben", "greenside": "greenside"}  # fmt: skip
        report = walk.audit_all(charter, owners)
        assert report["valid"] and report["zero_sum"], report
        assert report["chains"] == len(owners)
    finally:
        walk.stop_all()


def test_the_foundation_moved_to_another_node_by_recover_pays_the_next_disbursement(
    tmp_path: Path,
) -> None:
    """The operator guide's move: riverside's node (the steward) stops for good, hillside's node
    recovers the Foundation's key file, and the next disbursement the co-ops ratify is paid by
    hillside's node, from the Foundation's chain as riverside left it."""
    names = ["riverside", "hillside", "ben", "greenside"]
    walk = Walkthrough(tmp_path, {m.name: m for m in loopback_machines(tmp_path, names)})
    try:
        walk.steps_1_to_9()  # the Foundation funded 5.00 and 2.00 paid by riverside's node
        riverside, hillside, green = walk.m["riverside"], walk.m["hillside"], walk.m["greenside"]
        left = riverside.json("foundation", "balance")
        assert left["steward"] and left["owed"] == 0, left
        # its authorities besides riverside, wherever they are: recover fetches it from them
        others = [walk.m[name] for name in ("hillside", "ben", "greenside")]
        wait_for(
            lambda: any(_holds_as(m, left["balance"]) for m in others) or None,
            "another node to hold the Foundation's chain as riverside left it", 60,
        )  # fmt: skip
        assert not hillside.json("foundation", "balance")["steward"]
        walk.move_foundation("riverside", "hillside")
        moved = hillside.json("foundation", "balance")
        assert moved["steward"] and moved["balance"] == left["balance"], moved
        assert "this node (the steward)" in hillside.conode("foundation", "balance").stdout

        # riverside is gone: hillside and greenside are a quorum and a majority of three co-ops
        before = green.json("balance", "greenside")["balance"]
        again = walk.disburse_again(["hillside", "greenside"], "1.50", "irrigation")
        shown = green.json("foundation", "show", again)
        assert shown["status"] == "ratified" and shown["executed"], shown
        assert green.json("balance", "greenside")["balance"] == before + 150
        paid = hillside.json("foundation", "balance")
        assert paid["steward"] and paid["owed"] == 0, paid
        assert paid["balance"] == left["balance"] - 150, paid
        statuses = [m.json("status") for m in walk.machines() if m.name != "riverside"]
        assert all(s["warrants"] == 0 for s in statuses), statuses
    finally:
        walk.stop_all()


def test_chain_add_of_a_note_on_a_networked_member_is_refused_and_she_still_pays(
    tmp_path: Path,
) -> None:
    """Issue 13's exact sequence: `conode chain add ana --type note --data '{"text":"hi"}'` on a
    networked member committed an `unknown-app` record every peer warranted her for (exit 0
    before); now the node's own engine refuses it, nothing is committed, and she pays."""
    member = "coop0-m0"
    with running_net(tmp_path, 2, "chain-add-note") as net:
        running = conode(net.dir(0), "chain", "add", member, "--type", "note",
                         "--data", '{"text":"hi"}', expect=1)  # fmt: skip
        assert "is running: stop it first" in running.stderr, running.stderr
        before = conode_json(net.dir(0), "chain", "show", member)["records"]
        assert net.terminate(0) == 0
        refused = conode(net.dir(0), "chain", "add", member, "--type", "note",
                         "--data", '{"text":"hi"}', expect=1)  # fmt: skip
        assert "unknown-app" in refused.stderr and "nothing committed" in refused.stderr
        assert conode_json(net.dir(0), "chain", "show", member)["records"] == before
        net.start(0, net.bootstrap_for(0))
        net.settle()
        paid = conode_json(net.dir(0), "pay", net.key("coop1-m0"), "1.00", "--from", member)
        assert paid["committed"], paid
        assert all(s["warrants"] == 0 for s in net.statuses().values())


def _holds_as(machine: Machine, balance: int) -> bool:
    """``machine``'s node holds the Foundation's chain at ``balance``."""
    held = machine.json("foundation", "balance")
    return bool(held["held"]) and held["balance"] == balance

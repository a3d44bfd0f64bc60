"""``conode foundation`` with real ``conode run`` processes on 127.0.0.1.

Three nodes, one co-op each; node 0 is the steward (it hosts the Foundation
key the devnet's charter names) and the charter pins the foundation app, which
every operator approves. Co-op 1 proposes that the Foundation pays co-op 2;
every co-op votes; co-op 1's node goes down, so after the deadline co-op 2
ratifies by hand; the steward pays on its own; co-op 2 reports back. A second
vote, a vote after the deadline and a report by the wrong co-op are refused
in one line.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from procs import Net, conode, conode_json, start_all, wait_for

from cli.devnet import approve_apps, prepare
from conode.apps.loader import installed_apps
from conode.validation.charter import AppPin

pytestmark = pytest.mark.slow

FOUNDATION = AppPin("foundation", "0.1.0", installed_apps()["foundation"].bundle_hash())
VOTING_US = 45_000_000  # long enough to vote through the CLI, short enough to wait for


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``conode: error:`` line of a failed command."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("conode: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_propose_vote_ratify_and_the_steward_pays(tmp_path: Any) -> None:
    plan = prepare(
        tmp_path, 3, "foundation-cli", members=0, apps=(FOUNDATION,),
        foundation=True, voting_period_us=VOTING_US,
    )  # fmt: skip
    approve_apps(plan)
    net = Net(plan, start_all(plan))
    d = [net.dir(i) for i in range(3)]
    try:
        net.settle()
        funded = conode_json(d[0], "pay", "foundation", "50.00", "--from", "coop0")
        assert funded["committed"], funded
        proposal = conode_json(
            d[1], "foundation", "propose", "--disburse", net.key("coop2"), "12.50",
            "--purpose", "tools for the repair cafe",
        )  # fmt: skip
        pid = proposal["id"]
        assert proposal["kind"] == "disburse" and proposal["status"] == "open"
        assert proposal["disbursement"]["amount"] == 1250

        def held_everywhere() -> bool:
            return all(conode(x, "foundation", "show", pid, expect=None).returncode == 0 for x in d)

        wait_for(held_everywhere, "every node to hold the proposal", 60)
        for i in range(3):
            voted = conode_json(d[i], "foundation", "vote", pid, "yes")
            assert voted["status"] == "open"
        again = conode(d[2], "foundation", "vote", pid, "no", expect=1)
        assert "double-vote" in one_error(again)

        def counted(i: int) -> dict[str, Any] | None:
            tally: dict[str, Any] = conode_json(d[i], "foundation", "tally", pid)
            return tally if tally["tally"]["yes"] == 3 else None

        wait_for(lambda: counted(2), "node 2 to hold every vote", 60)
        assert net.terminate(1) == 0  # the proposer's node, which would ratify it, goes down

        def passed() -> dict[str, Any] | None:
            tally: dict[str, Any] = conode_json(d[2], "foundation", "tally", pid)
            return tally if tally["status"] == "passed" else None

        wait_for(passed, "the deadline to pass", VOTING_US / 1e6 + 30, every=1.0)
        late = conode(d[0], "foundation", "vote", pid, "no", expect=1)
        assert "deadline" in one_error(late)
        ratified = conode_json(d[2], "foundation", "ratify", pid)
        assert ratified["status"] == "ratified" and ratified["ratification"].startswith("act_")

        def executed() -> dict[str, Any] | None:
            shown: dict[str, Any] = conode_json(d[2], "foundation", "show", pid)
            return shown if shown["executed"] else None

        shown = wait_for(executed, "the steward to pay the disbursement", 60)
        assert shown["disbursement"]["paid_by"].startswith("act_")
        assert net.balance(2, "coop2") == 1250
        fund = wait_for(
            lambda: (f := conode_json(d[0], "foundation", "balance"))["owed"] == 0 and f,
            "the steward to see it paid",
            30,
        )
        assert fund["steward"] and fund["balance"] == 5000 - 1250 and fund["disbursed"] == 1250
        text = conode(d[0], "foundation", "proposals").stdout
        assert "executed" in text and "3/0/0 of 3" in text

        (payment,) = [p for p in net.history("coop2") if p["ref"] == pid]
        wrong = conode(d[0], "foundation", "report", payment["record"], "not ours", expect=1)
        assert "payee" in one_error(wrong)
        reported = conode_json(
            d[2], "foundation", "report", payment["record"], "bought a lathe", "--used", "10.00"
        )
        assert reported["id"].startswith("act_")

        def report_seen() -> list[Any] | None:
            reports: list[Any] = conode_json(d[0], "foundation", "show", pid)["reports"]
            return reports or None

        (report,) = wait_for(report_seen, "node 0 to hold the report", 60)
        assert (report["text"], report["used"]) == ("bought a lathe", 1000)
    finally:
        net.stop()

"""``conode app`` and ``conode call`` with real ``conode run`` processes on 127.0.0.1.

Three nodes on a network whose charter pins the lookout app (installed here
through its entry point). The operators of nodes 0 and 1 read and approve
its code before the first start; node 2's does not. A signal posted with
``conode call`` on node 0 is seen through the lookout on node 1, and held
(unjudged, nobody warranted) by node 2, which runs the lookout only after
its operator approves it and restarts it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from procs import Net, conode, conode_json, wait_for

from cli.devnet import prepare, start_nodes
from conode.apps.loader import installed_apps
from conode.hashes import BundleHash
from conode.validation.charter import AppPin

pytestmark = pytest.mark.slow

LOOKOUT = AppPin("lookout", "0.1.0", installed_apps()["lookout"].bundle_hash())
HASH = str(LOOKOUT.code_hash)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``conode: error:`` line of a failed command."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("conode: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def lookout_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The lookout's row of ``app list`` or ``status`` (other installed apps may be listed too)."""
    (row,) = [r for r in rows if r["id"] == "lookout"]
    return row


def feed(net: Net, index: int, sector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = conode_json(
        net.dir(index), "call", "lookout", "feed", f"sector={sector}"
    )
    return items


def test_approve_then_call_the_lookout_across_processes(tmp_path: Any) -> None:
    plan = prepare(tmp_path, 3, "apps-cli", members=1, apps=(LOOKOUT,))
    dirs = [d.root for d in plan.dirs]
    # before the first start, no node runs: the operator lists, reads and approves the code
    listed = lookout_row(conode_json(dirs[0], "app", "list"))
    assert (listed["hash"], listed["installed"], listed["approved"]) == (HASH, True, False)
    assert listed["running"] is None
    text = conode(dirs[0], "app", "list").stdout
    assert f"conode app approve {HASH}" in text
    shown = conode(dirs[0], "app", "show", HASH).stdout
    assert "==> lookout/entries.py" in shown and "def validate_signal" in shown
    for d in dirs[:2]:
        approved = conode(d, "app", "approve", HASH).stdout
        assert "runs from the node's next start" in approved
    typo = conode(dirs[2], "app", "approve", "app_nothing", expect=2)
    assert "is not a bundle hash" in typo.stderr
    unknown = one_error(conode(dirs[2], "app", "approve", str(BundleHash.of(b"x")), expect=1))
    assert "no app the rules pin" in unknown

    net = Net(plan, start_nodes(plan))
    try:
        net.settle()
        running = [lookout_row(net.status(i)["apps"])["running"] for i in range(3)]
        assert running == [True, True, False]
        # node 2 has not approved it: its functions are refused, with the reason, in one line
        refused = one_error(conode(dirs[2], "call", "lookout", "board", expect=1))
        assert "does not run on this node" in refused and "has not approved" in refused
        # a mistyped call is one line too
        assert "no function 'nope'" in one_error(conode(dirs[0], "call", "lookout", "nope", expect=1))
        missing = one_error(
            conode(dirs[0], "call", "lookout", "signal", "title=x", "--as", "coop0-m0", expect=1)
        )
        assert "bad parameters" in missing and "source" in missing
        assert "is not KEY=VALUE" in one_error(
            conode(dirs[0], "call", "lookout", "board", "oops", expect=1)
        )

        posted = conode_json(
            dirs[0],
            "call",
            "lookout",
            "signal",
            "title=River levels rising",
            "source=gauge 14",
            "sectors=water",
            "--as",
            "coop0-m0",
        )
        assert isinstance(posted, str) and posted.startswith("act_")
        seen = wait_for(lambda: feed(net, 1, "water"), "node 1 to see the signal", 30)
        assert [(i["hash"], i["title"]) for i in seen] == [(posted, "River levels rising")]

        # node 2 holds it without judging it, and warrants nobody
        key = net.key("coop0-m0")

        def held_on_2() -> bool:
            chain = conode_json(dirs[2], "chain", "show", key)
            return any(a["hash"] == posted for a in chain["actions"])

        wait_for(held_on_2, "node 2 to hold the signal", 30)
        assert net.status(2)["warrants"] == 0

        # node 2's operator approves it while the node runs: from the next start
        later = conode(dirs[2], "app", "approve", HASH).stdout
        assert "runs from the node's next start" in later
        assert "next start" in lookout_row(conode_json(dirs[2], "app", "list"))["reason"]
        net.restart(2)
        assert lookout_row(net.status(2)["apps"])["running"] is True
        assert [i["hash"] for i in feed(net, 2, "water")] == [posted]
        assert net.status(2)["warrants"] == 0
        text_feed = conode(dirs[2], "call", "lookout", "feed", "sector=water").stdout
        assert json.loads(text_feed)[0]["title"] == "River levels rising"
    finally:
        net.stop()

"""``conode offer`` and ``conode want`` with real ``conode run`` processes on 127.0.0.1.

Two nodes on a network whose charter pins the exchange app (installed here
through its entry point), approved by both operators. Co-op 0 offers bread on
node 0; a member on node 1, who wanted bread before, finds the offer by words
and distance on its own node and finds it pushed into its inbox of notices (read,
marked read, followed as a second offer arrives); a member's offer is
refused in one line; a withdrawn offer leaves the search.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from typing import Any

import pytest
from procs import Net, conode, conode_bg, conode_json, wait_for

from cli.devnet import prepare, start_nodes
from conode.apps.loader import installed_apps
from conode.validation.charter import AppPin

pytestmark = pytest.mark.slow

EXCHANGE = AppPin("exchange", "0.2.0", installed_apps()["exchange"].bundle_hash())


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``conode: error:`` line of a failed command."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("conode: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def json_lines(process: subprocess.Popen[str]) -> queue.Queue[Any]:
    """Each JSON line the process prints, as it prints it (read by a thread)."""
    lines: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_offers_and_wants_across_processes(tmp_path: Any) -> None:
    plan = prepare(tmp_path, 2, "exchange-cli", members=1, apps=(EXCHANGE,))
    dirs = [d.root for d in plan.dirs]
    for d in dirs:
        conode(d, "app", "approve", str(EXCHANGE.code_hash))
    net = Net(plan, start_nodes(plan))
    try:
        net.settle()
        wanted = conode_json(
            dirs[1], "want", "add", "Sourdough for the cafe", "--category", "food",
            "--price", "4", "--unit", "loaf", "--quantity", "30",
            "--location", "51.5074,-0.1278", "--radius", "25", "--as", "coop1-m0",
        )  # fmt: skip
        assert (wanted["kind"], wanted["price"], wanted["status"]) == ("want", 400, "open")
        refused = conode(
            dirs[0], "offer", "add", "Jam", "--category", "food", "--price", "2",
            "--unit", "jar", "--quantity", "5", "--as", "coop0-m0", expect=1,
        )  # fmt: skip
        assert "role" in one_error(refused)
        offer = conode_json(
            dirs[0], "offer", "add", "Sourdough bread", "--category", "food/bakery",
            "--price", "3.50", "--unit", "loaf", "--quantity", "400",
            "--location", "51.52,-0.10", "--days", "5", "--as", "coop0",
        )  # fmt: skip
        assert offer["price"] == 350 and "conode offer renew" in offer["reminder"]
        text = conode(dirs[0], "offer", "list", "--as", "coop0").stdout
        assert "Sourdough bread" in text and "3.50 DEV/loaf" in text and "expires in 5 days" in text

        def seen_on_node1() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = conode_json(
                dirs[1], "offer", "search", "sourdough", "--near", "51.5074,-0.1278",
                "--within", "10",
            )  # fmt: skip
            return found or None

        (found,) = wait_for(seen_on_node1, "node 1 to hold the offer", 60)
        assert found["hash"] == offer["hash"] and 0 < found["distance_km"] < 10
        held = conode_json(dirs[1], "offer", "search", "--category", "food", "--local")
        assert [item["hash"] for item in held] == [offer["hash"]]  # --local: what node 1 holds
        # node 1 pushed the notice into the member's inbox as the offer arrived: read, then marked
        notices = ("want", "notices", "--as", "coop1-m0")
        (notice,) = wait_for(lambda: conode_json(dirs[1], *notices, "--unread"), "the notice", 30)
        assert (notice["want"], notice["offer"]["hash"]) == (wanted["hash"], offer["hash"])
        assert notice["read"] is False
        text = conode(dirs[1], *notices).stdout
        assert text.startswith("* ") and "'Sourdough bread' at 3.50 DEV/loaf" in text
        (marked,) = conode_json(dirs[1], *notices, "--mark-read")
        assert marked["read"] is False  # shown as it was: new until now
        assert conode_json(dirs[1], *notices, "--unread") == []
        assert [n["read"] for n in conode_json(dirs[1], *notices)] == [True]

        # --follow prints the inbox, then each new notice as its offer arrives; Ctrl-C ends it
        follow = conode_bg(dirs[1], *notices, "--follow", "--json")
        lines = json_lines(follow)
        try:
            assert lines.get(timeout=60)["offer"]["hash"] == offer["hash"]
            rolls = conode_json(
                dirs[0], "offer", "add", "Sourdough rolls", "--category", "food/bakery",
                "--price", "0.80", "--unit", "roll", "--quantity", "900",
                "--location", "51.52,-0.10", "--as", "coop0",
            )  # fmt: skip
            arrived = lines.get(timeout=60)
            assert (arrived["offer"]["hash"], arrived["read"]) == (rolls["hash"], False)
        finally:
            follow.send_signal(signal.SIGINT)
            _out, err = follow.communicate(timeout=30)
        assert follow.returncode == 0 and "Traceback" not in err, err
        conode_json(dirs[0], "offer", "withdraw", rolls["hash"])

        withdrawn = conode_json(dirs[0], "offer", "withdraw", offer["hash"])
        assert withdrawn["status"] == "withdrawn"
        assert conode_json(dirs[0], "offer", "search", "sourdough") == []
        again = conode(dirs[0], "offer", "renew", offer["hash"], expect=1)
        assert "closed" in one_error(again)
        closed = conode_json(dirs[1], "want", "close", wanted["hash"])
        assert closed["status"] == "met"
        assert conode_json(dirs[1], "want", "search", "sourdough") == []
    finally:
        net.stop()

"""A real ``conode run`` hands back its start-up memory, and goes on working after it.

The figure (idle RSS) belongs to ``bench/network.py`` and ``docs/performance.md``;
this test proves the mechanism runs in the daemon where it can fail: glibc's
``malloc_trim`` called through ctypes on a process with a running event loop,
libp2p and SQLite threads, after which the node still greets, pays and answers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from procs import conode, conode_json, log_tail, running_net, wait_for

pytestmark = pytest.mark.slow

HANDED_BACK = re.compile(r"start-up memory handed back: RSS (\d+\.\d) -> (\d+\.\d) MB")


def test_a_node_hands_back_its_start_up_memory_then_pays_and_answers(tmp_path: Path) -> None:
    with running_net(tmp_path, 2, "settle-memory") as net:
        for node in net.nodes:
            wait_for(
                lambda node=node: HANDED_BACK.search(log_tail(node, 200_000)),
                f"node {node.index} handing back its start-up memory",
                timeout=30,
            )
        paid = conode(
            net.dir(0), "pay", "coop1-m1", "0.50", "--from", "coop0-m0", "--memo", "after"
        )
        assert paid.returncode == 0
        rows = [row for row in net.history("coop1-m1") if row["memo"] == "after"]
        assert len(rows) == 1, rows
        assert conode_json(net.dir(1), "status")["peers"] >= 1


def test_the_conode_command_loads_the_exchange_only_for_an_audit() -> None:
    """`conode run` imports the CLI; the exchange's code (2.4 MB) is the audit's alone."""
    import subprocess
    import sys

    code = (
        "import sys, cli.main, cli.runner\n"
        "print('conode.apps.exchange' in sys.modules)\n"
        "from cli.auditfiles import FileAudit\n"
        "FileAudit.__dataclass_fields__['rings'].default_factory()\n"
        "print('conode.apps.exchange' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True"]

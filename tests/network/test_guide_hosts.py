"""The user guide as a test, across hosts: its walkthrough, every command in order, with each
machine's node on a network host of its own (``netns.hosts``: namespaces joined by a bridge,
`conode run` on the wildcard, peers dialling each host's address).

Founding co-ops by hand, the Foundation hosted, members on their own node by
credential, an admission vote and the admitted co-op trading, a disbursement
ratified and paid by the steward, `recover` on another machine, `backup`
and `restore`, and the offline audit of every chain: valid, summing to zero.
Needs root and iproute2 (CI installs it); skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from guide import Walkthrough, host_machines
from netns import hosts

pytestmark = pytest.mark.slow

MACHINES = ["riverside", "hillside", "ben", "greenside", "ben-again"]


def test_the_user_guide_walkthrough_runs_with_each_node_on_its_own_host(tmp_path: Path) -> None:
    with hosts(len(MACHINES)) as lan:
        walk = Walkthrough(tmp_path, {m.name: m for m in host_machines(tmp_path, MACHINES, lan)})
        try:
            charter, _fund = walk.steps_1_to_9()
            walk.recover_elsewhere(charter, "ben", "ben-again", "ben")
            walk.backup_and_restore("riverside", "ana", "Ben Okafor")
            owners = {"riverside": "riverside", "foundation": "riverside", "ana": "riverside",
                      "hillside": "hillside", "ben": "ben-again", "greenside": "greenside"}  # fmt: skip
            report = walk.audit_all(charter, owners)
            assert report["valid"] and report["zero_sum"], report
            assert report["chains"] == len(owners)
            assert all(
                m.json("warrants") == []
                for m in walk.machines()
                if m.process and m.process.poll() is None
            )
        finally:
            walk.stop_all()

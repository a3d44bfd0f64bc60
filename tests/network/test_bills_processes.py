"""Bills between two real ``conode run`` processes: a bill is settled once.

A paid bill cannot be declined and a declined one cannot be paid: the
``conode accept``/``decline`` commands say so in one line, and the payer's
node refuses it by the activity rule ``bill-settled`` even when asked
directly through its API (docs/protocol.md section 5).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from procs import conode, conode_json, running_net, wait_for

from cli.client import ApiClient, ApiError

pytestmark = pytest.mark.slow


def _error_line(result: object) -> str:
    lines = getattr(result, "stderr", "").strip().splitlines()
    assert len(lines) == 1, lines
    return str(lines[0])


def test_a_settled_bill_is_neither_paid_after_a_decline_nor_declined_after_a_payment(
    tmp_path: Path,
) -> None:
    with running_net(tmp_path / "n", 2, seed="bills") as net:
        payer_node, payee_node = net.dir(0), net.dir(1)
        declined = conode_json(payee_node, "bill", "coop0-m0", "2.00", "--from", "coop1-m0")["id"]
        paid = conode_json(payee_node, "bill", "coop0-m0", "3.00", "--from", "coop1-m0")["id"]
        wait_for(
            lambda: {declined, paid} <= {b["id"] for b in conode_json(payer_node, "bills")},
            "the bills to reach the payer's node",
            30,
        )
        conode(payer_node, "decline", declined[:16])
        conode(payer_node, "accept", paid)

        refused = conode(payer_node, "accept", declined, expect=1)
        assert _error_line(refused) == (
            f"conode: error: bill {declined} was declined: it cannot be paid"
        )
        refused = conode(payer_node, "decline", paid[:16], expect=1)
        assert _error_line(refused) == f"conode: error: bill {paid} was paid: it cannot be declined"
        refused = conode(payer_node, "decline", declined, expect=1)
        assert _error_line(refused) == f"conode: error: bill {declined} is already declined"

        # the node refuses by its rules, not only the command line
        api = ApiClient(net.plan.dirs[0])
        answer = api.call("accept", {"id": declined})
        assert answer["committed"] is False
        assert "bill-settled: this bill was declined" in answer["reason"]
        with pytest.raises(ApiError, match="bill-settled: this bill was paid"):
            api.call("decline", {"id": paid})

        statuses = {b["id"]: b["status"] for b in conode_json(payer_node, "bills")}
        assert statuses == {declined: "declined", paid: "paid"}
        assert net.balance(0, "coop0-m0") == -300  # the 3.00 bill, once, and nothing else
        net.converged()
        [report] = net.audit(1, ["coop0-m0"])
        assert report["valid"] is True and report["violations"] == []

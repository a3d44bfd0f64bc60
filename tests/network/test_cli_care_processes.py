"""The small things a careful user hits (issue 13, item 10), on real ``conode run`` processes.

- A bill is settled once: a paid bill cannot be declined and a declined one
  cannot be paid. ``conode accept``/``decline`` say so in one line, and the
  payer's node refuses it by the activity rule ``bill-settled`` even when
  asked directly through its API (docs/protocol.md section 5).
- ``history --csv`` never hands a spreadsheet a formula: a memo starting
  with ``=``, ``+``, ``-``, ``@``, a tab or a CR is written after a ``'``,
  while amounts stay plain numbers (``-1.25``).
- Messages show amounts in major units with the currency: a payment over
  the credit limit, a proposal to amend the limits, the voting period or a
  share.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

import pytest
from procs import COMMAND, clean_env, conode, conode_json, running_net, wait_for

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


FORMULAS = ["=1+1", "+SUM(A1:A9)", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "=HYPERLINK(\"x\")"]


def test_history_csv_escapes_formula_cells_and_keeps_amounts_numbers(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 2, seed="csv") as net:
        payer_node = net.dir(0)
        for memo in [*FORMULAS, "bread"]:
            conode(payer_node, "pay", "coop1-m1", "0.25", "--from", "coop0-m0", f"--memo={memo}")
        out = subprocess.run(
            [*COMMAND, "--data-dir", str(payer_node), "history", "coop0-m0", "--csv"],
            env=clean_env(), capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    assert out.count(b"\r\n") == 9 and b"\"'\rCR\"" in out  # RFC 4180 lines; a CR is quoted
    rows = list(csv.DictReader(io.StringIO(out.decode(), newline="")))
    assert [r["memo"] for r in rows] == [*("'" + m for m in FORMULAS), "bread"]
    assert [r["amount"] for r in rows] == ["-0.25"] * len(rows)
    assert [r["balance_after"] for r in rows] == [f"-{0.25 * n:.2f}" for n in range(1, 9)]
    assert all(float(r["amount"]) == -0.25 for r in rows)  # a number, as a spreadsheet reads it
    assert {r["counterparty_name"] for r in rows} == {"coop1-m1"}


def test_messages_show_amounts_in_major_units_with_the_currency(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 2, seed="money") as net:
        node = net.dir(0)
        refused = conode(node, "pay", "coop1-m1", "5.01", "--from", "coop0-m0", expect=1)
        assert _error_line(refused) == (
            "conode: error: payment refused: credit-limit: "
            "coop0-m0 would be at -5.01 DEV, below -5.00 DEV"
        )
        amendments = {
            "member_limits": ('{"credit": 2000, "cap": 100000}', "credit limit 20.00 DEV, balance cap 1000.00 DEV"),
            "voting_period_us": ("1209600000000", "14 days"),
            "threshold_bp": ("6650", "66.5 %"),
        }  # fmt: skip
        for param, (value, shown) in amendments.items():
            proposed = conode_json(node, "foundation", "propose", "--amend", param, value, "--as", "coop0")
            details = conode(node, "foundation", "show", proposed["id"]).stdout
            assert f"set {param} to {shown}" in details, details
        listed = conode(node, "foundation", "proposals").stdout
        assert "DEADLINE (UTC)" in listed
        assert re.search(r" 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} ", listed), listed
        assert re.search(r"T[0-9:]+\.[0-9]{6}Z", listed) is None  # a date and a time, no µs

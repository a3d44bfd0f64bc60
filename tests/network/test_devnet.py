"""Real ``conode run`` processes on 127.0.0.1, driven through the ``conode`` command line.

``test_devnet_json`` runs the README's main command as a user would.
``test_five_nodes_through_the_cli`` prepares five nodes with the devnet's own
helpers, then pays, bills, audits and recovers only through ``conode``
commands, and finally stops every node with SIGTERM.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.client import ApiClient
from cli.devnet import (
    DevnetPlan,
    NodeProcess,
    prepare,
    start_nodes,
    stop_nodes,
    wait_until_held,
)
from cli.devnet.shares import held_problems

pytestmark = pytest.mark.slow

_SCRIPT = Path(sys.executable).with_name("conode")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli"]


def conode(data: Path, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    """``conode --data-dir data args``: exit code checked, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    result = subprocess.run(
        [*COMMAND, "--data-dir", str(data), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if expect is not None:
        assert result.returncode == expect, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_devnet_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    result = subprocess.run(
        [*COMMAND, "devnet", "--nodes", "3", "--payments", "20", "--json"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert summary["nodes"] == 3 and summary["agents"] == 10  # 3 co-ops, 6 members, the Foundation
    assert summary["converged"] is True
    assert summary["zero_sum"] is True
    assert summary["audit_violations"] == 0
    assert summary["payments_committed"] > 0
    assert summary["payments_refused"] > 0
    assert summary["payments_committed"] + summary["payments_refused"] == 20
    assert set(summary["refusal_reasons"]) == {"credit-limit"}
    assert summary["p50_payment_ms"] > 0 and summary["elapsed_s"] > 0
    assert summary["clean_stop"] is True
    assert "devnet: payment 20/20" in result.stderr  # progress goes to stderr


def test_devnet_full_scenario_runs_every_app_on_real_nodes_and_still_sums_to_zero(
    tmp_path: Path,
) -> None:
    """Offers, wants, search and notices; grants and a re-estimate a month later; an amendment
    and a Foundation disbursement voted and carried out by the nodes; a lookout thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    result = subprocess.run(
        [*COMMAND, "devnet", "--scenario", "full", "--payments", "10", "--json"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, (summary.get("scenario_problems"), result.stderr[-3000:])
    assert summary["scenario_problems"] == []
    assert summary["offers"] == 3 == summary["wants"] == summary["offers_found_by_search"]
    assert summary["want_notices"] >= 1
    assert summary["grants_issued"] >= 3 + summary["reestimates"] and summary["reestimates"] >= 1
    assert summary["proposals_ratified"] == 2 and summary["disbursement_paid"] is True
    assert summary["raised_limit_used"] is True
    assert summary["foundation_balance"] is not None and summary["foundation_balance"] >= 0
    assert summary["lookout_items"] == 3
    assert summary["zero_sum"] is True and summary["audit_violations"] == 0
    assert summary["issuance_account"] == -summary["balance_total"] != 0  # grants were issued
    _lists_what_it_made(summary, result.stdout)
    issued = -summary["issuance_account"]
    assert f"the audited balances total {_dev(issued)}, the issuance account {_dev(-issued)})" in (
        result.stdout
    )


def _lists_what_it_made(summary: dict[str, Any], text: str) -> None:
    """The JSON lists what the scenario made, and the text shows the same in major units."""
    offers = summary["offers_made"]
    assert [o["coop"] for o in offers] == ["coop0", "coop1", "coop2"]
    assert all(o["price"] == 300 and o["granted"] > 0 for o in offers)
    for o in offers:
        assert f"  {o['coop']}: {o['title']!r}, 3.00 DEV a loaf, {o['quantity']} a month; " in text
        assert f"granted {_dev(o['granted'])}" in text
    grants = summary["grants_made"]
    assert len(grants) == summary["grants_issued"]
    assert sum(g["basis"] == "reestimate" for g in grants) == summary["reestimates"]
    for g in grants:
        assert f"  {g['coop']}: {g['basis']} for {g['period']}: on offer " in text
    proposals = summary["proposals_made"]
    assert [p["status"] for p in proposals] == ["ratified", "ratified"]
    for p in proposals:
        assert p["yes"] == p["electorate"] == 3 and p["no"] == 0
        assert sorted(v["voter"] for v in p["votes"]) == ["coop0", "coop1", "coop2"]
        assert f"  {p['title']!r} ({p['kind']}): 3 yes, 0 no, 0 abstain of 3 co-ops (" in text
    paid = summary["disbursement"]
    assert (paid["coop"], paid["amount"]) == ("coop2", 500) and paid["record"].startswith("act_")
    assert (
        f"disbursed: the Foundation to coop2: 5.00 DEV for 'a bakery oven', paid by {paid['record']}"
        in text
    )
    stages = [i["stage"] for i in summary["lookout_made"]]
    assert stages == ["signal", "sign", "significance"]
    for item in summary["lookout_made"]:
        assert f"  {item['stage']} {item['title']!r} by {item['by']} ({item['hash']})" in text
    balances = summary["balances"]
    assert len(balances) == summary["agents"]
    assert sum(b["balance"] for b in balances) == summary["balance_total"]
    for b in balances:
        row = next(line.split() for line in text.splitlines() if line.split()[:1] == [b["name"]])
        assert row == [b["name"], str(b["node"]), *_dev(b["balance"]).split()]


def _dev(minor: int) -> str:
    """Minor units as the devnet prints them (its currency is DEV, two decimals)."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d} DEV"


@pytest.fixture
def five(tmp_path: Path) -> Iterator[tuple[DevnetPlan, list[NodeProcess]]]:
    """Five running nodes (one co-op and two members each), settled (every chain held by its
    holders); stopped at the end."""
    plan = prepare(tmp_path / "net", 5, seed="cli-test")
    nodes = start_nodes(plan)
    try:
        wait_until_held(plan, nodes)
        yield plan, nodes
    finally:
        stop_nodes(nodes)


def _held_problems(plan: DevnetPlan, dirs: list[Path]) -> list[str]:
    """What keeps each chain from being held at its host's head by every node that must hold it,
    by every node's ``status --json`` and ``directory --json`` (``cli.devnet.shares``)."""
    statuses = {i: json.loads(conode(d, "status", "--json").stdout) for i, d in enumerate(dirs)}
    directories = {
        i: json.loads(conode(d, "directory", "--json").stdout) for i, d in enumerate(dirs)
    }
    hosts = {m.key: m.node for m in plan.agents.values()}
    replication = plan.charter.params.replication
    return held_problems(statuses, directories, hosts, replication, same_head=True)


def _sync_all(nodes: list[NodeProcess]) -> None:
    for node in nodes:
        if node.process.poll() is None:
            ApiClient(node.data).call("sync")


def _wait_for(
    condition: Callable[[], bool], what: str, nodes: list[NodeProcess], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        _sync_all(nodes)
        time.sleep(0.3)


def test_five_nodes_through_the_cli(five: tuple[DevnetPlan, list[NodeProcess]]) -> None:
    plan, nodes = five
    d = [node.data.root for node in nodes]

    def key_of(name: str) -> str:
        return str(plan.agents[name].key)

    # status and peers
    status = json.loads(conode(d[0], "status", "--json").stdout)
    assert status["peers"] == 4 and status["network"] == str(plan.charter.network_id)
    assert {a["name"] for a in status["agents"]} == {"coop0", "coop0-m0", "coop0-m1"}
    peers = json.loads(conode(d[0], "peers", "--json").stdout)
    assert len(peers) == 4

    # the firewall: block a peer, see it gone, let it back
    other = peers[0]["peer_id"]
    blocked = json.loads(conode(d[0], "peers", "block", other, "--json").stdout)
    assert blocked["blocked"] == [other]
    assert other not in {p["peer_id"] for p in json.loads(conode(d[0], "peers", "--json").stdout)}
    assert "no peer is blocked" in conode(d[0], "peers", "unblock", "--all").stdout

    # a payment by name, in major units
    # payees by key where the paying node need not hold their chain (a name is resolved among
    # the chains a node holds: with R = 3 of 5 nodes, node 0 holds some of the others' chains)
    paid = conode(d[0], "pay", key_of("coop1-m1"), "1.50", "--from", "coop0-m0", "--memo", "bread")
    assert "paid 1.50 DEV" in paid.stdout
    # over the credit limit (5.00 DEV): refused, one line, exit 1
    refused = conode(d[0], "pay", key_of("coop2-m1"), "4.00", "--from", "coop0-m0", expect=1)
    assert "payment refused: credit-limit" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # too many decimals: refused before the node is asked
    assert (
        "too many decimals"
        in conode(d[0], "pay", key_of("coop2-m1"), "0.001", "--from", "coop0-m0", expect=1).stderr
    )
    # an agent key works wherever a name does
    key = str(plan.agents["coop3-m0"].key)
    conode(d[0], "pay", key, "0.25", "--from", "coop0-m1")

    assert conode(d[0], "balance", "coop0-m0").stdout.strip().endswith("-1.50 DEV")
    balances = {
        a["name"]: a["balance"] for a in json.loads(conode(d[0], "balance", "--json").stdout)
    }
    assert balances == {"coop0": 0, "coop0-m0": -150, "coop0-m1": -25}
    assert conode(d[1], "balance", "coop1-m1").stdout.strip().endswith("1.50 DEV")

    rows = list(csv.DictReader(io.StringIO(conode(d[0], "history", "coop0-m0", "--csv").stdout)))
    assert len(rows) == 1
    assert rows[0]["direction"] == "out" and rows[0]["amount"] == "-1.50"
    assert rows[0]["counterparty_name"] == "coop1-m1" and rows[0]["memo"] == "bread"
    month = rows[0]["time"][:7]
    statement = json.loads(conode(d[0], "statement", "coop0-m0", "--month", month, "--json").stdout)
    assert statement["paid_out"] == 150 and statement["closing_balance"] == -150
    # the counterparty named beside its key, in the history and the statement
    payee = str(plan.agents["coop1-m1"].key)
    assert statement["payments"][0]["counterparty_name"] == "coop1-m1"
    assert statement["payments"][0]["counterparty"] == payee
    named = f"coop1-m1 ({payee[:13]}…)"
    assert named in conode(d[0], "history", "coop0-m0").stdout
    assert named in conode(d[0], "statement", "coop0-m0", "--month", month).stdout

    # bills: coop1-m0 bills coop0-m1 twice; node 0 accepts one and declines the other
    first = json.loads(
        conode(
            d[1], "bill", key_of("coop0-m1"), "2.00", "--from", "coop1-m0", "--memo", "eggs", "--json"
        ).stdout
    )["id"]
    second = json.loads(
        conode(
            d[1], "bill", key_of("coop0-m1"), "0.75", "--from", "coop1-m0", "--expires", "3", "--json"
        ).stdout
    )["id"]

    def both_bills_seen() -> bool:
        ids = {b["id"] for b in json.loads(conode(d[0], "bills", "--json").stdout)}
        return {first, second} <= ids

    _wait_for(both_bills_seen, "the bills to reach node 0", nodes)
    accepted = conode(d[0], "accept", first[:16])  # a unique start of the id is enough
    assert f"paid bill {first}" in accepted.stdout
    conode(d[0], "decline", second)
    statuses = {b["id"]: b["status"] for b in json.loads(conode(d[0], "bills", "--json").stdout)}
    assert statuses[first] == "paid" and statuses[second] == "declined"
    assert "paid" in conode(d[0], "bills").stdout

    # audit a chain on a node that does not host it, once every chain's holders (its host and
    # its R authorities: with R = 3 of 5 nodes, not every node) hold it at its host's head
    _wait_for(lambda: not _held_problems(plan, d), "every chain at its holders", nodes)
    # (by key: a name is resolved among the chains a node holds, and node 2 need not hold it)
    audit = json.loads(conode(d[2], "audit", str(plan.agents["coop0-m1"].key), "--json").stdout)
    assert audit["valid"] is True and audit["violations"] == []
    assert audit["balances"][str(plan.agents["coop0-m1"].key)] == -25 - 200
    assert "valid" in conode(d[3], "audit", str(plan.agents["coop1-m0"].key)).stdout

    # node 4 goes away for good; its member recovers on node 3 from its key file
    lost = nodes[4]
    lost.process.send_signal(signal.SIGTERM)
    assert lost.process.wait(30) == 0
    assert not lost.data.socket_path.exists()
    backup = lost.data.root / "keys" / "coop4-m1.key"
    recovered = json.loads(conode(d[3], "recover", "--key", str(backup), "--json").stdout)
    assert recovered["name"] == "coop4-m1" and recovered["agent"] == str(
        plan.agents["coop4-m1"].key
    )
    assert (d[3] / "keys" / "coop4-m1.key").read_bytes() == backup.read_bytes()
    assert "coop4-m1" in {
        a["name"] for a in json.loads(conode(d[3], "status", "--json").stdout)["agents"]
    }
    assert "paid 0.10 DEV" in conode(d[3], "pay", "coop0-m1", "0.10", "--from", "coop4-m1").stdout

    # every node stops on SIGTERM with exit 0 and leaves no socket behind
    for node in nodes[:4]:
        node.process.send_signal(signal.SIGTERM)
    for node in nodes[:4]:
        assert node.process.wait(30) == 0, node.log_path.read_text()[-2000:]
        assert not node.data.socket_path.exists()
        assert not node.data.ready_path.exists()
    assert "no node is running" in conode(d[0], "status", expect=1).stderr

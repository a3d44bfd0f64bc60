"""Real ``conode run`` processes on 127.0.0.1, killed, partitioned and stopped, seen through the CLI.

- ``test_kill_9_mid_payment``: on five nodes, a party's node runs with
  ``CONODE_CRASH_AT`` and SIGKILLs itself at one step of a payment
  session (docs/protocol.md section 9, the failure table); after it restarts
  the session resolves, both chains agree on every node, the audits pass on
  a node that hosts neither party, nobody is warranted and the next payments
  commit.
- ``test_partition_and_heal``: five nodes split {0,1} | {2,3,4} with
  ``conode peers block``; each side pays inside itself and no node of the
  other side comes to hold those records, then ``peers unblock --all`` and
  every record made apart reaches every node that must hold its chains (its
  host and its R authorities: with R = 3 of 5 nodes, not every node), and
  every chain audits clean.
- ``test_clean_shutdown``: SIGTERM each node in turn: exit 0, socket gone,
  its peers drop it, no connection of it left established, its port free.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from procs import (
    CRASH_ENV,
    Net,
    conode,
    conode_bg,
    conode_json,
    log_tail,
    port_bindable,
    running_net,
    tcp_of,
    tcp_table,
    wait_for,
)

pytestmark = pytest.mark.slow

PAYER, PAYEE = "coop0-m0", "coop1-m1"  # hosted on nodes 0 and 1
NODES = 5  # the size; nodes 2 to 4 host neither party
RESOLVE_TIMEOUT = 45.0  # a signed responder asks again every 2 s after the 10 s offer expires


def _rows(net: Net, name: str, memo: str) -> list[dict[str, Any]]:
    return [p for p in net.history(name) if p["memo"] == memo]


# (crash point, who commits per docs/protocol.md section 9 (None: "consistent", both or neither),
# restart the victim only after the payer's `pay` returned, what the victim left on disk)
CRASHES = [
    # I2: OFFERED persisted, the Offer never left: the restart aborts
    pytest.param("initiator-after-persist", "neither", False, "OFFERED", id="i-after-persist"),
    # I5: committed, no Complete sent: R commits when its re-sent Accept is answered
    pytest.param("initiator-after-commit", "both", False, "COMMITTED", id="i-after-commit"),
    # I6: the hook fires after the innermost SendTo, the Complete (see the report: never the Offer)
    pytest.param("initiator-after-sendto", "both", False, "COMMITTED", id="i-after-sendto"),
    # the hook fires after the Lock's nested effects: SIGNED is on disk (R2, not R1)
    pytest.param("responder-after-lock", None, False, "SIGNED", id="r-after-lock"),
    # R2: SIGNED persisted, the Accept never left; back before the offer expires
    pytest.param("responder-after-persist", None, False, "SIGNED", id="r-after-persist"),
    # R2, back only after I timed out and aborted: R releases on I's Abort
    pytest.param("responder-after-persist", "neither", True, "SIGNED", id="r-after-persist-late"),
    # R5: committed on Complete
    pytest.param("responder-after-commit", "both", False, "COMMITTED", id="r-after-commit"),
    # R5: the responder's first Unlock follows its Commit
    pytest.param("responder-after-unlock", "both", False, "COMMITTED", id="r-after-unlock"),
    # R1: locked, nothing persisted, no signature given: R forgets, I times out and aborts
    pytest.param("responder-before-persist", "neither", False, None, id="r-before-persist"),
    # I3: the Offer left and R signed, but I died before it read the Accept: I aborts on restart
    pytest.param("initiator-got-reply", "neither", False, "OFFERED", id="i-got-reply"),
]


@pytest.mark.parametrize(("point", "expected", "late", "on_disk"), CRASHES)
def test_kill_9_mid_payment(
    tmp_path: Path, point: str, expected: str | None, late: bool, on_disk: str | None
) -> None:
    role = point.split("-")[0]
    crashing = 0 if role == "initiator" else 1
    envs = {crashing: {CRASH_ENV: point}}  # the points are per role: it fires in this role only
    with running_net(tmp_path / "n", NODES, seed=f"crash-{point}", envs=envs) as net:
        auditor = NODES - 1  # hosts neither party
        d0, d1 = net.dir(0), net.dir(1)
        # earlier history on both chains: a payment the other way round (roles swapped, so the
        # crash point does not fire on it)
        # (payees by key: a name is resolved among the chains a node holds, a sharded node's share)
        conode(d1, "pay", net.key(PAYER), "0.10", "--from", PAYEE, "--memo", "before")
        victim = net.nodes[crashing]

        memo = f"crash {point}"
        pay = conode_bg(
            d0, "pay", net.key(PAYEE), "1.23", "--from", PAYER, "--memo", memo, "--json"
        )
        try:
            code = victim.process.wait(40)
        except subprocess.TimeoutExpired as exc:
            pay.kill()
            raise AssertionError(
                f"node {crashing} did not crash at {point}: {log_tail(victim)}"
            ) from exc
        assert code == -signal.SIGKILL, (code, log_tail(victim))
        assert f"{CRASH_ENV}={point}: killing this process" in log_tail(victim, 20_000)
        # what it left on disk for this payment (the warm-up had the other role here)
        left_on_disk = [s for r, s in net.stored_sessions(crashing) if r == role]
        assert left_on_disk == ([] if on_disk is None else [on_disk])

        if late:
            out, err = pay.communicate(timeout=90)
        net.start(crashing, net.bootstrap_for(crashing))  # no CONODE_CRASH_AT this time
        if not late:
            out, err = pay.communicate(timeout=90)
        assert "Traceback" not in err, err
        if crashing == 0:
            assert pay.returncode == 1, (out, err)  # the payer's node died under the call
            assert "conode: error:" in err, err
            paid: bool | None = None
        else:
            paid = bool(json.loads(out)["committed"])
            assert pay.returncode == (0 if paid else 1), (out, err)

        net.settle()
        statuses = wait_for(net.quiet, "every session to resolve", RESOLVE_TIMEOUT)
        net.held(timeout=30)  # every chain at its host's head on every node that must hold it

        # both chains agree: the payer's holds it iff the payee's does, once at most
        out_rows, in_rows = _rows(net, PAYER, memo), _rows(net, PAYEE, memo)
        assert len(out_rows) <= 1 and len(in_rows) <= 1, (out_rows, in_rows)
        committed = bool(out_rows)
        assert committed == bool(in_rows), (point, out_rows, in_rows, log_tail(net.nodes[1]))
        if committed:
            assert out_rows[0]["amount"] == -123 and in_rows[0]["amount"] == 123
        if expected is not None:
            assert committed == (expected == "both"), (point, out_rows, in_rows)
        if paid is not None:
            assert committed == paid, (point, out, out_rows, in_rows)
        print(f"{point}: pay answered {paid}, both chains {'hold' if committed else 'lack'} it")
        payer_balance = 10 - (123 if committed else 0)
        every = list(range(NODES))
        holders = net.holders()  # each holder of a chain, once held, sees the same balance
        payer_holders, payee_holders = sorted(holders[PAYER]), sorted(holders[PAYEE])
        assert net.balances(PAYER, payer_holders) == dict.fromkeys(payer_holders, payer_balance)
        assert net.balances(PAYEE, payee_holders) == dict.fromkeys(payee_holders, -payer_balance)

        # the audits pass on a node that hosts neither chain
        for report, name in zip(net.audit(auditor, [PAYER, PAYEE]), (PAYER, PAYEE), strict=True):
            assert report["valid"] is True and report["violations"] == [], report
            assert report["balances"][net.key(name)] == (
                payer_balance if name == PAYER else -payer_balance
            )
        assert all(s["warrants"] == 0 for s in statuses.values()), statuses
        assert all(s["warrants"] == 0 for s in net.statuses(every).values())

        # honest payments keep working, both ways
        conode(d0, "pay", net.key(PAYEE), "0.20", "--from", PAYER, "--memo", "after")
        conode(d1, "pay", net.key(PAYER), "0.05", "--from", PAYEE, "--memo", "after back")
        wait_for(lambda: _rows(net, PAYEE, "after"), "the payee to commit the next payment", 15)
        wait_for(lambda: _rows(net, PAYER, "after back"), "the payer to commit", 15)
        assert net.balance(0, PAYER) == payer_balance - 20 + 5
        assert net.balance(1, PAYEE) == -payer_balance + 20 - 5
        assert net.quiet([0, 1]) is not None
        assert net.stop(), "a node did not stop cleanly"


def _memos(net: Net, index: int, name: str) -> set[str] | None:
    """The memos of the payments on ``name``'s chain as node ``index`` holds it (``history``),
    or None if it holds none of the chain (``directory``)."""
    if net.key(name) not in {row["agent"] for row in conode_json(net.dir(index), "directory")}:
        return None
    rows = conode_json(net.dir(index), "history", net.key(name))["payments"]
    return {row["memo"] for row in rows}


def test_partition_and_heal(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 5, seed="partition") as net:
        d = [net.dir(i) for i in range(5)]
        ids = [status["peer_id"] for status in net.statuses().values()]
        left, right = [0, 1], [2, 3, 4]
        for side, other in ((left, right), (right, left)):
            for i in side:
                blocked = conode_json(d[i], "peers", "block", *(ids[j] for j in other))
                assert set(blocked["blocked"]) == {ids[j] for j in other}
        for i in range(5):
            seen = {p["peer_id"] for p in conode_json(d[i], "peers")}
            assert seen.isdisjoint(ids[j] for j in (right if i in left else left)), (i, seen)

        # a payment across the cut cannot commit (it times out: run it meanwhile)
        # (payees by key: a name is resolved among the chains a node holds, a sharded node's share)
        across = conode_bg(
            d[0], "pay", net.key("coop2-m0"), "0.30", "--from", "coop0-m1", "--memo", "across"
        )
        # payments inside each side commit
        apart = [  # (node, payer, payee, amount, memo)
            (0, "coop0-m0", "coop1-m1", "1.00", "left"),
            (1, "coop1-m0", "coop0-m0", "0.40", "left back"),
            (2, "coop2-m1", "coop3-m1", "2.00", "right"),
            (4, "coop4-m0", "coop2-m1", "0.70", "right 2"),
            (3, "coop3-m0", "coop4-m1", "0.90", "right 3"),
        ]
        for node, payer, payee, amount, memo in apart:
            conode(d[node], "pay", net.key(payee), amount, "--from", payer, "--memo", memo)
        out, err = across.communicate(timeout=60)
        assert across.returncode == 1, (out, err)
        assert "payment refused" in err, err
        time.sleep(1.5)  # a few more rounds: the cut holds
        # no node holds a record made on the other side (each chain's holders on the far side,
        # the R authorities of a 5-node ring with R = 3, hold it without those payments)
        for node, payer, payee, _amount, memo in apart:
            far = right if node in left else left
            for name in (payer, payee):
                for i in far:
                    memos = _memos(net, i, name)
                    assert memos is None or memo not in memos, (memo, name, i, memos)

        for i in range(5):
            assert "no peer is blocked" in conode(d[i], "peers", "unblock", "--all").stdout
        wait_for(lambda: all(s["peers"] == 4 for s in net.statuses().values()), "a full mesh", 20)
        # every record made apart reaches every node that must hold its chains: their hosts,
        # their R authorities (by every node's ring in `status --json`), at the host's head
        net.held(timeout=60)
        holders = net.holders()
        for _node, payer, payee, _amount, memo in apart:
            for name in (payer, payee):
                assert len(holders[name]) >= 3, holders  # R = 3 of 5 nodes, and the host
                for i in holders[name]:
                    assert memo in (_memos(net, i, name) or set()), (memo, name, i)
        assert net.quiet() is not None

        # every chain audits clean on a node that does not host it, and sums to zero
        total = 0
        for i in range(5):
            host = (i + 1) % 5
            names = [m.name for m in net.plan.hosted_by(host)]
            own = {a["key"]: a["balance"] for a in conode_json(d[host], "balance")}
            for name, report in zip(names, net.audit(i, names), strict=True):
                assert report["valid"] is True and report["violations"] == [], (
                    name, i, report["violations"],
                )  # fmt: skip
                balance = report["balances"][net.key(name)]
                assert balance == own[net.key(name)], (name, balance, own)
                total += balance
        assert total == 0
        assert all(s["warrants"] == 0 for s in net.statuses().values())
        for name in ("coop0-m1", "coop2-m0"):
            assert not [p for p in net.history(name) if p["memo"] == "across"], name
        assert net.balance(0, "coop0-m0") == -100 + 40
        assert net.balance(2, "coop2-m1") == -200 + 70
        # and the cut is gone: a payment across it commits now
        conode(
            d[0], "pay", net.key("coop2-m0"), "0.30", "--from", "coop0-m1", "--memo", "across again"
        )
        assert net.stop()


def test_clean_shutdown(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 3, seed="shutdown") as net:
        conode(net.dir(0), "pay", "coop1-m1", "0.50", "--from", "coop0-m0")
        ids = [net.status(i)["peer_id"] for i in range(3)]
        for index in (2, 1, 0):
            node = net.nodes[index]
            port = int(node.addrs[0].split("/tcp/")[1].split("/")[0])
            conns = [s for s in tcp_of(node.process.pid) if s.state == "ESTABLISHED"]
            if index > 0:  # the last node is alone by now
                assert conns, f"node {index} has peers but no TCP connection"
            assert net.terminate(index) == 0, log_tail(node)
            assert not node.data.socket_path.exists()
            assert not node.data.ready_path.exists()
            assert "no node is running" in conode(net.dir(index), "status", expect=1).stderr
            survivors = [i for i in range(3) if i < index]

            def gone(survivors: list[int] = survivors, peer: str = ids[index]) -> bool:
                return all(
                    peer not in {p["peer_id"] for p in conode_json(net.dir(i), "peers")}
                    for i in survivors
                )

            if survivors:
                wait_for(gone, f"node {index} to leave its peers' lists", 15)

            def closed(conns: list[Any] = conns) -> bool:
                ends = {(s.local, s.remote) for s in conns} | {(s.remote, s.local) for s in conns}
                return not [
                    s
                    for s in tcp_table()
                    if s.state in ("ESTABLISHED", "CLOSE_WAIT") and (s.local, s.remote) in ends
                ]

            # neither end left open (a survivor stuck in CLOSE_WAIT would leak its end)
            wait_for(closed, f"node {index}'s connections to close on both ends", 15)
            assert port_bindable(port), f"port {port} of node {index} is still taken"

"""What an operator does to real ``conode run`` processes, through the ``conode`` command only.

- ``test_two_runs_started_together_exactly_one_runs``: one node per data dir,
  even when two starts race (the lock, ``cli/dirlock.py``).
- ``test_a_node_hosting_keys_with_different_passphrases_starts_unattended``:
  a passphrase per key from a passphrase dir, or from systemd credentials.
- ``test_recover_takes_the_passphrase_options``: ``recover --passphrase-file``
  and a node's own passphrase dir, on a running node.
- ``test_backup_while_paying_then_restore_and_catch_up``: ``backup`` of a node
  that is paying, ``restore`` into a fresh dir, the restored node catches up
  a payment made after the backup from its peers, then pays again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from procs import clean_env, conode, conode_json, log_tail, running_net, wait_for

from cli.datadir import DataDir
from cli.devnet import LISTEN, node_command, prepare

pytestmark = pytest.mark.slow

ROUNDS = 3  # each round races two starts; which one wins varies


def _secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def _run(data: DataDir, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        node_command(data, "run", "--listen", LISTEN, *extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(**(env or {})),
    )


def _wait_exit_or_ready(
    data: DataDir, processes: list[subprocess.Popen[str]], timeout: float
) -> list[int | None]:
    """Poll until one of the processes exited and the node's API answers (or the time is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in processes]
        one_gone = any(c is not None for c in codes) and data.ready_path.exists()
        if one_gone and conode(data.root, "status", expect=None).returncode == 0:
            return codes
        time.sleep(0.2)
    return [p.poll() for p in processes]


def test_two_runs_started_together_exactly_one_runs(tmp_path: Path) -> None:
    plan = prepare(tmp_path / "net", 1, seed="lock")
    data = plan.dirs[0]
    for round_number in range(ROUNDS):
        pair = [_run(data), _run(data)]  # at the same moment, on one data dir
        try:
            codes = _wait_exit_or_ready(data, pair, timeout=60)
            exited = [i for i, code in enumerate(codes) if code is not None]
            assert len(exited) == 1, f"round {round_number}: both ran (exit codes {codes})"
            loser, winner = pair[exited[0]], pair[1 - exited[0]]
            _out, err = loser.communicate(timeout=10)
            assert loser.returncode == 1
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in err, err
            assert lines[0].startswith(f"conode: error: the data dir {data.root} is in use by ")
            assert f"(pid {winner.pid}: conode run)" in lines[0]
            status = conode_json(data.root, "status")  # reaches the one that runs
            assert status["agents"] and winner.poll() is None
            winner.send_signal(signal.SIGTERM)
            assert winner.wait(30) == 0
            assert not data.socket_path.exists()
        finally:
            for process in pair:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    # restore is refused the same way while a node holds the dir (after it checked the file)
    node = _run(data)
    try:
        wait_for(lambda: data.ready_path.exists(), "the node to start", 60)
        backup = tmp_path / "node0.tar.gz"
        conode(data.root, "backup", str(backup))
        refused = conode(data.root, "restore", str(backup), "--force", expect=1)
        assert f"is in use by another conode process (pid {node.pid}: conode run)" in refused.stderr
        assert conode_json(data.root, "status")["agents"]  # the node was not disturbed
    finally:
        node.send_signal(signal.SIGTERM)
        assert node.wait(30) == 0


def test_a_node_hosting_keys_with_different_passphrases_starts_unattended(
    tmp_path: Path,
) -> None:
    plan = prepare(tmp_path / "net", 1, seed="passphrases")
    data = plan.dirs[0]
    hosted = sorted(m.name for m in plan.hosted_by(0))
    assert len(hosted) >= 3
    phrases = tmp_path / "phrases"
    phrases.mkdir(mode=0o700)
    for name in hosted:  # each key its own passphrase, changed with the CLI
        _secret(phrases / name, f"the passphrase of {name}")
        changed = conode_json(
            data.root, "agent", "passphrase", name, "--new-passphrase-file", str(phrases / name)
        )
        assert changed["encrypted"] is True and changed["was_encrypted"] is False

    def starts(*extra: str, env: dict[str, str] | None = None) -> list[str]:
        node = _run(data, *extra, env=env)
        try:
            wait_for(lambda: node.poll() is not None or data.ready_path.exists(), "a start", 60)
            assert node.poll() is None, node.communicate()[1]
            names = sorted(a["name"] for a in conode_json(data.root, "status")["agents"])
        finally:
            node.send_signal(signal.SIGTERM)
            assert node.wait(30) == 0
        return names

    assert starts("--passphrase-dir", str(phrases)) == hosted
    assert starts(env={"CONODE_PASSPHRASE_DIR": str(phrases)}) == hosted
    # systemd's LoadCredential=passphrase:DIR gives each file as passphrase_NAME
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    for name in hosted:
        _secret(credentials / f"passphrase_{name}", f"the passphrase of {name}")
    assert starts(env={"CREDENTIALS_DIRECTORY": str(credentials)}) == hosted

    # one passphrase for every key cannot open them: one clear line, no node
    _secret(tmp_path / "one", f"the passphrase of {hosted[0]}")
    refused = subprocess.run(
        node_command(data, "run", "--listen", LISTEN, "--passphrase-file", str(tmp_path / "one")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"conode: error: wrong passphrase for agent {hosted[1]}"
    assert not data.socket_path.exists()


def test_recover_takes_the_passphrase_options(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 3, seed="recover-passphrase") as net:
        d = [net.dir(i) for i in range(3)]
        phrase = _secret(tmp_path / "phrase", "a passphrase for m0 alone")
        other = _secret(tmp_path / "other", "a passphrase for m1 alone")
        for name, file in (("coop2-m0", phrase), ("coop2-m1", other)):
            conode(d[2], "agent", "passphrase", name, "--new-passphrase-file", str(file))
        conode(d[2], "pay", "coop0-m0", "0.25", "--from", "coop2-m0", "--memo", "before")
        net.converged()
        saved = {n: d[2] / "keys" / f"{n}.key" for n in ("coop2-m0", "coop2-m1")}
        copies = {n: tmp_path / f"{n}.key" for n in saved}
        for name, path in saved.items():
            copies[name].write_bytes(path.read_bytes())
            copies[name].chmod(0o600)
        assert net.terminate(2) == 0  # node 2 is lost; its members move

        # the node's own sources have no passphrase for it: one line, nothing hosted
        refused = conode(d[0], "recover", "--key", str(copies["coop2-m0"]), expect=1)
        assert "no passphrase for agent coop2-m0" in refused.stderr
        # recover's own option carries it to the running node
        recovered = conode_json(
            d[0], "recover", "--key", str(copies["coop2-m0"]), "--passphrase-file", str(phrase)
        )
        assert recovered["name"] == "coop2-m0" and recovered["records"] >= 0
        assert conode(d[0], "pay", "coop0-m1", "0.10", "--from", "coop2-m0").returncode == 0

        # a node started with a passphrase dir opens a recovered key from it
        phrases = tmp_path / "phrases"
        phrases.mkdir(mode=0o700)
        _secret(phrases / "coop2-m1", "a passphrase for m1 alone")
        _secret(phrases / "coop2-m0", "a passphrase for m0 alone")
        assert net.terminate(1) == 0
        net.start(1, net.bootstrap_for(1), {"CONODE_PASSPHRASE_DIR": str(phrases)})
        wait_for(lambda: conode_json(d[1], "status")["peers"] >= 1, "node 1 to meet node 0", 30)
        recovered = conode_json(d[1], "recover", "--key", str(copies["coop2-m1"]))
        assert recovered["name"] == "coop2-m1"
        hosted = {a["name"] for a in conode_json(d[1], "status")["agents"]}
        assert "coop2-m1" in hosted


def _status(data: Path) -> dict[str, Any] | None:
    """``status --json``, or None while no node answers (a restored node restarts once)."""
    result = conode(data, "status", "--json", expect=None)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_backup_while_paying_then_restore_and_catch_up(tmp_path: Path) -> None:
    with running_net(tmp_path / "n", 2, seed="backup") as net:
        d0, d1 = net.dir(0), net.dir(1)
        hosted = sorted(m.name for m in net.plan.hosted_by(0))
        failures: list[str] = []

        def pay_meanwhile() -> None:
            for i in range(6):
                paid = conode(
                    d0,
                    "pay",
                    "coop1-m0",
                    "0.01",
                    "--from",
                    "coop0-m0",
                    "--memo",
                    f"during {i}",
                    expect=None,
                )
                if paid.returncode != 0:
                    failures.append(paid.stderr)

        payer = threading.Thread(target=pay_meanwhile)
        payer.start()
        try:
            wait_for(lambda: len(net.history("coop0-m0")) >= 2, "the payments to begin", 60)
            backup = tmp_path / "node0.tar.gz"
            made = conode_json(d0, "backup", str(backup))  # while node 0 pays
        finally:
            payer.join(120)
        assert not failures, failures
        assert {a["name"] for a in made["agents"]} == set(hosted)

        # after the backup: a payment the backup cannot hold
        conode(d0, "pay", "coop1-m1", "0.77", "--from", "coop0-m1", "--memo", "after the backup")
        net.converged()
        balances = {name: net.balance(0, name) for name in hosted}
        records = {a["name"]: a["records"] for a in conode_json(d0, "agent", "list")}
        assert net.terminate(0) == 0  # node 0 and its disk are lost

        fresh = tmp_path / "new-machine" / "node0"
        restored = conode_json(fresh, "restore", str(backup))
        assert restored["peer_id"] == made["peer_id"]
        net.plan.dirs[0] = DataDir(fresh)
        net.start(0, net.bootstrap_for(0))

        def hosting() -> dict[str, Any] | None:
            status = _status(fresh)
            return status if status and len(status["agents"]) == len(hosted) else None

        wait_for(hosting, "the restored node to catch up and host its agents", 90)
        # it hosted nobody until it had its chains from its peers, then everyone
        log = log_tail(net.nodes[0], 50_000)
        steps = ["; 0 agents;", "restored from a backup: fetching the chains of 3 agents",
                 "caught up coop0-m1:", "caught up: starting again", f"; {len(hosted)} agents;"]  # fmt: skip
        at = [log.find(step) for step in steps]
        assert -1 not in at and at == sorted(at), (at, log[-3000:])
        assert not (fresh / "restored").exists()
        assert {name: net.balance(0, name) for name in hosted} == balances
        assert any(p["memo"] == "after the backup" for p in net.history("coop0-m1"))
        listed = {a["name"]: a["records"] for a in conode_json(fresh, "agent", "list")}
        assert listed == records

        # and it goes on: a payment each way, nobody warranted, the audits clean
        conode(fresh, "pay", "coop1-m0", "0.05", "--from", "coop0-m0", "--memo", "restored pays")
        conode(d1, "pay", "coop0-m1", "0.03", "--from", "coop1-m1", "--memo", "paid to restored")
        net.converged()
        assert all(s["warrants"] == 0 for s in net.statuses().values())
        for report in net.audit(1, hosted):
            assert report["valid"] is True and report["violations"] == [], report
        assert net.balance(1, "coop0-m0") == balances["coop0-m0"] - 5
        assert net.balance(1, "coop0-m1") == balances["coop0-m1"] + 3

"""The hosts-of-their-own harness (``netns.py``): hosts reach each other, and nothing is left behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from netns import hosts

SERVE = """
import socket
with socket.create_server(("0.0.0.0", 9000)) as server:
    conn, (peer, _port) = server.accept()
    conn.sendall(peer.encode())
"""
ASK = """
import socket, sys, time
for _ in range(100):
    try:
        with socket.create_connection((sys.argv[1], 9000), timeout=5) as conn:
            print(conn.recv(100).decode())
            break
    except ConnectionRefusedError:
        time.sleep(0.05)
"""


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def test_hosts_reach_each_other_at_their_own_addresses(netns_hosts: Callable[[int], Any]) -> None:
    lan = netns_hosts(3)
    server = lan[0].popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE)
    answer = lan[2].run([sys.executable, "-c", ASK, lan[0].address])
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == lan[2].address  # the server saw the asker's own address
    assert server.wait(10) == 0
    lan[2].readdress(42)  # moved: reached at its new address, and it asks from it
    assert lan[2].address == "10.77.0.42"
    server = lan[2].popen([sys.executable, "-c", SERVE], stdout=subprocess.PIPE)
    answer = lan[1].run([sys.executable, "-c", ASK, "10.77.0.42"])
    assert answer.stdout.strip() == lan[1].address == "10.77.0.3", answer
    assert server.wait(10) == 0
    assert "fd77::42/64" in lan[2].run(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


def test_a_failure_inside_leaves_no_namespace_and_no_process() -> None:
    before = namespaces()
    started: list[subprocess.Popen[Any]] = []
    with pytest.raises(RuntimeError, match="the test failed"), hosts(2) as lan:
        started.append(lan[1].popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        made = namespaces() - before
        assert len(made) == 3  # the switch and two hosts
        raise RuntimeError("the test failed")
    assert namespaces() == before
    assert started[0].poll() is not None

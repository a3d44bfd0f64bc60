"""1 500 idle API connections against a real ``conode run`` at systemd's 1 024 descriptors.

Node 0 runs with ``RLIMIT_NOFILE`` 1024 (systemd's default). This test opens
1 500 connections to its API socket and leaves them idle; with them open,
``conode status`` on node 0 is answered, node 1 restarts and dials node 0
again (an inbound connection needs a descriptor), and a payment between the
two nodes commits. Before the API had a connection cap, the idle
connections took every descriptor: the new client and the peer waited.
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import pytest
from procs import conode, conode_json, running_net

pytestmark = pytest.mark.slow

SYSTEMD_NOFILE = 1024
IDLE = 1500
CONNECT_TIMEOUT = 30.0


def _connect(path: str) -> socket.socket:
    """A connection to ``path``, waiting while the listen backlog is full (as a client would)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def test_idle_api_connections_lock_out_neither_clients_nor_peers(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE + 200:
        pytest.skip(f"this process may open only {hard} descriptors; the test needs {IDLE + 200}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE + 200), hard))
    idle: list[socket.socket] = []
    with running_net(tmp_path, 2, "api-exhaustion") as net:
        node0 = net.nodes[0].process.pid
        resource.prlimit(node0, resource.RLIMIT_NOFILE, (SYSTEMD_NOFILE, SYSTEMD_NOFILE))
        socket_path = str(net.plan.dirs[0].socket_path)
        try:
            for _ in range(IDLE):
                idle.append(_connect(socket_path))
            status = conode_json(net.dir(0), "status")
            assert status["agents"]
            net.restart(1)  # node 1 dials node 0 afresh: node 0 accepts it with a descriptor
            assert conode_json(net.dir(0), "status")["peers"] >= 1
            assert conode_json(net.dir(1), "status")["peers"] >= 1
            result = conode(net.dir(0), "pay", "coop1-m1", "0.50", "--from", "coop0-m0")
            assert result.returncode == 0
            assert net.nodes[0].process.poll() is None
        finally:
            for sock in idle:
                sock.close()

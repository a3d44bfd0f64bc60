"""Hosts of their own for tests: Linux network namespaces joined by a bridge, and conode nodes on them.

Two layers, both public (the user-guide test of another issue runs its
commands on these hosts too):

``hosts(count)`` — the machines::

    with hosts(5) as lan:                       # pytest.skip(...) where it cannot run
        lan[0].address                          # "10.77.0.2" (and lan[0].address6, "fd77::2")
        lan[0].popen([...])                     # a process on that host (ip netns exec)
        lan[3].readdress(103)                   # now 10.77.0.103 / fd77::103

Each host is a network namespace with ``lo`` and one interface, ``eth0``,
holding 10.77.0.N/24 and fd77::N/64; every ``eth0`` is one end of a veth
pair whose other end is enslaved to a bridge in a namespace of its own (the
switch). Nothing is added to the machine's own namespace: no route, address
or link of the machine changes, and runs side by side cannot collide (each
has its own switch, the namespaces' names carry the pid). It needs root and
``ip`` (iproute2); ``hosts`` skips the test with a clear message where it
cannot make a namespace.

Clean-up, on the way out of ``hosts`` whatever happened: every process
started with ``popen`` is sent SIGTERM, then SIGKILL after a grace period;
any process still in a namespace (``ip netns pids``: only ones we started
can be there) is killed by pid; then the namespaces are deleted, which
deletes their links. Namespaces a killed run left behind (their pid is
gone) are deleted at the next ``hosts``.

``hosts_net(base, count, seed)`` — a devnet (``cli.devnet.prepare``) whose
nodes are ``conode run`` processes, one per host, each listening on the
wildcard (``/ip4/0.0.0.0/tcp/7447``) and joining through one bootstrap
address, node 0's. It is a ``procs.Net``: everything is read through the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from procs import Net, clean_env, log_tail, peer_id_of

from cli.devnet import NodeProcess, node_command, prepare, stop_nodes, wait_ready

__all__ = ["PORT", "SUBNET", "SUBNET6", "Host", "HostsNet", "hosts", "hosts_net", "netns_problem"]

SUBNET = "10.77.0"
"""Hosts are SUBNET.N/24 (N from 2); the subnet exists only inside the namespaces."""
SUBNET6 = "fd77::"
"""And SUBNET6 N/64 (a unique local address, usable at once: added with nodad)."""
PORT = 7447
"""Where every node listens, on the wildcard: each host has its own."""
GRACE = 20.0
_PREFIX = "cnt"
_counter = iter(range(1_000_000))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def netns_problem() -> str | None:
    """Why network namespaces cannot be made here (None if they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "no `ip` command: install iproute2 (`.ci/run` does)"
    probe = f"{_PREFIX}{os.getpid()}probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def remove_stale() -> None:
    """Delete namespaces a killed run left behind (named after a pid that is gone)."""
    listed = _ip("netns", "list", check=False).stdout.split()
    for name in listed:
        match = re.fullmatch(rf"{_PREFIX}(\d+)x\d+-\w+", name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        _kill_all_in(name)
        _ip("netns", "del", name, check=False)


def _kill_all_in(namespace: str) -> None:
    """SIGKILL every process still in ``namespace`` (only processes we started can be there)."""
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass
class Host:
    """One machine: a network namespace with ``eth0`` on the bridge."""

    namespace: str
    number: int
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """Its IPv4 address."""
        return f"{SUBNET}.{self.number}"

    @property
    def address6(self) -> str:
        """Its IPv6 address."""
        return f"{SUBNET6}{self.number}"

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` as a command line that runs on this host."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process on this host; it is stopped when the hosts are torn down."""
        process = subprocess.Popen(self.command(args), **kwargs)
        self.processes.append(process)
        return process

    def run(self, args: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command on this host to completion (output captured as text)."""
        return subprocess.run(
            self.command(args), capture_output=True, text=True, timeout=timeout, check=False
        )

    def readdress(self, number: int) -> None:
        """Move this host to SUBNET.number and SUBNET6 number (its processes should be stopped)."""
        for old, new in (
            (self.address, f"{SUBNET}.{number}"),
            (self.address6, f"{SUBNET6}{number}"),
        ):
            prefix = 24 if "." in old else 64
            _ip("-n", self.namespace, "addr", "del", f"{old}/{prefix}", "dev", "eth0")
            extra = [] if "." in new else ["nodad"]
            _ip("-n", self.namespace, "addr", "add", f"{new}/{prefix}", "dev", "eth0", *extra)
        self.number = number

    def stop(self, grace: float = GRACE) -> None:
        """SIGTERM every process started here, SIGKILL what is left after ``grace``; then stragglers."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        _kill_all_in(self.namespace)


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """``count`` hosts on one bridge (see the module docstring); skips the test where it cannot."""
    problem = netns_problem()
    if problem is not None:
        pytest.skip(f"no hosts of their own: {problem}")
    remove_stale()
    tag = f"{_PREFIX}{os.getpid()}x{next(_counter)}"
    switch = f"{tag}-sw"
    made: list[str] = []
    lan: list[Host] = []
    try:
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for index in range(count):
            host = Host(f"{tag}-h{index}", index + 2)
            _ip("netns", "add", host.namespace)
            made.append(host.namespace)
            port = f"p{index}"
            _ip("-n", switch, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", host.namespace)  # fmt: skip
            _ip("-n", switch, "link", "set", port, "master", "br0")
            _ip("-n", switch, "link", "set", port, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.namespace, "addr", "add", f"{host.address6}/64", "dev", "eth0", "nodad")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            lan.append(host)
        yield lan
    finally:
        for host in lan:
            host.stop()
        for name in reversed(made):
            _kill_all_in(name)
            _ip("netns", "del", name, check=False)


# -- conode nodes on the hosts -------------------------------------------------------------------------


WILDCARD = f"/ip4/0.0.0.0/tcp/{PORT}"


class HostsNet(Net):
    """A ``procs.Net`` whose node ``i`` runs on host ``i``, listening on the wildcard."""

    def __init__(self, plan: Any, lan: list[Host]) -> None:
        super().__init__(plan, [])
        self.lan = lan
        for data in plan.dirs:  # as `conode init` leaves it: every interface, one fixed port
            data.write_config(dataclasses.replace(data.config(), listen=WILDCARD))

    def address_of(self, index: int) -> str:
        """Node ``index``'s dialable address on its host (what its peers should learn)."""
        return f"/ip4/{self.lan[index].address}/tcp/{PORT}/p2p/{peer_id_of(self.plan, index)}"

    def spawn(
        self,
        index: int,
        bootstrap: list[str],
        env: dict[str, str] | None = None,
        listen: str | None = None,
    ) -> NodeProcess:
        """Start ``conode run`` for node ``index`` on its host (output to its ``node.log``); no wait.

        It listens where its config says (the wildcard), or on ``listen``.
        """
        data = self.plan.dirs[index]
        log_path = data.root / "node.log"
        command = node_command(data, "run", "--log-level", "info")
        if listen is not None:
            command += ["--listen", listen]
        if bootstrap:
            command += ["--bootstrap", *bootstrap]
        with open(log_path, "ab") as log:
            process = self.lan[index].popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(**(env or {})),
            )
        return NodeProcess(index, data, process, log_path)

    def start(self, index: int, bootstrap: list[str], env: dict[str, str] | None = None) -> None:
        """Start node ``index`` again (its process must be gone); wait until its API answers."""
        old = self.nodes[index]
        assert old.process.poll() is not None, f"node {index} is still running"
        self.retired.append(old)
        node = self.nodes[index] = self.spawn(index, bootstrap, env)
        wait_ready(node)

    def bootstrap_for(self, index: int) -> list[str]:
        """The one bootstrap address every node joins through: node 0's (node 0's own: none)."""
        return [] if index == 0 else [self.address_of(0)]

    def start_all(self) -> None:
        """Node 0, then every other at once, joining through node 0; all ready."""
        self.nodes = [self.spawn(0, [])]
        wait_ready(self.nodes[0])
        self.nodes += [self.spawn(i, self.bootstrap_for(i)) for i in range(1, len(self.lan))]
        for node in self.nodes[1:]:
            try:
                wait_ready(node)
            except Exception as exc:
                raise AssertionError(f"node {node.index}: {exc}\n{log_tail(node)}") from exc


@contextlib.contextmanager
def hosts_net(base: Path, count: int, seed: str) -> Iterator[HostsNet]:
    """``count`` settled nodes (``Net.settle``), one per host, joined through node 0; everything stopped at the end."""
    with hosts(count) as lan:
        plan = prepare(base, count, seed)
        net = HostsNet(plan, lan)
        try:
            net.start_all()
            net.settle(timeout=90.0)
            yield net
        finally:
            stop_nodes([n for n in net.nodes if n.process.poll() is None])

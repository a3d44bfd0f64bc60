"""Helpers for the tests that run real ``conode run`` processes and drive them through the CLI.

A ``Net`` is a devnet prepared with ``cli.devnet.prepare`` whose nodes are real
processes. Everything a test asserts is read through ``conode`` commands
(``status --json``, ``history --json``, ``audit --json``, ...); the Python
API client is never used to look at a node.

``running_net`` starts every node at once (``start_all``): each listens on a
port chosen beforehand and has every other node as a bootstrap peer, so none
waits for another to come up, and of any two the one that listens second
dials the first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cli.datadir import CommandError
from cli.devnet import (
    LISTEN,
    DevnetPlan,
    NodeProcess,
    prepare,
    start_node,
    stop_nodes,
    wait_ready,
    wait_until_held,
)
from cli.devnet.shares import held_problems, holders, ring_of

_SCRIPT = Path(sys.executable).with_name("conode")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli"]
CRASH_ENV = "CONODE_CRASH_AT"

T = TypeVar("T")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ``CONODE_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def conode(
    data: Path, *args: str, expect: int | None = 0, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """``conode --data-dir data args``: exit code checked (unless ``expect`` is None), no traceback."""
    result = subprocess.run(
        [*COMMAND, "--data-dir", str(data), *args],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, (args, result.stderr)
    if expect is not None:
        assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
    return result


def conode_json(data: Path, *args: str) -> Any:
    """The JSON that ``conode --data-dir data args --json`` prints (exit 0 required)."""
    return json.loads(conode(data, *args, "--json").stdout)


def conode_json_each(datas: list[Path], *args: str, timeout: float = 90.0) -> list[Any]:
    """``conode_json(data, *args)`` for each data dir, run at the same time; the answers in order."""
    running = [conode_bg(data, *args, "--json") for data in datas]
    answers = []
    for data, process in zip(datas, running, strict=True):
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert "Traceback" not in err, (data, args, err)
        assert process.returncode == 0, (data, args, process.returncode, out, err)
        answers.append(json.loads(out))
    return answers


def ctrl_c_answered() -> None:
    """Run in a child before it starts: SIGINT at its default, as under a terminal's Ctrl-C.

    A test run that a shell without job control started in the background
    (``cmd &``, ``nohup``) inherits SIGINT ignored, and Python keeps an ignored
    SIGINT ignored, so a test that ends a command with SIGINT would wait forever.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def conode_bg(data: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``conode --data-dir data args`` in the background (e.g. a ``pay`` that blocks);
    SIGINT ends it as Ctrl-C would."""
    return subprocess.Popen(
        [*COMMAND, "--data-dir", str(data), *args],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_answered,
    )


def wait_for(check: Callable[[], T | None], what: str, timeout: float, every: float = 0.3) -> T:
    """Poll ``check`` until it returns something truthy; that value (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(every)


def log_tail(node: NodeProcess, chars: int = 3000) -> str:
    try:
        return node.log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class Net:
    """A running devnet: the plan, and one ``NodeProcess`` per node (replaced on restart)."""

    plan: DevnetPlan
    nodes: list[NodeProcess]
    retired: list[NodeProcess] = field(default_factory=list)
    args: dict[int, list[str]] = field(default_factory=dict)
    """Extra ``conode run`` arguments of some nodes, by index (kept on restart)."""

    def dir(self, index: int) -> Path:
        return self.plan.dirs[index].root

    def key(self, name: str) -> str:
        return str(self.plan.agents[name].key)

    def status(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = conode_json(self.dir(index), "status")
        return result

    def statuses(self, indexes: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """``status --json`` of each node (all alive ones by default), asked at the same time."""
        chosen = indexes if indexes is not None else self.alive()
        answers = conode_json_each([self.dir(i) for i in chosen], "status")
        return dict(zip(chosen, answers, strict=True))

    def alive(self) -> list[int]:
        return [n.index for n in self.nodes if n.process.poll() is None]

    def start(self, index: int, bootstrap: list[str], env: dict[str, str] | None = None) -> None:
        """Start node ``index`` (its process must be gone), wait until its API answers."""
        old = self.nodes[index]
        assert old.process.poll() is not None, f"node {index} is still running"
        self.retired.append(old)
        node = self.nodes[index] = spawn(
            self.plan, index, LISTEN, bootstrap, env, self.args.get(index, [])
        )
        wait_ready(node, PROCESS_START_TIMEOUT)

    def terminate(self, index: int, timeout: float = 30.0) -> int:
        """SIGTERM node ``index`` and wait: its exit code."""
        node = self.nodes[index]
        node.process.send_signal(signal.SIGTERM)
        node.exit_code = node.process.wait(timeout)
        return node.exit_code

    def restart(self, index: int, env: dict[str, str] | None = None) -> None:
        """Stop node ``index`` cleanly (exit 0 required) and start it again with ``env``."""
        assert self.terminate(index) == 0, log_tail(self.nodes[index])
        self.start(index, self.bootstrap_for(index), env)
        self.settle()

    def bootstrap_for(self, index: int) -> list[str]:
        return [n.addrs[0] for n in self.nodes if n.index != index and n.process.poll() is None][:1]

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the nodes see one another and every chain is held by its holders (its host,
        its R authorities, any full-arc node: ``cli.devnet.wait_until_held``)."""
        wait_until_held(self.plan, self.nodes, timeout)

    # -- what the nodes say, through the CLI --------------------------------------------------

    def quiet(self, indexes: list[int] | None = None) -> dict[int, dict[str, Any]] | None:
        """Every node's status if none has an open session or a locked chain, else None."""
        statuses = self.statuses(indexes)
        if all(s["sessions"] == 0 and s["locked_chains"] == 0 for s in statuses.values()):
            return statuses
        return None

    def digests(self, indexes: list[int] | None = None) -> dict[int, str]:
        return {i: status["heads_digest"] for i, status in self.statuses(indexes).items()}

    def converged(self, indexes: list[int] | None = None, timeout: float = 30.0) -> str:
        """Wait until the nodes hold the same heads (by waiting: the CLI has no `sync`): only nodes
        that hold the same chains (R or fewer nodes, where every arc is full) ever do; ``held`` is
        what a larger, sharded network comes to."""

        def same() -> str | None:
            digests = set(self.digests(indexes).values())
            return digests.pop() if len(digests) == 1 else None

        return wait_for(same, f"nodes {indexes or self.alive()} to converge", timeout, every=0.5)

    def holders(self) -> dict[str, frozenset[int]]:
        """The nodes that must hold each agent's chain (by name): its host, its R authorities and
        any full-arc node, on the ring of every running node's ``status --json``
        (``cli.devnet.shares``); every node while there are R or fewer."""
        statuses = self.statuses()
        ring = ring_of(statuses, self.plan.charter.params.replication)
        assert ring is not None, f"a node is not placed yet: {statuses}"
        hosts = {m.key: m.node for m in self.plan.agents.values() if m.node in statuses}
        must = holders(ring, statuses, hosts)
        return {m.name: must[m.key] for m in self.plan.agents.values() if m.key in must}

    def held(self, timeout: float = 60.0) -> None:
        """Wait until every chain is held at its host's head by every node that must hold it, and
        every node holds the same warrants (by ``status --json`` and ``directory --json``)."""
        replication = self.plan.charter.params.replication
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            answers = conode_json_each([self.dir(i) for i in statuses], "directory")
            directories = dict(zip(statuses, answers, strict=True))
            hosts = {m.key: m.node for m in self.plan.agents.values() if m.node in statuses}
            problems = held_problems(statuses, directories, hosts, replication, same_head=True)
            if len({s["warrants"] for s in statuses.values()}) > 1:
                problems.append("the nodes hold different warrants")
            if not problems:
                return
            assert time.monotonic() < deadline, f"not held after {timeout:g} s: {problems}"
            time.sleep(0.5)

    def history(self, name: str) -> list[dict[str, Any]]:
        """The payments of ``name``'s chain as its home node holds it."""
        home = self.plan.agents[name].node
        payments: list[dict[str, Any]] = conode_json(self.dir(home), "history", name)["payments"]
        return payments

    def balance(self, index: int, name: str) -> int:
        balance: int = conode_json(self.dir(index), "balance", self.key(name))["balance"]
        return balance

    def balances(self, name: str, indexes: list[int]) -> dict[int, int]:
        """``name``'s balance as each of these nodes answers it, asked at the same time."""
        answers = conode_json_each([self.dir(i) for i in indexes], "balance", self.key(name))
        return {i: answer["balance"] for i, answer in zip(indexes, answers, strict=True)}

    def audit(self, index: int, names: list[str]) -> list[dict[str, Any]]:
        """``conode audit KEY... --json`` on node ``index`` (a list of reports, in order)."""
        result = conode(
            self.dir(index), "audit", *(self.key(n) for n in names), "--json", expect=None
        )
        assert result.returncode in (0, 1), (result.returncode, result.stderr)
        reports = json.loads(result.stdout)
        return reports if isinstance(reports, list) else [reports]

    def stop(self) -> bool:
        return stop_nodes([n for n in self.nodes if n.process.poll() is None])

    def stored_sessions(self, index: int) -> list[tuple[str, str]]:
        """(role, status) of every session node ``index`` left on disk (the node must be down)."""
        from conode.validation.countersign import SessionRecord

        assert self.nodes[index].process.poll() is not None, f"node {index} is running"
        with self.plan.dirs[index].open_node_store() as store:
            records = [SessionRecord.from_bytes(raw) for _key, _agent, raw in store.sessions()]
        return [(r.role.name.lower(), r.status.name) for r in records]


def spawn(
    plan: DevnetPlan,
    index: int,
    listen: str,
    bootstrap: list[str],
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> NodeProcess:
    """Start ``conode run`` for node ``index`` (output appended to its ``node.log``), with ``args``
    after ``run``'s own; no wait."""
    return start_node(
        plan, index, bootstrap, "info", listen=listen, extra_env=env, extra_args=args or ()
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peer_id_of(plan: DevnetPlan, index: int) -> str:
    """Node ``index``'s libp2p peer id, from its node key (as ``conode run`` derives it)."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return str(ID.from_pubkey(create_new_key_pair(plan.dirs[index].node_seed()).public_key))


START_ATTEMPTS = 3
"""A node whose chosen port was taken meanwhile (by another test) starts again on a new one."""
PROCESS_START_TIMEOUT = 180.0
"""How long a node process may take to come up here: the suite runs on every core, and a start
derives every hosted key (Argon2id, CPU and memory heavy) while other tests' nodes run (a
restored node took over 60 s beside the devnet tests at load 19; 30 s alone)."""


def start_all(
    plan: DevnetPlan,
    envs: dict[int, dict[str, str]] | None = None,
    args: dict[int, list[str]] | None = None,
    bootstraps: int | None = None,
) -> list[NodeProcess]:
    """Every node at once, each with every other as a bootstrap peer; all ready (API up).

    ``envs``: extra environment variables of some nodes, by index; ``args``: extra ``conode run``
    arguments of some nodes, by index (``--full-arc``); ``bootstraps``: give each node only
    this many bootstrap peers, the nodes after it in index order (wrapping round: the graph is
    connected), as on a network too large for everyone to dial everyone.
    """
    count = len(plan.dirs)
    ports = [free_port() for _ in range(count)]
    peers = [peer_id_of(plan, i) for i in range(count)]

    def bootstrap(index: int) -> list[str]:
        others = [(index + k) % count for k in range(1, count)][:bootstraps]
        return [f"/ip4/127.0.0.1/tcp/{ports[j]}/p2p/{peers[j]}" for j in others]

    def launch(index: int) -> NodeProcess:
        listen = f"/ip4/127.0.0.1/tcp/{ports[index]}"
        return spawn(
            plan, index, listen, bootstrap(index), (envs or {}).get(index), (args or {}).get(index)
        )

    nodes = [launch(i) for i in range(count)]
    try:
        for index in range(count):
            for attempt in range(START_ATTEMPTS):
                try:
                    wait_ready(nodes[index], PROCESS_START_TIMEOUT)
                    break
                except CommandError:
                    port_taken = "cannot listen on" in log_tail(nodes[index])
                    if attempt + 1 == START_ATTEMPTS or not port_taken:
                        raise
                    ports[index] = free_port()  # the others dial its old port; it dials them
                    nodes[index] = launch(index)
    except BaseException:
        stop_nodes(nodes)
        raise
    return nodes


@contextlib.contextmanager
def running_net(
    base: Path,
    count: int,
    seed: str,
    envs: dict[int, dict[str, str]] | None = None,
    *,
    args: dict[int, list[str]] | None = None,
    bootstraps: int | None = None,
    config: dict[str, Any] | None = None,
    settled: bool = True,
) -> Iterator[Net]:
    """``count`` nodes prepared by the devnet's code (``envs``, ``args`` and ``bootstraps`` as
    ``start_all``'s; ``config``: fields of every node's ``config.toml`` set otherwise than the
    devnet's, e.g. ``hello_interval_ms=0`` for the node's default), settled (each connected to
    all others, placed, and every chain held by its holders: ``Net.settle``) unless ``settled``
    is False (a network too large for every node to connect to every other).

    Every process is stopped at the end.
    """
    plan = prepare(base, count, seed)
    for data in plan.dirs if config else []:
        data.write_config(dataclasses.replace(data.config(), **config))
    net = Net(plan, start_all(plan, envs, args, bootstraps), args=dict(args or {}))
    try:
        if settled:
            net.settle()
        yield net
    finally:
        net.stop()
        for node in net.retired:
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


# -- sockets of a process, from /proc --------------------------------------------------------

_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _addr(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    if len(host) == 8:
        ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(host)[::-1])
    else:
        raw = bytes.fromhex(host)
        ip = socket.inet_ntop(
            socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        )
    return ip, int(port, 16)


@dataclass(frozen=True)
class TcpSocket:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    inode: int


def tcp_table() -> list[TcpSocket]:
    """Every TCP socket of this network namespace (``/proc/net/tcp`` and ``tcp6``)."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as file:
            for line in file.readlines()[1:]:
                parts = line.split()
                rows.append(
                    TcpSocket(
                        _addr(parts[1]),
                        _addr(parts[2]),
                        _TCP_STATES.get(parts[3], parts[3]),
                        int(parts[9]),
                    )
                )
    return rows


def tcp_of(pid: int) -> list[TcpSocket]:
    """The TCP sockets process ``pid`` holds open."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return [s for s in tcp_table() if s.inode in inodes]


def port_bindable(port: int) -> bool:
    """True if a new listener can bind 127.0.0.1:port (as a restarted server would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
    except OSError:
        return False
    finally:
        sock.close()
    return True

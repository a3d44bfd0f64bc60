"""The devnet's node processes (step 2): start ``conode run`` processes, wait until they are
ready and holding what they must, stop them (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.client import ApiClient
from cli.datadir import CommandError, DataDir
from cli.devnet.plan import (
    LISTEN,
    POLL,
    START_TIMEOUT,
    STOP_GRACE,
    DevnetPlan,
)
from cli.devnet.shares import held_problems
from conode.errors import ConodeError

__all__ = [
    "NodeProcess",
    "node_command",
    "start_node",
    "start_nodes",
    "stop_nodes",
    "wait_ready",
    "wait_until_held",
]


@dataclass(slots=True)
class NodeProcess:
    """One running ``conode run`` process."""

    index: int
    data: DataDir
    process: subprocess.Popen[bytes]
    log_path: Path
    addrs: list[str] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def client(self) -> ApiClient:
        """A client of this node's API."""
        return ApiClient(self.data, timeout=60.0)


# -- 2. start ----------------------------------------------------------------------------------------


def node_command(data: DataDir, *extra: str) -> list[str]:
    """The ``conode`` command line for a data dir, run with this very interpreter."""
    return [sys.executable, "-m", "cli", "--data-dir", str(data.root), *extra]


def start_node(
    plan: DevnetPlan,
    index: int,
    bootstrap: list[str],
    log_level: str = "info",
    *,
    listen: str = LISTEN,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> NodeProcess:
    """Start ``conode run`` for node ``index`` (its output appended to ``DIR/node.log``), in an
    environment without ``CONODE_*`` variables (plus ``extra_env``), with ``extra_args`` after
    ``run``'s own (``--full-arc``); no wait."""
    data = plan.dirs[index]
    log_path = data.root / "node.log"
    command = node_command(data, "run", "--log-level", log_level, "--listen", listen, *extra_args)
    if bootstrap:
        command += ["--bootstrap", *bootstrap]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return NodeProcess(index, data, process, log_path)


def _die_with_parent() -> None:
    """In the child, on Linux: be sent SIGTERM if the devnet process dies (even by SIGKILL)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def wait_ready(node: NodeProcess, timeout: float = START_TIMEOUT) -> list[str]:
    """Wait for the node's ready file and API; its listen addresses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = node.process.poll()
        if code is not None:
            raise CommandError(
                f"node {node.index} exited with code {code} while starting: {_last_line(node.log_path)}"
            )
        # the ready file says "up"; the addresses come from the API (never a half-written file)
        if node.data.ready_path.is_file() and node.data.socket_path.exists():
            with contextlib.suppress(ConodeError):
                addrs = [str(a) for a in node.client.call("status")["listen"]]
                if addrs:
                    node.addrs = addrs
                    return addrs
        time.sleep(POLL)
    raise CommandError(
        f"node {node.index} did not start within {timeout:g} s (see {node.log_path})"
    )


def start_nodes(plan: DevnetPlan, log_level: str = "info", say: Any = None) -> list[NodeProcess]:
    """Node 0 first, then every other with node 0 as its bootstrap peer; all ready."""
    started: list[NodeProcess] = []
    try:
        first = start_node(plan, 0, [], log_level)
        started.append(first)
        addrs = wait_ready(first)
        if say is not None:
            say(f"node 0 is up at {addrs[0]}")
        for index in range(1, len(plan.dirs)):
            started.append(start_node(plan, index, [addrs[0]], log_level))
        for node in started[1:]:
            wait_ready(node)
            if say is not None:
                say(f"node {node.index} is up at {node.addrs[0]}")
    except BaseException:
        stop_nodes(started)
        raise
    return started


def wait_until_held(
    plan: DevnetPlan, nodes: list[NodeProcess], timeout: float = START_TIMEOUT
) -> float:
    """Wait until the nodes see one another and every chain is held where it must be; seconds.

    ``nodes`` are every node of the network (they may be fewer than the plan's data dirs: the
    chains counted are the hosted agents of these nodes). Each node must be connected to every
    other, know the agents each hosts, be placed on the ring and know every node's place; and
    each chain must be held by its holders (``shares``: its host, its R authorities and the
    full-arc nodes; every node while there are R or fewer ordinary nodes). On a sharded network
    of more than R nodes no node holds every chain, so this is what a settled network is.
    """
    started = time.monotonic()
    deadline = started + timeout
    replication = plan.charter.params.replication
    indexes = {node.index for node in nodes}
    hosts = {m.key: m.node for m in plan.agents.values() if m.node in indexes}
    last = ""
    while True:
        missing, statuses, directories = [], {}, {}
        for node in nodes:
            try:
                peers = node.client.call("peers")
                statuses[node.index] = node.client.call("status")
                directories[node.index] = node.client.call("directory")
            except ConodeError as exc:
                missing.append(f"node {node.index}: {exc}")
                continue
            known = sum(len(p.get("agents") or []) for p in peers)
            own = len(plan.hosted_by(node.index))
            if len(peers) < len(nodes) - 1 or known < len(hosts) - own:
                missing.append(
                    f"node {node.index} sees {len(peers)} peers and {known} of their agents"
                )
        if not missing:
            missing = held_problems(statuses, directories, hosts, replication, same_head=False)
        if not missing:
            return time.monotonic() - started
        last = "; ".join(missing)
        if time.monotonic() > deadline:
            raise CommandError(
                f"the nodes did not come to hold their chains within {timeout:g} s: {last}"
            )
        for node in nodes:  # publish what is short of receipts now, not at the next round
            with contextlib.suppress(ConodeError):
                node.client.call("sync")
        time.sleep(POLL * 2)


def stop_nodes(nodes: list[NodeProcess], grace: float = STOP_GRACE) -> bool:
    """SIGTERM every node, wait, SIGKILL what is left; True if all exited 0 and left no socket."""
    for node in nodes:
        if node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    clean = True
    for node in nodes:
        try:
            node.exit_code = node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                node.process.kill()
            node.exit_code = node.process.wait()
        if node.exit_code != 0 or node.data.socket_path.exists():
            clean = False
    return clean


def _last_line(path: Path) -> str:
    """The last non-empty line of a log file (why a node stopped)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"

"""Attacks on a running node, for ``bench/hostile.py`` (its ``ATTACKS`` beside ``decoding``).

Three processes, so that each figure is the target's own:

- the **target**: ``conode.daemon.serve`` (what ``conode run`` runs) in a
  process of its own, hosting ``coop0`` and its member ``coop0-m0``, with its
  local API socket;
- the **honest** node, in this process (real libp2p), hosting ``coop1`` and
  ``coop1-m0``: it pays the target's member, one payment at a time, and its
  latencies are the honest p50/p95;
- the **attacker**, ``python bench/node_attacks.py attack KIND ADDR DIR``,
  in a process of its own. An attacker on another host takes none of this
  machine's CPU; here it shares the cores, so the honest latencies under
  attack include the attacker's own work (at ``nice 19`` on a busy machine
  it hardly ran at all), and the target's CPU-seconds are the node's cost.

For each attack: honest payments quiet, then with the attacker running (after
a warm-up), the target's CPU-seconds (utime + stime from ``/proc``) over
each phase, its RSS at the end and its peak (``VmHWM``, since its start),
and what the attacker saw (refusals, the worst refusal time of the API line).

Attacks (``KINDS``): ``hellos`` (hellos naming 3 000 made-up peers at a
closed port, five a second), ``pending`` (1 500 bills of a member whose
genesis the target holds, all ahead of a gap, 4 096 records of 256 made-up
authors, then the gap record), ``chains`` (32 ``chains`` requests in flight
for every chain from seq 0, without pause), ``sockets`` (300 TCP sockets
opened to the libp2p port and held idle; then a fresh libp2p peer's connect
time), ``api`` (1 500 connections to the API socket opened and held idle,
each one the node closes opened again, and a fresh API ``status`` call
every half second), ``json`` (one 1 MiB line of ``[`` to the API after the
other; the time each refusal takes).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from conode.chain import ActionKind, ChainHead, author_record
from conode.crypto import Signer
from conode.dht import wire
from conode.dht.libp2p_transport import Libp2pTransport
from conode.dht.messages import ChainsRequest, Hello, PublishRequest
from conode.dht.transport import PeerId, protocol_id
from conode.errors import NetworkError
from conode.hashes import ActionHash, AgentKey
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore
from conode.testing.network import derive_signer, make_charter
from conode.validation.charter import Charter, Limits
from conode.validation.entries import BILL, Bill

SEED: Final = "bench-hostile"
KINDS: Final = ("hellos", "pending", "chains", "sockets", "api", "json")
SETTINGS: Final = NodeSettings(
    replication=3, request_timeout=5.0, gossip_interval=1.0, publish_interval=0.5,
    hello_interval=2.0, session_timeout_us=10_000_000, retry_interval_us=1_000_000,
)  # fmt: skip
WARM_UP_S: Final = 3.0
MADE_UP_PEERS: Final = 3_000
PARKED: Final = 1_500

TARGET = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from conode.crypto import Signer
    from conode.daemon import DaemonConfig, serve
    from conode.node import HostedAgent, NodeSettings
    from conode.validation.charter import Charter
    d = Path(sys.argv[1])
    charter = Charter.from_bytes((d / "charter.cbor").read_bytes())
    agents = [HostedAgent(n, Signer((d / f"{n}.seed").read_bytes())) for n in ("coop0", "coop0-m0")]
    settings = NodeSettings(replication=3, request_timeout=5.0, gossip_interval=1.0,
        publish_interval=0.5, hello_interval=2.0, session_timeout_us=10_000_000,
        retry_interval_us=1_000_000)
    trio.run(serve, DaemonConfig(store_path=d / "conode.db", socket_path=d / "conode.sock",
        charter=charter, node_seed=(d / "node.seed").read_bytes(), agents=agents,
        ready_file=d / "ready", listen="/ip4/127.0.0.1/tcp/0", settings=settings))
    """
)


def _charter() -> Charter:
    coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(2)]
    return make_charter(coops, member_limits=Limits(10**9, 10**9), replication=3)


def _agent(name: str) -> HostedAgent:
    return HostedAgent(name, derive_signer(SEED, name))


# -- the target's process --------------------------------------------------------------------------


class Target:
    """The target daemon's process: its address, API socket, CPU-seconds and memory."""

    def __init__(self, directory: Path) -> None:
        from network import write_geneses  # bench/network.py: geneses straight into a store

        self.directory = directory
        directory.mkdir()
        charter = _charter()
        (directory / "charter.cbor").write_bytes(charter.to_bytes())
        (directory / "node.seed").write_bytes(derive_signer(SEED, "node0").seed)
        for name in ("coop0", "coop0-m0"):
            (directory / f"{name}.seed").write_bytes(_agent(name).signer.seed)
        with NodeStore.open(directory / "conode.db") as store:
            write_geneses(store, charter, _agent("coop0"), [_agent("coop0-m0")])
        self.process = subprocess.Popen(
            [sys.executable, "-c", TARGET, str(directory)], stderr=subprocess.DEVNULL
        )
        ready = directory / "ready"
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the target node did not start")
            time.sleep(0.05)
        self.addr = ready.read_text().split()[0]
        self.socket = directory / "conode.sock"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- the honest node ---------------------------------------------------------------------------------


async def honest_node(directory: Path, target: Target, nursery: trio.Nursery) -> Node:
    """The honest node (coop1, coop1-m0; coop1-m1's genesis too: the attacker's parking member)."""
    from network import write_geneses

    store = NodeStore.open(directory / "honest.db")
    members = [_agent("coop1-m0"), _agent("coop1-m1")]
    write_geneses(store, _charter(), _agent("coop1"), members)
    node = Node(
        store=store, charter=_charter(),
        transport=Libp2pTransport(derive_signer(SEED, "node1").seed, bootstrap=[target.addr],
                                  gossip=False, network=_charter().network_id.raw[:8].hex()),
        node_signer=derive_signer(SEED, "node1"), agents=[_agent("coop1"), members[0]],
        settings=SETTINGS,
    )  # fmt: skip
    await nursery.start(node.run)
    payee = _agent("coop0-m0").key
    with trio.fail_after(60):
        while payee not in node.hosts or node.store.head(payee) is None:
            await trio.sleep(0.1)
            if node.client.peers():
                await node.gossip_with(node.client.peers()[0])
    return node


async def pay_many(node: Node, count: int, at_least_s: float = 0.0) -> tuple[list[float], int]:
    """``count`` payments coop1-m0 -> coop0-m0 one after another, and more until ``at_least_s``
    passed: latencies (ms), failures."""
    payer, payee = _agent("coop1-m0").key, _agent("coop0-m0").key
    latencies: list[float] = []
    failed = 0
    until = time.monotonic() + at_least_s
    while len(latencies) + failed < count or time.monotonic() < until:
        start = time.perf_counter()
        with trio.move_on_after(30):
            result = await node.pay(payer, payee, 1, memo="honest")
            if result.committed:
                latencies.append((time.perf_counter() - start) * 1000)
                continue
        failed += 1
    return latencies, failed


def parking_records(node: Node, count: int) -> list[bytes]:
    """``count`` + 1 bills of coop1-m1 after its head as ``node`` holds it: the first is the gap."""
    signer = _agent("coop1-m1").signer
    head = node.store.head(AgentKey(signer.public_key))
    genesis = node.store.activity(_agent("coop0-m0").key).genesis
    assert head is not None and genesis is not None
    now = time.time_ns() // 1000
    out = []
    for i in range(count + 1):
        bill = Bill(_agent("coop0-m0").key, genesis, 1, f"parked {i}", now + 3_600_000_000, None)
        record = author_record(signer, head, kind=ActionKind.CREATE, timestamp=now + i,
                               entry=bill.to_value(), entry_type=BILL)  # fmt: skip
        out.append(record.to_bytes())
        head = ChainHead.after(record)
    return out


def strangers_records(authors: int, each: int) -> list[bytes]:
    """Records of ``authors`` made-up chains nobody holds a genesis of, ``each`` from seq 1."""
    out = []
    now = time.time_ns() // 1000
    for _ in range(authors):
        signer = Signer.generate()
        head = ChainHead(AgentKey(signer.public_key), 0, ActionHash(bytes(32)), now)
        for i in range(each):
            record = author_record(signer, head, kind=ActionKind.CREATE, timestamp=now + i,
                                   entry={"n": i, "pad": "x" * 200}, entry_type="made-up/note")  # fmt: skip
            out.append(record.to_bytes())
            head = ChainHead.after(record)
    return out


# -- the attacker's process ------------------------------------------------------------------------


def _made_up_peer() -> str:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return str(ID.from_pubkey(create_new_key_pair(os.urandom(32)).public_key))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tally:
    """What the attacker saw: requests answered and refused, the worst refusal (ms)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.figures: dict[str, Any] = {"answered": 0, "refused": 0, "worst_refusal_ms": 0.0}

    def add(self, key: str, value: float = 1) -> None:
        self.figures[key] = self.figures.get(key, 0) + value

    def worst(self, key: str, value: float) -> None:
        self.figures[key] = max(self.figures.get(key, 0.0), value)

    def save(self) -> None:
        # its own CPU: on the bench's shared cores, a spinning attacker slows the honest node too
        self.figures["attacker_cpu_s"] = round(time.process_time(), 2)
        # whole or not at all: the bench reads it right after SIGTERM, which may land mid-write
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.figures))
        partial.replace(self.path)


async def _nothing(_peer: PeerId, _payload: bytes) -> bytes:
    return wire.dumps({"records": [], "more": False})


async def _rogue(addr: str, network: str, nursery: trio.Nursery) -> tuple[Libp2pTransport, PeerId]:
    """A libp2p peer of the target's network that answers fetches of chains with nothing."""
    rogue = Libp2pTransport(os.urandom(32), network=network, gossip=False)
    for name in (wire.CHAIN, wire.CHAINS, wire.FETCH):
        rogue.set_handler(protocol_id(network, name), _nothing)
    await nursery.start(rogue.run)
    return rogue, await rogue.connect(addr)


async def _ask(rogue: Libp2pTransport, peer: PeerId, network: str, name: str, payload: bytes,
               tally: Tally, timeout: float = 30.0) -> bytes | None:  # fmt: skip
    try:
        answer = await rogue.request(peer, protocol_id(network, name), payload, timeout=timeout)
    except NetworkError:
        tally.add("refused")
        return None
    tally.add("answered")
    return answer


async def attack(kind: str, addr: str, directory: Path) -> None:
    """Run one attack on the node at ``addr`` until cancelled (SIGTERM), saving what it saw."""
    network = _charter().network_id.raw[:8].hex()
    tally = Tally(directory / f"attacker-{kind}.json")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_save_every, tally)
        if kind in ("hellos", "pending", "chains"):
            rogue, peer = await _rogue(addr, network, nursery)
        if kind == "hellos":
            dead = f"/ip4/127.0.0.1/tcp/{_closed_port()}"
            peers = [[p, [f"{dead}/p2p/{p}"]] for p in (_made_up_peer() for _ in range(MADE_UP_PEERS))]
            hello = wire.dumps({"node": AgentKey(Signer.generate().public_key).to_bytes(),
                                "agents": [], "peers": peers, "addrs": []})  # fmt: skip
            while True:
                await _ask(rogue, peer, network, wire.HELLO, hello, tally)
                await trio.sleep(0.2)
        elif kind == "pending":
            parked = json.loads((directory / "parked.json").read_text())
            records = [bytes.fromhex(h) for h in parked["member"]]
            strangers = [bytes.fromhex(h) for h in parked["strangers"]]
            for batch_start in range(1, len(records), 100):
                batch = tuple(records[batch_start : batch_start + 100])
                await _ask(rogue, peer, network, wire.PUBLISH, PublishRequest(batch).encode(), tally)
            for batch_start in range(0, len(strangers), 100):
                batch = tuple(strangers[batch_start : batch_start + 100])
                await _ask(rogue, peer, network, wire.PUBLISH, PublishRequest(batch).encode(), tally)
            start = time.perf_counter()
            await _ask(rogue, peer, network, wire.PUBLISH, PublishRequest((records[0],)).encode(), tally)
            tally.worst("gap_record_ms", (time.perf_counter() - start) * 1000)
            await trio.sleep_forever()
        elif kind == "chains":
            heads = Hello(AgentKey(Signer.generate().public_key), (), (), (), (), None)
            await _ask(rogue, peer, network, wire.HELLO, heads.encode(), tally)
            agents = [_agent(n).key for n in ("coop0", "coop0-m0", "coop1", "coop1-m0", "coop1-m1")]
            request = ChainsRequest(tuple((a, 0) for a in agents), 2_000).encode()

            async def flood() -> None:
                while True:
                    if await _ask(rogue, peer, network, wire.CHAINS, request, tally) is None:
                        await trio.sleep(0)

            for _ in range(32):
                nursery.start_soon(flood)
        elif kind == "sockets":
            host, port = _host_port(addr)
            held = []
            for _ in range(300):  # from another address of this host, as a stranger's would be
                sock = trio.socket.socket()
                await sock.bind(("127.0.0.2", 0))
                await sock.connect((host, port))
                held.append(sock)
            tally.add("held", len(held))
            for _ in range(3):  # can a new peer still get in?
                start = time.perf_counter()
                try:
                    with trio.fail_after(20):
                        await _rogue(addr, network, nursery)
                    tally.worst("new_peer_connect_ms", (time.perf_counter() - start) * 1000)
                    tally.add("new_peers_in")
                except (NetworkError, trio.TooSlowError):
                    tally.add("new_peers_locked_out")
            await trio.sleep_forever()
        elif kind == "api":
            await _api_exhaustion(directory / "target" / "conode.sock", tally)
        elif kind == "json":
            line = b"[" * ((1 << 20) - 2) + b"\n"
            while True:
                start = time.perf_counter()
                answer = await _api_line(directory / "target" / "conode.sock", line, tally)
                ms = (time.perf_counter() - start) * 1000
                tally.worst("worst_refusal_ms", ms)
                tally.add("refused" if b'"error"' in answer else "answered")
                await trio.sleep(0.05)


def _host_port(addr: str) -> tuple[str, int]:
    parts = addr.split("/")
    return parts[2], int(parts[4])


async def _unix_connect(path: Path, tally: Tally, timeout: float = 30.0) -> socket.socket:
    """A connected socket to ``path``, waiting while the listen backlog is full, as a client would.

    A Unix socket's ``connect`` fails at once with EAGAIN when the backlog is full (it is
    never "in progress"), which trio's ``connect`` takes for a connection made: the
    socket then is not connected (what kept this attack from ever measuring anything
    before). So connect without blocking and try again.
    """
    deadline = trio.current_time() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX)
        sock.setblocking(False)
        try:
            sock.connect(str(path))  # done, or EAGAIN (backlog full)
            return sock
        except BlockingIOError:
            sock.close()
            tally.add("api_backlog_full_waits")
            if trio.current_time() > deadline:
                raise
            await trio.sleep(0.001)
        except BaseException:
            sock.close()
            raise


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the node has closed this idle connection (its end reads EOF)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


API_HELD: Final = 1_500


async def _api_exhaustion(path: Path, tally: Tally) -> None:
    """Open ``API_HELD`` connections to the API socket (or as many as the OS lets this process
    have), keep that many open by opening again each one the node closes, and time a
    ``status`` call on a fresh connection every half second."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = API_HELD + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    tally.figures["api_nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    held: list[socket.socket] = []
    start = time.perf_counter()

    async def open_one() -> bool:
        try:
            held.append(await _unix_connect(path, tally))
            return True
        except OSError as exc:  # EMFILE: this process may open no more
            tally.add(f"api_connect_errno_{exc.errno}")
            return False

    for _ in range(API_HELD):
        if not await open_one():
            break
    tally.figures["held"] = len(held)
    tally.figures["api_open_s"] = round(time.perf_counter() - start, 3)
    status = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'
    while True:
        closed = [sock for sock in held if _closed_by_peer(sock)]
        for sock in closed:
            held.remove(sock)
            sock.close()
        tally.add("api_closed_by_node", len(closed))
        for _ in closed:  # keep the pressure: each new connection makes the node close another
            if await open_one():
                tally.add("api_reopened")
        started = time.perf_counter()
        try:
            line = await _api_line(path, status, tally)
        except (OSError, trio.BrokenResourceError) as exc:
            tally.add("refused")
            tally.figures["api_status_error"] = str(exc)
        else:
            tally.worst("api_status_ms", (time.perf_counter() - started) * 1000)
            tally.add("answered" if b'"result"' in line else "refused")
        await trio.sleep(0.5)


async def _api_line(path: Path, line: bytes, tally: Tally) -> bytes:
    """One request line to the target's API on a new connection; the answer line."""
    with trio.socket.from_stdlib_socket(await _unix_connect(path, tally)) as sock:
        stream = trio.SocketStream(sock)
        await stream.send_all(line)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = await stream.receive_some(65_536)
            if not chunk:
                break
            answer += chunk
        return answer


async def _save_every(tally: Tally) -> None:
    while True:
        tally.save()
        await trio.sleep(0.25)


# -- the bench's side --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _phase(latencies: list[float], failed: int, cpu_s: float) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "committed": len(latencies),
        "failed": failed,
        "target_cpu_s": round(cpu_s, 2),
    }


async def _run_attack(
    kind: str, payments: int, at_least: float, say: Callable[[str], None]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"conode-hostile-{kind}-") as tmp:
        directory = Path(tmp)
        target = Target(directory / "target")
        attacker = None
        try:
            async with trio.open_nursery() as nursery:
                node = await honest_node(directory, target, nursery)
                if kind == "pending":
                    parked = {"member": [r.hex() for r in parking_records(node, PARKED)],
                              "strangers": [r.hex() for r in strangers_records(256, 16)]}  # fmt: skip
                    (directory / "parked.json").write_text(json.dumps(parked))
                await pay_many(node, 5)  # warm
                cpu = target.cpu_s()
                quiet = _phase(*await pay_many(node, payments, at_least), target.cpu_s() - cpu)
                rss_quiet = target.memory_mb()
                log = (directory / f"attacker-{kind}.log").open("w")
                attacker = subprocess.Popen(
                    [sys.executable, __file__, "attack", kind, target.addr, str(directory)],
                    stderr=log,
                )
                await trio.sleep(WARM_UP_S)
                cpu = target.cpu_s()
                under = _phase(*await pay_many(node, payments, at_least), target.cpu_s() - cpu)
                attacker.terminate()
                attacker.wait(timeout=30)
                seen_path = directory / f"attacker-{kind}.json"
                seen = json.loads(seen_path.read_text()) if seen_path.exists() else {}
                log.close()
                lines = (directory / f"attacker-{kind}.log").read_text().strip().splitlines()
                errors = [line.strip(" |") for line in lines if "Error" in line]
                if errors:  # the last error named (a nursery's group ends with its frame)
                    seen["attacker_error"] = errors[-1]
                figures = {
                    "quiet": quiet, "attack": under, "attacker": seen,
                    "target_alive": target.alive(),
                    "rss_quiet_mb": round(rss_quiet, 1),
                    "rss_end_mb": round(target.memory_mb(), 1),
                    "rss_peak_mb": round(target.memory_mb("VmHWM"), 1),
                    "honest_p95_ratio": round(under["p95_ms"] / quiet["p95_ms"], 2),
                    "pending_after": node.store.pending_count(),
                }  # fmt: skip
                say(
                    f"{kind:8} honest p50/p95 quiet {quiet['p50_ms']:6.1f}/{quiet['p95_ms']:6.1f} ms,"
                    f" under attack {under['p50_ms']:6.1f}/{under['p95_ms']:6.1f} ms"
                    f" ({under['failed']} failed); target RSS {figures['rss_end_mb']:.0f} MB"
                    f" (peak {figures['rss_peak_mb']:.0f}), CPU {quiet['target_cpu_s']:.1f} ->"
                    f" {under['target_cpu_s']:.1f} s; attacker saw {seen}"
                )
                nursery.cancel_scope.cancel()
            node.store.close()
            return figures
        finally:
            if attacker is not None and attacker.poll() is None:
                attacker.kill()
            target.stop()


def node_attack(kind: str, quick: bool, say: Callable[[str], None] = print) -> dict[str, Any]:
    """One attack on a running node, measured (see the module docstring)."""
    return trio.run(_run_attack, kind, 20 if quick else 60, 15.0 if quick else 40.0, say)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "attack":
    trio.run(attack, sys.argv[2], sys.argv[3], Path(sys.argv[4]))

"""Benchmark of conode across hosts of their own (network namespaces) against loopback, in one run.

Two devnets of N ``conode run`` processes, the same charter shape and the same
payments: one on 127.0.0.1 (node 0, then every other joining through it, as
``conode devnet`` starts them: the reference), one with each node on a host of
its own (``tests/network/netns.py``: a namespace, its ``eth0`` on a bridge),
listening on ``0.0.0.0`` and joining through node 0's address. For each it
prints:

- the time until every node is connected to every other, knows their agents
  and holds every genesis (from the moment every node is up);
- payment latency, p50, p95 and max over K payments made one after another
  through the local API (payer on node i, payee on node i+1, then back), as
  ``conode devnet`` times them; the two devnets run side by side and their
  payments alternate, so both see the same machine;
- connect time: a bare ``Libp2pTransport`` (TCP + Noise + Yamux) connecting to
  node 0, p50, p95 and max over C connections, from another host (namespaces)
  or from this process's namespace (loopback), in alternating rounds.

Namespaces add a veth pair and a bridge, no delay (this machine's kernel has
no netem): the figures say what the path through real interfaces and the
wildcard listener costs, not a WAN. Needs root and ``ip``.

Usage: ``python bench/hosts.py [--quick]`` (quick: 3 nodes, 30 payments, 10
connects; full: 5, 200, 50). The last line is one JSON object with every
figure and the one-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "network"))  # the harness lives with the tests

from cli.devnet import (  # noqa: E402
    NodeProcess,
    prepare,
    start_nodes,
    stop_nodes,
    wait_until_held,
)

AMOUNT = 1  # minor units: any number of payments stays inside the members' limits
ROUNDS = 5  # connect probes alternate between loopback and the hosts this many times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(prefix: str, values: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_p50_ms": round(statistics.median(values), 1),
        f"{prefix}_p95_ms": round(percentile(values, 0.95), 1),
        f"{prefix}_max_ms": round(max(values), 1),
    }


def pay_once(plan: Any, nodes: list[NodeProcess], number: int) -> float:
    """Payment ``number`` (payer on node i, payee on node i+1, then back) through the payer's API; ms."""
    size = len(nodes)
    i = (number // 2) % size
    j = (i + 1) % size
    forth = number % 2 == 0
    payer, payee, node = (
        (f"coop{i}-m0", f"coop{j}-m1", i) if forth else (f"coop{j}-m1", f"coop{i}-m0", j)
    )
    started = time.perf_counter()
    answer = nodes[node].client.call(
        "pay", {"from": payer, "to": str(plan.agents[payee].key), "amount": AMOUNT, "memo": "bench"}
    )
    elapsed = (time.perf_counter() - started) * 1000
    if not answer.get("committed"):
        raise SystemExit(f"payment {number} ({payer} -> {payee}) refused: {answer}")
    return elapsed


def connect_probe(addr: str, count: int) -> list[float]:
    """``count`` connects of one fresh transport to ``addr``, each closed before the next; ms each."""
    import trio
    from libp2p.peer.id import ID

    from conode.dht.libp2p_transport import Libp2pTransport

    peer = addr.rsplit("/p2p/", 1)[1]

    async def probe() -> list[float]:
        times = []
        async with trio.open_nursery() as nursery:
            transport = Libp2pTransport(os.urandom(32), listen="/ip4/0.0.0.0/tcp/0", gossip=False)
            await nursery.start(transport.run)
            for _ in range(count):
                started = trio.current_time()
                await transport.connect(addr)
                times.append((trio.current_time() - started) * 1000)
                await transport.host.disconnect(ID.from_base58(peer))
                with trio.fail_after(10):
                    while peer in transport.connected_peers():
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        return times

    return trio.run(probe)


def run_probe(prefix: list[str], addr: str, count: int) -> list[float]:
    """``connect_probe`` in a fresh interpreter (on another host when ``prefix`` is ``ip netns exec``)."""
    result = subprocess.run(
        [*prefix, sys.executable, str(Path(__file__)), "--connect-probe", addr, str(count)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"the connect probe failed: {result.stderr[-2000:]}")
    times: list[float] = json.loads(result.stdout.strip().splitlines()[-1])
    return times


def bench(base: Path, size: int, payments: int, connects: int) -> dict[str, float]:
    """Both devnets up at once; payments and connect probes alternate between them (same load)."""
    from netns import HostsNet, hosts

    loop_plan = prepare(base / "loopback", size, "bench-hosts")
    loop_nodes: list[NodeProcess] = []
    with hosts(size) as lan:
        net = HostsNet(prepare(base / "hosts", size, "bench-hosts"), lan)
        try:
            loop_nodes = start_nodes(loop_plan)  # node 0, then the others joining through it
            figures = {"loopback_mesh_s": round(wait_until_held(loop_plan, loop_nodes, 120), 2)}
            net.start_all()  # the same shape on the hosts
            figures["hosts_mesh_s"] = round(wait_until_held(net.plan, net.nodes, 120), 2)
            latency: dict[str, list[float]] = {"loopback": [], "hosts": []}
            for number in range(payments):
                latency["loopback"].append(pay_once(loop_plan, loop_nodes, number))
                latency["hosts"].append(pay_once(net.plan, net.nodes, number))
            connect: dict[str, list[float]] = {"loopback": [], "hosts": []}
            for _ in range(ROUNDS):
                connect["loopback"] += run_probe([], loop_nodes[0].addrs[0], connects // ROUNDS)
                connect["hosts"] += run_probe(
                    lan[1].command([]), net.address_of(0), connects // ROUNDS
                )
            for where in ("loopback", "hosts"):
                figures.update(summary(f"{where}_payment", latency[where]))
                figures.update(summary(f"{where}_connect", connect[where]))
            return figures
        finally:
            stop_nodes(loop_nodes)
            stop_nodes(net.nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 nodes, 30 payments, 10 connects")
    parser.add_argument("--connect-probe", nargs=2, metavar=("ADDR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.connect_probe:
        print(json.dumps(connect_probe(args.connect_probe[0], int(args.connect_probe[1]))))
        return
    from netns import netns_problem

    problem = netns_problem()
    if problem is not None:
        raise SystemExit(f"bench/hosts.py: {problem}")
    size, payments, connects = (3, 30, 10) if args.quick else (5, 200, 50)
    figures: dict[str, Any] = {
        "quick": args.quick,
        "nodes": size,
        "payments": payments,
        "connects": connects,
        "load_before": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="conode-hostsbench-") as tmp:
        figures.update(bench(Path(tmp), size, payments, connects))
    print(
        f"mesh of {size} nodes joining through node 0: hosts {figures['hosts_mesh_s']} s, "
        f"loopback {figures['loopback_mesh_s']} s"
    )
    for what in ("payment", "connect"):
        hosts_p50, loop_p50 = figures[f"hosts_{what}_p50_ms"], figures[f"loopback_{what}_p50_ms"]
        figures[f"{what}_p50_ratio"] = round(hosts_p50 / loop_p50, 2)
        print(
            f"{what}: hosts p50 {hosts_p50} ms, p95 {figures[f'hosts_{what}_p95_ms']} ms, "
            f"max {figures[f'hosts_{what}_max_ms']} ms; loopback p50 {loop_p50} ms, "
            f"p95 {figures[f'loopback_{what}_p95_ms']} ms, max {figures[f'loopback_{what}_max_ms']} ms "
            f"(hosts / loopback p50: {figures[f'{what}_p50_ratio']})"
        )
    figures["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""conode on hosts of its own: ``conode run`` processes, each in a network namespace (``netns.py``).

Five nodes, each listening on the wildcard (``/ip4/0.0.0.0/tcp/7447``) on a
host of its own (10.77.0.2 - .6), every one joining through node 0's address;
driven and read through the CLI (and, for identify and Kademlia, a bare
py-libp2p peer run on another host):

- ``test_every_node_advertises_its_host_address_never_the_wildcard``: what
  each node advertises is its host's address, in identify, in a Kademlia
  answer, in its hellos (what its peers remember), in ``peers``, ``status``
  and ``network show``; and it speaks Kademlia on the network's protocol id.
- ``test_payments_across_five_hosts_commit_and_converge``: payments between
  every pair of neighbouring hosts commit; every chain reaches every node
  that must hold it (its host and its R authorities: not every node of
  five, with R = 3), and they agree on every balance.
- ``test_a_node_restarted_on_a_new_address_is_found_again``: node 3 stops,
  its host moves to 10.77.0.103, it starts again joining through node 0: the
  others hold it at its new address only, pay the agents it hosts, are paid
  by them, and every chain reaches the nodes that must hold it.
- ``test_a_node_on_the_ipv6_wildcard_is_joined_at_the_address_it_advertises``:
  a node listening on ``/ip6/::/tcp/7447`` advertises its host's IPv6
  address, and another node joins through exactly that.

They need root and ``ip``; without, they are skipped with the reason.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import PORT, HostsNet, hosts, hosts_net
from procs import conode, conode_bg, conode_json, conode_json_each, log_tail, peer_id_of, wait_for

from cli.devnet import prepare, stop_nodes, wait_ready, wait_until_held

pytestmark = pytest.mark.slow

NODES = 5
PROBE = Path(__file__).with_name("libp2p_probe.py")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostsNet]:
    with hosts_net(tmp_path_factory.mktemp("hosts"), NODES, seed="hosts") as net:
        yield net


def bare(addr: str) -> str:
    """An address without its /p2p/ part."""
    return addr.split("/p2p/")[0]


def remembered(net: HostsNet, index: int) -> dict[str, list[str]]:
    """The peers node ``index`` remembers from hellos (its store, read-only while it runs)."""
    path = net.plan.dirs[index].store_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT peer_id, addrs FROM peers").fetchall()
    return {peer: [a for a in addrs.split("\n") if a] for peer, addrs in rows}


def probes(net: HostsNet) -> list[dict[str, Any]]:
    """For each node i, a bare py-libp2p peer on host i+1 asks it its identify and FIND_NODE node i+2.

    All at once (each probe is a fresh interpreter that imports py-libp2p).
    """
    kad = f"/conode/{net.plan.charter.network_id.raw[:8].hex()}/kad/1"
    running = []
    for i in range(NODES):
        prober, find = net.lan[(i + 1) % NODES], peer_id_of(net.plan, (i + 2) % NODES)
        command = [sys.executable, str(PROBE), net.address_of(i), "--kad", kad, "--find", find]
        running.append(prober.popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    answers = []
    for process in running:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        answers.append(json.loads(out))
    return answers


def test_every_node_advertises_its_host_address_never_the_wildcard(net: HostsNet) -> None:
    short = net.plan.charter.network_id.raw[:8].hex()
    everyone = {peer_id_of(net.plan, i): net.address_of(i) for i in range(NODES)}
    dirs = [net.dir(i) for i in range(NODES)]
    statuses = net.statuses(list(range(NODES)))
    shown = conode_json_each(dirs, "network", "show")
    peers = conode_json_each(dirs, "peers")
    answers = probes(net)
    for i in range(NODES):
        own = net.address_of(i)
        assert statuses[i]["listen"] == [own]
        assert shown[i]["listen"] == f"/ip4/0.0.0.0/tcp/{PORT}"
        assert shown[i]["running_addrs"] == [own]

        # identify and Kademlia, as a stranger on the next host hears them
        answer, prober, other = answers[i], (i + 1) % NODES, (i + 2) % NODES
        assert answer["listen_addrs"] == [bare(own)]
        assert f"/conode/{short}/kad/1" in answer["protocols"]
        assert f"/conode/{short}/hello/1" in answer["protocols"]
        assert not any(p.startswith("/ipfs/kad") for p in answer["protocols"]), answer
        assert answer["observed"].startswith(f"/ip4/{net.lan[prober].address}/tcp/")
        other_id = peer_id_of(net.plan, other)
        assert [bare(a) for a in answer["closer"][other_id]] == [bare(net.address_of(other))]
        assert all(
            [bare(a) for a in addrs] == [bare(everyone[peer])]
            for peer, addrs in answer["closer"].items()
        ), answer["closer"]

        # what it holds for its peers (identify), and what it remembers from hellos
        others = {p: [a] for p, a in everyone.items() if a != own}
        assert {p["peer_id"]: p["addrs"] for p in peers[i]} == others
        hellos = remembered(net, i)
        assert {p: hellos[p] for p in everyone if p in hellos} == others, hellos
    # the text forms say the same
    assert f"advertises {net.address_of(0)}" in conode(dirs[0], "network", "show").stdout
    assert f"advertises {net.address_of(0)}" in conode(dirs[0], "status").stdout


Payment = tuple[int, str, str, str, str]
"""(node, payer, payee, amount, memo): ``conode pay`` on that node."""


def pay_all(net: HostsNet, payments: list[Payment]) -> None:
    """Run the payments at once (each ``conode pay`` waits for its own); each must commit."""
    running = [  # the payee by key: a name is resolved among the chains the node holds
        conode_bg(
            net.dir(node), "pay", net.key(payee), amount, "--from", payer, "--memo", memo, "--json"
        )
        for node, payer, payee, amount, memo in payments
    ]
    for (node, payer, payee, _amount, _memo), process in zip(payments, running, strict=True):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and "Traceback" not in err, (payer, payee, out, err)
        assert json.loads(out)["committed"], (payer, payee, out, log_tail(net.nodes[node]))


def test_payments_across_five_hosts_commit_and_converge(net: HostsNet) -> None:
    onward = [
        (i, f"coop{i}-m0", f"coop{(i + 1) % NODES}-m1", "1.25", f"to the next host {i}")
        for i in range(NODES)
    ]
    back = [
        ((i + 1) % NODES, f"coop{(i + 1) % NODES}-m1", f"coop{i}-m0", "0.25", f"and back {i}")
        for i in range(NODES)
    ]
    pay_all(net, onward)  # five payments at once, each between two hosts
    pay_all(net, back)
    net.held(timeout=60)  # every chain at its host's head on every node that must hold it
    holders = net.holders()
    for i in range(NODES):  # as every node that must hold the chain sees it, its host or not
        for name, balance in ((f"coop{i}-m0", -100), (f"coop{i}-m1", 100)):
            assert len(holders[name]) >= 3, holders  # R = 3 authorities, and the host
            assert net.balances(name, sorted(holders[name])) == dict.fromkeys(holders[name], balance)
    assert all(s["warrants"] == 0 and s["peers"] == NODES - 1 for s in net.statuses().values())


def test_a_node_restarted_on_a_new_address_is_found_again(net: HostsNet) -> None:
    moved, others = 3, [0, 1, 2, 4]
    moved_id, old = peer_id_of(net.plan, moved), net.address_of(moved)
    assert net.terminate(moved) == 0, log_tail(net.nodes[moved])
    net.lan[moved].readdress(103)
    new = net.address_of(moved)
    assert new != old and "10.77.0.103" in new
    net.start(moved, net.bootstrap_for(moved))  # joins through node 0's address, as before
    assert net.status(moved)["listen"] == [new]

    def found_at_new_address() -> bool:
        seen = conode_json_each([net.dir(i) for i in others], "peers")
        held = [{p["peer_id"]: p["addrs"] for p in peers}.get(moved_id) for peers in seen]
        return all(addrs is not None and new in addrs and old not in addrs for addrs in held)

    wait_for(found_at_new_address, "every node to hold node 3 at its new address only", 90)
    wait_for(
        lambda: all(remembered(net, i).get(moved_id) == [new] for i in others),
        "every node to remember node 3's new address from its hellos",
        60,
    )
    # the payers of the agents it hosts find it, and its agents pay them
    for i in others:  # one after another: each pays the same chain
        pay_all(net, [(i, f"coop{i}-m1", f"coop{moved}-m0", "0.40", f"to the moved node from {i}")])
    pay_all(net, [(moved, f"coop{moved}-m1", "coop0-m0", "0.30", "from the moved node")])
    net.held(timeout=60)
    holders = sorted(net.holders()[f"coop{moved}-m0"])
    assert net.balances(f"coop{moved}-m0", holders) == dict.fromkeys(holders, -100 + 4 * 40)


def test_a_node_on_the_ipv6_wildcard_is_joined_at_the_address_it_advertises(
    tmp_path: Path,
) -> None:
    with hosts(2) as lan:
        plan = prepare(tmp_path / "v6", 2, seed="v6")
        net = HostsNet(plan, lan)
        nodes = []
        try:
            six = net.spawn(1, [], listen=f"/ip6/::/tcp/{PORT}")
            nodes.append(six)
            advertised = wait_ready(six)
            assert advertised == [f"/ip6/{lan[1].address6}/tcp/{PORT}/p2p/{peer_id_of(plan, 1)}"]
            joiner = net.spawn(0, advertised)  # joins through exactly what it advertises
            nodes.append(joiner)
            wait_ready(joiner)
            wait_until_held(plan, [joiner, six], 60)
            seen = {p["peer_id"]: p["addrs"] for p in joiner.client.call("peers")}
            assert seen == {peer_id_of(plan, 1): advertised}
            result = conode_json(plan.dirs[0].root, "pay", "coop1-m1", "2.00", "--from", "coop0-m0")
            assert result["committed"], result
        finally:
            stop_nodes(nodes)

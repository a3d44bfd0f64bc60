"""A node comes back at once, whatever its peers do: the API first, sessions in the background.

The payee's node holds a signed position (its payer's node died after the payee signed, so
the payee waits for a decision that cannot come yet) and remembers 200 peers that are gone
(addresses nobody answers: each dial waits for its timeout). Restarted, its API answers while
that session is still waiting and those peers are still being dialled: nothing it needs to
serve waits on the network. How long it takes is a benchmark figure (``bench/network.py``,
``restart_api_s``), not an assertion here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from procs import CRASH_ENV, Net, conode_bg, conode_json, log_tail, running_net, wait_for

from conode.store import NodeStore

pytestmark = pytest.mark.slow

PAYER, PAYEE = "coop0-m0", "coop1-m1"  # hosted on nodes 0 and 1
DEAD_PEERS = 200


def made_up_peer_ids(count: int) -> list[str]:
    """Peer ids of keys nobody runs a node with."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return [ID.from_pubkey(create_new_key_pair().public_key).to_base58() for _ in range(count)]


def remember_dead_peers(net: Net, index: int, count: int) -> None:
    """Write ``count`` made-up peers into node ``index``'s store (it is stopped): unroutable
    addresses, so each dial waits for its timeout."""
    store = NodeStore.open(net.dir(index) / "conode.db")
    try:
        now = time.time_ns() // 1_000
        for i, peer in enumerate(made_up_peer_ids(count)):
            addr = f"/ip4/10.255.{i // 250}.{i % 250 + 1}/tcp/7447/p2p/{peer}"
            store.remember_peer(peer, [addr], now)
    finally:
        store.close()


def test_a_node_with_dead_peers_and_a_waiting_session_serves_its_api_at_once(
    tmp_path: Path,
) -> None:
    envs = {0: {CRASH_ENV: "initiator-got-reply"}}  # the payer's node dies after R signed
    with running_net(tmp_path / "n", 2, seed="restart-fast", envs=envs) as net:
        pay = conode_bg(net.dir(0), "pay", PAYEE, "1.00", "--from", PAYER, "--json")
        assert net.nodes[0].process.wait(40) != 0, log_tail(net.nodes[0])
        pay.kill()
        pay.wait()
        held = net.status(1)
        assert held["locked_chains"] == 1, held  # the payee signed and waits
        assert net.terminate(1) == 0, log_tail(net.nodes[1])
        remember_dead_peers(net, 1, DEAD_PEERS)

        started = time.monotonic()
        net.start(1, bootstrap=[])  # returns once its API answers

        def answering() -> dict[str, Any] | None:
            status: dict[str, Any] = conode_json(net.dir(1), "status")
            return status

        status = wait_for(answering, "the API", 30)
        api_s = time.monotonic() - started
        # still waiting for the payer's decision, still holding the chain: the API did not wait
        assert status["locked_chains"] == 1 and status["sessions"] == 1, status
        (session,) = conode_json(net.dir(1), "sessions")
        assert session["phase"] == "signed" and session["holds_chain"], session
        print(f"API answered {api_s:.2f} s after start, {DEAD_PEERS} dead peers remembered")

"""Public helpers for testing conode and its apps (like ``trio.testing``).

- ``Ledger``, ``Agent``: a whole network's chains and rules in memory, no network at all;
- ``TestNetwork``: real nodes on an in-memory network that drops, delays and partitions;
- ``trio_clock``, ``JumpClock``, ``wait_until``, ``settle``, ``restart_node``: driving it;
- ``assert_audit_clean``, ``assert_chains_identical_everywhere``: what it holds is right;
- ``check_transport``: a transport keeps the contract every node relies on.
"""

from conode.testing.checks import (
    JumpClock,
    assert_audit_clean,
    assert_chains_identical_everywhere,
    holders_of,
    home_chains,
    restart_node,
    ring_of,
    settle,
    trio_clock,
    wait_until,
)
from conode.testing.ledger import Agent, Ledger
from conode.testing.network import FAST, TestNetwork, derive_signer, make_charter
from conode.testing.transport import check_transport

__all__ = [
    "FAST",
    "Agent",
    "JumpClock",
    "Ledger",
    "TestNetwork",
    "assert_audit_clean",
    "assert_chains_identical_everywhere",
    "check_transport",
    "derive_signer",
    "holders_of",
    "home_chains",
    "make_charter",
    "restart_node",
    "ring_of",
    "settle",
    "trio_clock",
    "wait_until",
]

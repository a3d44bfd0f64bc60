"""What a node is told: its timings and limits, the agents it hosts, its clock; what a payment returns."""

from __future__ import annotations

import time
from dataclasses import dataclass

from conode.crypto import Signer
from conode.hashes import ActionHash, AgentKey

__all__ = ["HostedAgent", "NodeSettings", "PaymentResult", "wall_clock_us"]


def wall_clock_us() -> int:
    """Microseconds since the epoch: the node's clock (a shell may read it)."""
    return time.time_ns() // 1_000


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Timings and limits of a node; the defaults suit a small LAN or loopback network."""

    replication: int = 3
    request_timeout: float = 10.0
    gossip_interval: float = 2.0
    publish_interval: float = 1.0
    hello_interval: float = 5.0
    ring_hello_interval: float = 30.0
    """Seconds between two rounds of a placed node's hellos (a neighbour in turn, a peer at
    random): places spread and departures show without every node greeting every other."""
    session_timeout_us: int = 10_000_000
    retry_interval_us: int = 2_000_000
    links_fresh_us: int = 30_000_000
    """A base whose links an authority gave in full less than this long ago is not asked again."""
    full_arc: bool = False
    """Hold everything (an auditor's node): every chain, and no share of anyone else's duty."""
    reconcile_interval: float = 60.0
    """Seconds (jittered) between two reconciliations of this node's arc with its neighbours'."""
    dependency_keep_us: int = 600_000_000
    """How long a record fetched to judge another (a counterparty's genesis, previous credit) is kept."""
    ring_expiry_us: int = 1_800_000_000
    """A peer's place not heard of for this long leaves this node's view of the ring."""
    legacy: bool = False
    """Behave as a node of the version before sharding did, for tests of an upgrading network:
    announce no place, hold every chain, swap heads with every peer, never reconcile."""

    @classmethod
    def fast(cls, replication: int = 3) -> NodeSettings:
        """Short timings for many nodes in one process (tests, benchmarks): a healed partition
        converges in a second or two."""
        return cls(
            replication=replication,
            request_timeout=2.0,
            gossip_interval=0.2,
            publish_interval=0.2,
            hello_interval=0.5,
            ring_hello_interval=2.0,
            session_timeout_us=3_000_000,
            retry_interval_us=500_000,
            reconcile_interval=1.0,
        )


@dataclass(slots=True)
class HostedAgent:
    """An agent whose key this node holds: it signs for it, and answers for it by its policy."""

    name: str
    signer: Signer
    auto_accept: bool = True

    @property
    def key(self) -> AgentKey:
        return AgentKey(self.signer.public_key)


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """How a payment ended: committed on both chains (``record``: the payer's record the
    session's commit wrote), or refused (with why)."""

    committed: bool
    reason: str = ""
    record: ActionHash | None = None
    elapsed_ms: float = 0.0

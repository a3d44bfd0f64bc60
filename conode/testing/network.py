"""Many real nodes on an in-memory network, for tests (yours and ours).

``TestNetwork`` builds a charter with one founding co-op per node, each
co-op with its members hosted on its own node, starts every node on a
``MemoryNetwork`` (which can drop, delay, duplicate and partition), and
connects them. Each node has its own SQLite store in ``directory``::

    async with TestNetwork.start(tmp_path, nodes=3, members=2) as net:
        result = await net.pay("coop0-m0", "coop1-m0", 50)
        await net.converge()
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from conode.chain import ActionKind, author_record
from conode.crypto import Signer
from conode.dht.memnet import Faults, MemoryNetwork
from conode.dht.transport import TaskStatus
from conode.hashes import AgentKey
from conode.node import HostedAgent, Node, NodeSettings, PaymentResult, wall_clock_us
from conode.store import NodeStore
from conode.validation.charter import Charter, FoundingCoop, Limits, Parameters
from conode.validation.entries import Credential, Genesis, Role

__all__ = ["TestNetwork", "make_charter"]

START_US = 1_700_000_000_000_000
FAST = NodeSettings(
    replication=3,
    request_timeout=2.0,
    gossip_interval=0.2,
    publish_interval=0.2,
    hello_interval=0.5,
    session_timeout_us=3_000_000,
    retry_interval_us=500_000,
)


def derive_signer(seed: str, name: str) -> Signer:
    """A key derived from a seed and a name: the same test always gets the same keys."""
    return Signer(hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=32).digest())


def make_charter(
    coops: Iterable[tuple[str, Signer]],
    *,
    created_at: int = START_US,
    coop_limits: Limits = Limits(10_000, 1_000_000),
    member_limits: Limits = Limits(500, 100_000),
    replication: int = 3,
    name: str = "test network",
) -> Charter:
    """A charter naming these co-ops as founders, with test-sized limits."""
    return Charter(
        name=name,
        currency="CXT",
        scale=2,
        founding=tuple(
            FoundingCoop(AgentKey(signer.public_key), f"{coop} Ltd", f"REG-{coop}")
            for coop, signer in coops
        ),
        params=Parameters(
            coop_limits=coop_limits,
            member_limits=member_limits,
            foundation_share_bp=1_000,
            quorum_bp=5_000,
            threshold_bp=5_001,
            voting_period_us=86_400_000_000,
            replication=replication,
        ),
        created_at=created_at,
    )


@dataclass(slots=True)
class TestNetwork:
    """Nodes on one in-memory network; agents by name (``coop0``, ``coop0-m0``, ...)."""

    __test__ = False  # not a pytest test class

    memnet: MemoryNetwork
    charter: Charter
    nodes: list[Node]
    agents: dict[str, AgentKey] = field(default_factory=dict)
    home: dict[str, Node] = field(default_factory=dict)
    scopes: list[trio.CancelScope] = field(default_factory=list)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        directory: Path,
        *,
        nodes: int = 3,
        members: int = 2,
        seed: str = "testnet",
        faults: Faults | None = None,
        settings: NodeSettings = FAST,
        member_limits: Limits = Limits(500, 100_000),
        clock: Callable[[], int] = wall_clock_us,
    ) -> AsyncIterator[TestNetwork]:
        """Build, start and connect the nodes; stop them when the block ends.

        ``clock`` is every node's clock (µs); under trio's ``MockClock`` pass one
        derived from ``trio.current_time()`` so that session deadlines move with it.
        """
        coop_signers = [(f"coop{i}", derive_signer(seed, f"coop{i}")) for i in range(nodes)]
        charter = make_charter(
            coop_signers, member_limits=member_limits, replication=settings.replication
        )
        # a stable seed (str hash() changes from run to run), so a failing run's faults replay
        memnet_seed = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=2).digest(), "big")
        memnet = MemoryNetwork(seed=memnet_seed, faults=faults)
        net = cls(memnet, charter, [])
        try:
            async with trio.open_nursery() as nursery:
                for i, (coop, coop_signer) in enumerate(coop_signers):
                    hosted = [HostedAgent(coop, coop_signer)]
                    hosted += [
                        HostedAgent(f"{coop}-m{j}", derive_signer(seed, f"{coop}-m{j}"))
                        for j in range(members)
                    ]
                    node = Node(
                        store=NodeStore.open(directory / f"node{i}.db"),
                        charter=charter,
                        transport=memnet.transport(f"node{i}"),
                        node_signer=derive_signer(seed, f"node{i}"),
                        agents=hosted,
                        settings=settings,
                        clock=clock,
                    )
                    net.nodes.append(node)
                    for agent in hosted:
                        net.agents[agent.name] = agent.key
                        net.home[agent.name] = node
                    await net.start_node(nursery, node)
                    await net.genesis(node, hosted[0], hosted[1:])
                for node in net.nodes[1:]:
                    await node.connect(net.nodes[0].transport.listen_addrs()[0])
                try:
                    yield net
                finally:
                    for scope in net.scopes:
                        scope.cancel()
        finally:
            # only once every node's tasks have ended: a task cancelled mid-step may still write
            for node in net.nodes:
                node.store.close()

    async def start_node(self, nursery: trio.Nursery, node: Node) -> None:
        """Run ``node`` in its own cancel scope (so a test can stop it alone)."""

        async def run(task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self.scopes.append(scope)
                node.scope = scope  # type: ignore[attr-defined]
                await node.run(task_status=task_status)

        await nursery.start(run)

    async def genesis(self, node: Node, coop: HostedAgent, members: list[HostedAgent]) -> None:
        """Commit the co-op's genesis and its members' (each with a credential the co-op signed)."""
        network = self.charter.network_id
        founding = self.charter.founding_coop(coop.key)
        assert founding is not None
        now = node.clock()
        records = [
            author_record(
                coop.signer,
                None,
                kind=ActionKind.GENESIS,
                timestamp=now,
                entry=Genesis(
                    network, Role.COOP, founding.legal_name, founding.registration
                ).to_value(),
            )
        ]
        await node.commit(coop.key, records)
        for member in members:
            credential = Credential.issue(coop.signer, member.key, member.name, now)
            record = author_record(
                member.signer,
                None,
                kind=ActionKind.GENESIS,
                timestamp=now,
                entry=Genesis(network, Role.MEMBER, member.name, credential=credential).to_value(),
            )
            await node.commit(member.key, [record])

    async def pay(self, payer: str, payee: str, amount: int, memo: str = "") -> PaymentResult:
        """A payment between named agents, started on the payer's node."""
        return await self.home[payer].pay(self.agents[payer], self.agents[payee], amount, memo=memo)

    def balance(self, name: str) -> int:
        """An agent's balance as its own node keeps it."""
        return self.home[name].store.activity(self.agents[name]).balance

    def converged(self, nodes: Iterable[Node] | None = None) -> bool:
        """True when every node holds the same chain heads and warrants."""
        digests = {node.heads_digest() for node in (nodes or self.nodes)}
        return len(digests) == 1

    async def converge(self, timeout: float = 30.0, nodes: Iterable[Node] | None = None) -> float:
        """Wait until the nodes agree; the seconds it took (``TooSlowError`` past ``timeout``)."""
        chosen = list(nodes or self.nodes)
        start = trio.current_time()
        with trio.fail_after(timeout):
            while not self.converged(chosen):
                await trio.sleep(0.05)
        return trio.current_time() - start

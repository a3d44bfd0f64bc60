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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import trio

from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.chain import ActionKind, author_record
from conode.crypto import Signer
from conode.dht.memnet import Faults, MemoryNetwork
from conode.dht.transport import TaskStatus
from conode.hashes import AgentKey
from conode.node import HostedAgent, Node, NodeSettings, PaymentResult, wall_clock_us
from conode.node.governance import Governance
from conode.store import NodeStore
from conode.validation.charter import AppPin, Charter, FoundingCoop, Limits, Parameters
from conode.validation.entries import Credential, Genesis, Role

__all__ = ["TestNetwork", "make_charter"]

START_US = 1_700_000_000_000_000
FAST = NodeSettings.fast()


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
    foundation: AgentKey | None = None,
    apps: tuple[AppPin, ...] = (),
    currency: str = "CXT",
    registration: str = "REG-{coop}",
    voting_period_us: int = 86_400_000_000,
    app_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> Charter:
    """A charter naming these co-ops as founders (and ``foundation``'s key), with test-sized limits
    (the devnet's too). ``registration`` is a format of ``coop`` (its name) and ``i`` (its index)."""
    return Charter(
        name=name,
        currency=currency,
        scale=2,
        founding=tuple(
            FoundingCoop(
                AgentKey(signer.public_key), f"{coop} Ltd", registration.format(coop=coop, i=i)
            )
            for i, (coop, signer) in enumerate(coops)
        ),
        params=Parameters(
            coop_limits=coop_limits,
            member_limits=member_limits,
            foundation_share_bp=1_000,
            quorum_bp=5_000,
            threshold_bp=5_001,
            voting_period_us=voting_period_us,
            replication=replication,
            apps=apps,
            app_config=app_config or MappingProxyType({}),
        ),
        created_at=created_at,
        foundation=foundation,
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
    governance: list[Governance] = field(default_factory=list)
    """Each node's ``Governance`` (same order as ``nodes``); its duties run if started with them."""

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
        clock: Callable[[], int] | Sequence[Callable[[], int]] = wall_clock_us,
        foundation: bool = False,
        apps: Sequence[str] = (),
        governance: bool = False,
        settle_us: int = 0,
    ) -> AsyncIterator[TestNetwork]:
        """Build, start and connect the nodes; stop them when the block ends.

        ``clock`` is every node's clock (µs), or one per node (clocks that differ); under
        trio's ``MockClock`` pass one derived from ``trio.current_time()`` so that session
        deadlines move with it.
        ``foundation``: the charter names a Foundation key (agent ``foundation``)
        and node 0 hosts it, the steward. ``apps``: ids of installed apps (entry
        points) the charter pins, at their local bundle's hash, and every node
        runs. ``governance``: every node runs its governance duties
        (``Governance.run``: the proposer's node ratifies what passed
        ``settle_us`` after the deadline; the steward pays ratified disbursements).
        """
        coop_signers = [(f"coop{i}", derive_signer(seed, f"coop{i}")) for i in range(nodes)]
        fund = HostedAgent("foundation", derive_signer(seed, "foundation")) if foundation else None
        installed = installed_apps()
        pins = tuple(
            AppPin(app_id, installed[app_id].load().version, installed[app_id].bundle_hash())
            for app_id in apps
        )
        running = NodeApps({app_id: installed[app_id].load() for app_id in apps})
        charter = make_charter(
            coop_signers,
            member_limits=member_limits,
            replication=settings.replication,
            foundation=None if fund is None else fund.key,
            apps=pins,
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
                        clock=clock if callable(clock) else clock[i],
                        apps=running,
                    )
                    net.nodes.append(node)
                    net.governance.append(Governance(node, settle_us=settle_us))
                    for agent in hosted:
                        net.agents[agent.name] = agent.key
                        net.home[agent.name] = node
                    await net.start_node(nursery, node)
                    await net.genesis(node, hosted[0], hosted[1:])
                    if fund is not None and i == 0:
                        await net.host_foundation(node, fund)
                if governance:
                    for duties in net.governance:
                        await net.start_duties(nursery, duties)
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

    async def start_duties(self, nursery: trio.Nursery, duties: Governance) -> None:
        """Run a node's governance duties in their own cancel scope (stopped with the nodes)."""

        async def run(task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self.scopes.append(scope)
                await duties.run(task_status=task_status)

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

    async def host_foundation(self, node: Node, fund: HostedAgent) -> None:
        """Host the Foundation on ``node`` (the steward) and commit its genesis there."""
        assert self.charter.foundation == fund.key, "the charter names another Foundation key"
        node.add_agent(fund)
        self.agents[fund.name] = fund.key
        self.home[fund.name] = node
        genesis = Genesis(self.charter.network_id, Role.FOUNDATION, "The Foundation")
        record = author_record(
            fund.signer,
            None,
            kind=ActionKind.GENESIS,
            timestamp=node.clock(),
            entry=genesis.to_value(),
        )
        await node.commit(fund.key, [record])

    async def pay(self, payer: str, payee: str, amount: int, memo: str = "") -> PaymentResult:
        """A payment between named agents, started on the payer's node."""
        return await self.home[payer].pay(self.agents[payer], self.agents[payee], amount, memo=memo)

    def balance(self, name: str) -> int:
        """An agent's balance as its own node keeps it."""
        return self.home[name].store.activity(self.agents[name]).balance

    def converged(self, nodes: Iterable[Node] | None = None) -> bool:
        """True when each node holds every chain it should (it hosts it, or the agent's location
        is on its arc) exactly as the agent's home node does, and all hold the same warrants.

        A warranted agent's chain is frozen where each node saw it (after a fork, honest nodes
        may each hold another branch), so it is left out, as ``heads_digest`` leaves it out.
        """
        chosen = list(nodes or self.nodes)
        if not all(node.placement.placed for node in chosen):
            return False
        warrants = {tuple(h for h, _o, _w in node.store.warrants()) for node in chosen}
        if len(warrants) > 1:
            return False
        warranted = {offender for _h, offender, _w in chosen[0].store.warrants()}
        enough = min(chosen[0].settings.replication, len(chosen))
        for name, key in self.agents.items():
            home = self.home[name]
            if home not in chosen or key in warranted:
                continue
            head = home.store.head(key)
            holders = [node for node in chosen if node.placement.holds_chain(key)]
            if len(holders) < enough or any(node.store.head(key) != head for node in holders):
                return False
        return True

    async def converge(self, timeout: float = 30.0, nodes: Iterable[Node] | None = None) -> float:
        """Wait until the nodes agree; the seconds it took (``TooSlowError`` past ``timeout``)."""
        chosen = list(nodes or self.nodes)
        start = trio.current_time()
        with trio.fail_after(timeout):
            while not self.converged(chosen):
                await trio.sleep(0.05)
        return trio.current_time() - start

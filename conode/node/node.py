"""The node: the one place that builds a node's services, registers their handlers and runs them.

A ``Node`` is a façade over rooms of one job each (``conode/node/``), built
in dependency order and sharing the store, the hosted agents and the clock:

- ``ingestion``: the one door into the store (``ingest``);
- ``pulls``: chains and records fetched from peers, through ingest;
- ``claims``: the signed hosting claims this node makes and holds;
- ``peers``: hellos, greeting rounds, the ring's neighbours (``peers.dialer``: dialling);
- ``hosting``: who hosts an agent (``host``, asked and answered);
- ``publishing``: records authored here sent to their authorities;
- ``gossip``: heads and warrants swapped with a random peer;
- ``links``: the DHT's link indexes, asked and answered;
- ``serving``: the read-only protocols, and app bundles;
- ``warrants``: warrants issued, kept and spread;
- ``authoring``: records of hosted agents (``locks``: chains held by sessions);
- ``sessions``: countersigning sessions on a flat effect executor;
- ``payments``: pay and bills, by the pure payment policy both parties follow;
- ``views``: names, payment history, bills;
- ``lookups``: agents and chains not held here, found and brought here for a name, a view or an
  audit (``fetch_chain``, ``find_named``, ``know_names``, ``chain_here``, ``audit``);
- ``report``: what the node reports about itself (``status``, the ring, peers' clocks, peers);
- ``governance_head``: the governance log head the node follows.

The store and settings setters hand a new store or new settings to every room.

Governance duties and apps (``conode.node.governance``, ``conode.node.apps``)
are built on a running ``Node`` by the daemon and tests. Everything here is
a thin shell around pure code: a domain decision found here is a bug.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import trio

from conode.chain import ActionKind, Record
from conode.crypto import Signer
from conode.dht.shedding import Hold
from conode.dht.transport import Handler, PeerId, TaskStatus, Transport
from conode.errors import ValidationError
from conode.hashes import ActionHash, AgentKey, BundleHash, TypedHash
from conode.node import held_sessions
from conode.node.authoring import Authoring, ChainLocks
from conode.node.claims import Claims
from conode.node.full_disk import again_after_full_disk
from conode.node.gossip import Gossip
from conode.node.hosting import Hosting
from conode.node.ingest import Ingest
from conode.node.links import Links
from conode.node.lookups import Lookups
from conode.node.payments import Payments
from conode.node.peer_client import PeerClient
from conode.node.peers import Peers
from conode.node.publishing import Publishing
from conode.node.pulls import Pulls
from conode.node.reconcile import Reconciliation
from conode.node.ring import Placement
from conode.node.rules_head import RulesHead
from conode.node.serving import Serving
from conode.node.sessions import Sessions
from conode.node.settings import HostedAgent, NodeSettings, PaymentResult, wall_clock_us
from conode.node.status import StatusReport
from conode.node.views import Views
from conode.node.warrants import Warrants
from conode.payments.policy import PaymentPolicy
from conode.store import NodeStore
from conode.validation.audit import AuditReport
from conode.validation.charter import Charter
from conode.validation.engine import AppValidator, Engine
from conode.validation.governance import Rules
from conode.validation.verdict import Invalid, Verdict

__all__ = ["Node"]


def _hold(settings: NodeSettings) -> Hold:
    """How long a chain held on purpose stays: a read's as a dependency, a witness's a session."""
    return Hold(read_us=settings.dependency_keep_us, witness_us=settings.session_timeout_us)


class _HoldsStore(Protocol):
    store: NodeStore


class _Serves(Protocol):
    def handlers(self) -> dict[str, Handler]: ...


class Node:
    """One conode node: its store, its hosted agents, its peers, and the services between them."""

    def __init__(
        self,
        *,
        store: NodeStore,
        charter: Charter,
        transport: Transport,
        node_signer: Signer,
        agents: Iterable[HostedAgent] = (),
        settings: NodeSettings | None = None,
        clock: Callable[[], int] = wall_clock_us,
        apps: Mapping[str, AppValidator] | None = None,
    ) -> None:
        self._store = store
        self.charter = charter
        self.transport = transport
        self.signer = node_signer
        self.key = AgentKey(node_signer.public_key)
        self._settings = settings = settings or NodeSettings(replication=charter.params.replication)
        self.clock = clock
        self.engine = Engine(charter, apps)
        self.network_short = charter.network_id.raw[:8].hex()
        self.agents: dict[AgentKey, HostedAgent] = {a.key: a for a in agents}
        self.rng = random.Random()
        self.started = trio.Event()

        client = self.client = PeerClient(transport, self.network_short, settings.request_timeout)
        placement = self.placement = Placement(
            store, client, self.agents, clock,
            replication=settings.replication, full_arc=settings.full_arc,
            expiry_us=settings.ring_expiry_us, legacy=settings.legacy,
        )  # fmt: skip
        head = self.governance_head = RulesHead(store, self.engine, clock)
        warrants = self.warrants = Warrants(store, node_signer, client, clock)
        ingestion = self.ingestion = Ingest(
            store, self.engine, head, warrants, self.agents, clock, placement
        )
        ingestion.hold = _hold(settings)
        claims = self.claims = Claims(transport, self.agents, clock)
        peers = self.peers = Peers(
            store, client, node_signer, claims, clock, settings.hello_interval, placement,
            self.rng, settings.ring_hello_interval,
        )  # fmt: skip
        hosting = self.hosting = Hosting(claims, peers, placement, client)
        client.greeted = peers.peer_keys  # conode peers: completed a hello (``PeerClient.peers``)
        self.publishing = Publishing(
            store, ingestion, client, peers, hosting, placement, node_signer, clock,
            replication=settings.replication, interval=settings.publish_interval,
        )  # fmt: skip
        pulls = self.pulls = Pulls(store, ingestion, client, claims.hosts, self._news, placement)
        self.reconciliation = Reconciliation(
            store, ingestion, pulls, client, placement, clock,
            interval=settings.reconcile_interval,
            dependency_keep_us=settings.dependency_keep_us, rng=self.rng,
        )  # fmt: skip
        self.gossip = Gossip(
            store, self.engine, client, pulls, warrants, placement,
            interval=settings.gossip_interval, warrants_interval=settings.reconcile_interval,
            rng=self.rng,
        )  # fmt: skip
        self.links = Links(
            store, ingestion, pulls, client, clock, placement,
            replication=settings.replication, fresh_us=settings.links_fresh_us,
        )  # fmt: skip
        self.serving = Serving(store, client)
        locks = self.locks = ChainLocks()
        """The hosted chains payment sessions hold (empty once every session let go)."""
        published = self.publishing.soon
        self.authoring = Authoring(store, ingestion, locks, self.agents, clock, published)
        policy = self.policy = PaymentPolicy(self.engine, store, self.agents)
        self.sessions = Sessions(
            store, ingestion, pulls, hosting, client, policy, head, locks, self.agents, clock,
            published, retry_interval_us=settings.retry_interval_us,
            replication=settings.replication,
        )  # fmt: skip
        self.payments = Payments(
            store, charter.network_id, self.authoring, hosting, pulls, self.sessions, policy, head,
            self.agents, clock,
            session_timeout_us=settings.session_timeout_us, request_timeout=settings.request_timeout,
        )  # fmt: skip
        self.views = Views(store, self.agents, clock)
        self.hosts = claims.hosts
        """Who hosts each agent not hosted here (``Claims.hosts``)."""
        self.peer_keys = peers.peer_keys
        """Each greeted peer's node key (``Peers.peer_keys``)."""
        self.on_stored = ingestion.on_stored
        """Called with each record ingest stores (``Ingest.on_stored``)."""
        self.lookups = Lookups(
            store, charter, self.engine, self.agents, peers, pulls, ingestion, placement,
            self.views,
        )  # fmt: skip
        self.report = StatusReport(
            store, transport, charter, client, self.agents, peers, placement, head,
            self.sessions, locks, self.gossip, self.views,
        )  # fmt: skip

    def _news(self) -> None:
        self.gossip.soon()

    @property
    def store(self) -> NodeStore:
        """The node's store; replacing it (a test's failing store) hands it to every service."""
        return self._store

    @store.setter
    def store(self, store: NodeStore) -> None:
        self._store = store
        services: tuple[_HoldsStore, ...] = (
            self.governance_head, self.warrants, self.ingestion, self.peers, self.publishing,
            self.pulls, self.gossip, self.links, self.serving, self.authoring, self.sessions,
            self.sessions.witnessing,
            self.payments, self.views, self.placement, self.reconciliation, self.lookups, self.report,
        )  # fmt: skip
        for service in services:
            service.store = store
        self.policy.view = store

    @property
    def settings(self) -> NodeSettings:
        """The node's timings and limits; replacing them hands them to every service at once."""
        return self._settings

    @settings.setter
    def settings(self, settings: NodeSettings) -> None:
        self._settings = settings
        self.client.request_timeout = settings.request_timeout
        self.peers.interval = settings.hello_interval
        self.peers.ring_interval = settings.ring_hello_interval
        self.publishing.replication = self.links.replication = settings.replication
        self.publishing.interval = settings.publish_interval
        self.gossip.interval = settings.gossip_interval
        self.gossip.warrants_interval = settings.reconcile_interval
        self.links.fresh_us = settings.links_fresh_us
        self.sessions.retry_interval_us = settings.retry_interval_us
        self.sessions.witnessing.replication = settings.replication
        self.payments.session_timeout_us = settings.session_timeout_us
        self.payments.request_timeout = settings.request_timeout
        self.reconciliation.interval = settings.reconcile_interval
        self.reconciliation.dependency_keep_us = settings.dependency_keep_us
        self.ingestion.hold = _hold(settings)

    # -- running ------------------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """What the node answers each of its protocols with (by protocol name), bytes in and out."""
        services: tuple[_Serves, ...] = (
            self.peers, self.hosting, self.publishing, self.serving, self.gossip, self.sessions,
            self.links, self.reconciliation, self.placement,
        )  # fmt: skip
        return {name: h for service in services for name, h in service.handlers().items()}

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the peer protocols, publish, gossip and drive sessions until cancelled."""
        for name, handler in self.handlers().items():
            self.transport.set_handler(self.client.protocol(name), handler)
        async with trio.open_nursery() as nursery:
            self.client.nursery = nursery
            self.sessions.hold_signed()  # before anything is served: signed chains stay held
            await nursery.start(self.transport.run)
            background = {
                "publishing": self.publishing.run,
                "gossip": self.gossip.run,
                "greeting peers": self.peers.run,
                "session deadlines": self.sessions.run,
                "resuming sessions": self.sessions.resume,  # in the background: peers may be gone
                "reconciliation": self.reconciliation.run,
            }
            for name, work in background.items():
                nursery.start_soon(again_after_full_disk, name, work)
            self.started.set()
            task_status.started()

    # -- hosted agents and authoring ----------------------------------------------------------------

    def hosted(self, agent: AgentKey) -> HostedAgent:
        """The hosted agent (``ValidationError`` "not-hosted" if this node does not host it)."""
        return self.authoring.hosted(agent)

    def add_agent(self, agent: HostedAgent) -> None:
        """Host one more agent (its chain must be in the store, or be recovered)."""
        self.agents[agent.key] = agent

    async def recover(self, agent: HostedAgent) -> int:
        """Host ``agent`` again, its chain rebuilt from the peers; how many records came.
        ``ValidationError`` if no peer holds its chain (then it is not hosted)."""
        fetched = await self.fetch_chain(agent.key)
        if self.store.head(agent.key) is None:
            raise ValidationError("recover", f"no peer holds a chain for {agent.key.short()}")
        self.add_agent(agent)
        for peer in self.client.peers():
            await self.hello(peer)
        return fetched

    def rules_head(self) -> ActionHash | None:
        """The newest governance log head this node knows."""
        return self.governance_head.current()

    def rules_now(self) -> Rules:
        """The rules in force now under this node's head (``ValidationError`` if not known)."""
        return self.governance_head.rules_now()

    async def commit(self, agent: AgentKey, records: list[Record]) -> None:
        """Append records authored here (in order) after every rule passed; then publish them."""
        await self.authoring.commit(agent, records)

    async def create_entry(
        self,
        agent: AgentKey,
        entry_type: str,
        entry: Any,
        *,
        kind: ActionKind = ActionKind.CREATE,
        not_before: int = 0,
    ) -> Record:
        """Author, check, store and publish one record on a hosted agent's chain
        (``Authoring.create_entry``)."""
        return await self.authoring.create_entry(
            agent, entry_type, entry, kind=kind, not_before=not_before
        )

    def in_session(self, agent: AgentKey) -> bool:
        """A payment session of hosted ``agent`` is open here, or holds its chain."""
        return agent in self.locks or self.sessions.open_for(agent)

    # -- the store's door and the DHT ----------------------------------------------------------------

    async def ingest(self, record: Record, source: PeerId | None, depth: int = 0) -> Verdict:
        """Judge ``record`` and keep it if valid; fetch what it needs from ``source`` first."""
        return await self.ingestion.ingest(record, source, depth)

    def judge_held(self, records: Iterable[Record]) -> list[tuple[Record, Invalid]]:
        """Judge held records of an app this node has just started running; the invalid ones."""
        return self.ingestion.judge_held(records)

    async def receive_warrant(self, data: bytes, peer: PeerId) -> None:
        """Check a warrant ``peer`` passed on and keep it if it proves the offence."""
        await self.gossip.receive_warrant(data, peer)

    async def fetch_bundle(self, bundle: BundleHash) -> bytes:
        """An app bundle's bytes from the first peer whose bytes hash to ``bundle``; kept here."""
        return await self.serving.fetch_bundle(bundle)

    async def fetch_links(
        self,
        bases: Iterable[TypedHash],
        link_type: str | None = None,
        new: list[Record] | None = None,
    ) -> list[Record]:
        """Bring here the links at ``bases`` that their authorities hold (``Links.fetch_links``)."""
        return await self.links.fetch_links(bases, link_type, new)

    def receipts_needed(self) -> int:
        """How many remote receipts make a record published: R, or every peer in a smaller network."""
        return self.publishing.receipts_needed()

    async def publish_pending(self) -> None:
        """Send every record still short of receipts to its authorities that have not answered."""
        await self.publishing.publish_pending()

    async def gossip_with(self, peer: PeerId) -> None:
        """Swap heads and warrants with ``peer`` and pull what it holds further on."""
        await self.gossip.gossip_with(peer)

    async def sync(self) -> str:
        """Gossip with every connected peer now and publish what is pending; the heads digest."""
        for peer in self.transport.connected_peers():
            await self.gossip_with(peer)
        await self.publish_pending()
        return self.heads_digest()

    def heads_digest(self) -> str:
        """A digest of every held chain head and warrant: equal on nodes that have converged."""
        return self.gossip.heads_digest()

    async def hello(self, peer: PeerId) -> None:
        """Tell ``peer`` who this node hosts and whom it knows, and learn the same of it."""
        await self.peers.hello(peer)

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer and greet it."""
        return await self.peers.connect(addr)

    async def host_of(self, agent: AgentKey) -> PeerId:
        """The peer that hosts ``agent`` (asks every peer once if it is not known yet)."""
        return await self.hosting.host_of(agent)

    async def fetch_chain(self, agent: AgentKey) -> int:
        """Bring ``agent``'s chain here from its host or any peer (``Lookups.fetch_chain``)."""
        return await self.lookups.fetch_chain(agent)

    # -- payments and bills --------------------------------------------------------------------------

    async def pay(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        *,
        memo: str = "",
        ref: ActionHash | None = None,
        offer: ActionHash | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentResult:
        """Make a countersigned payment from a hosted agent; wait until it is decided (a retry
        with the same ``idempotency_key`` gets the first outcome and pays nothing more)."""
        return await self.payments.pay(
            payer, payee, amount, memo=memo, ref=ref, offer=offer, idempotency_key=idempotency_key
        )

    async def bill(
        self, payee: AgentKey, payer: AgentKey, amount: int, *, memo: str = "", expires_in_us: int
    ) -> Record:
        """Ask ``payer`` for ``amount``: a bill record on the payee's chain."""
        return await self.payments.bill(payee, payer, amount, memo=memo, expires_in_us=expires_in_us)

    def bills(self) -> list[dict[str, Any]]:
        """Bills to or from hosted agents, with their status (open, paid, declined, expired)."""
        return self.views.bills()

    async def accept_bill(self, bill_hash: ActionHash) -> PaymentResult:
        """Pay a bill addressed to a hosted agent."""
        return await self.payments.accept_bill(bill_hash)

    async def decline_bill(self, bill_hash: ActionHash) -> Record:
        """Decline a bill addressed to a hosted agent."""
        return await self.payments.decline_bill(bill_hash)

    def sessions_held(self) -> list[dict[str, Any]]:
        """The payment sessions not finished here and the chains they hold."""
        return held_sessions.listing(self.sessions)

    async def release_session(self, session_id: str, *, force: bool = False) -> str:
        """Give up a payment session as the operator (``Sessions.release``); what happened."""
        return await held_sessions.release(self.sessions, session_id, force=force)

    # -- reading --------------------------------------------------------------------------------------

    def name_of(self, agent: AgentKey) -> str:
        """The name an agent's genesis gives it ("?" if its chain is not held)."""
        return self.views.name_of(agent)

    def directory(self) -> list[dict[str, Any]]:
        """Every agent whose genesis is held, by name, with its role and co-op (``Views.directory``)."""
        return self.views.directory()

    def named(self, name: str) -> list[AgentKey]:
        """The agents called ``name``, hosted or held (``Lookups.named``)."""
        return self.lookups.named(name)

    async def find_named(self, name: str) -> list[AgentKey]:
        """The agents called ``name``, looked for where they are hosted too (``Lookups.find_named``)."""
        return await self.lookups.find_named(name)

    async def know_names(self, agents: Iterable[AgentKey]) -> None:
        """Bring here the geneses (names) of ``agents`` this node lacks (``Lookups.know_names``)."""
        await self.lookups.know_names(agents)

    async def chain_here(self, agent: AgentKey) -> None:
        """Bring ``agent``'s chain up to date here for a view of it (``Lookups.chain_here``)."""
        await self.lookups.chain_here(agent)

    def balance(self, agent: AgentKey) -> int:
        """``agent``'s balance, as its held chain says (0 if not held)."""
        return self.store.activity(agent).balance

    def authors_between(self, lo: bytes, hi: bytes) -> list[bytes]:
        """At most two held chains' author keys in ``[lo, hi]`` (what a key prefix names)."""
        return self.store.authors_between(lo, hi)

    def actions_between(self, lo: bytes, hi: bytes) -> list[bytes]:
        """At most two held records' hashes in ``[lo, hi]`` (what a hash prefix names)."""
        return self.store.actions_between(lo, hi)

    def chain_seq(self, agent: AgentKey) -> int | None:
        """The seq of ``agent``'s held chain head (None if its chain is not held)."""
        head = self.store.head(agent)
        return None if head is None else head.seq

    def history(self, agent: AgentKey, from_seq: int = 0) -> list[dict[str, Any]]:
        """The payments on ``agent``'s chain at ``from_seq`` or later, oldest first, with named
        counterparties (``Views.history``)."""
        return self.views.history(agent, from_seq)

    def statement(self, agent: AgentKey, start_us: int, end_us: int) -> dict[str, Any]:
        """``agent``'s payments in ``[start_us, end_us)`` with its opening and closing balances
        and the sums paid in and out (``Views.statement``)."""
        return self.views.statement(agent, start_us, end_us)

    async def audit(self, agent: AgentKey) -> AuditReport:
        """Fetch ``agent``'s chain and audit it and every chain it touches (``Lookups.audit``)."""
        return await self.lookups.audit(agent)

    def peer_listing(self) -> list[dict[str, Any]]:
        """Each connected peer, its addresses, node key and agents (``StatusReport.peer_listing``)."""
        return self.report.peer_listing()

    def status(self) -> dict[str, Any]:
        """What the node is doing (``StatusReport.status``)."""
        return self.report.status()

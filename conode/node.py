"""The conductor: the one place that wires agents, chains, rules, the DHT and payments together.

How it works:

- **Ingest** is the one door into the store. A record (our own, or one a
  peer published, or one fetched during gossip) is checked against its
  chain's kept state with the activity rules and judged by the engine with
  the store as context; only then is it appended, with its new activity
  state, in one durable transaction. A record ahead of its chain waits in
  ``pending`` while the gap is fetched; a record whose dependencies are not
  held gets them fetched from the peer that sent it, outside the store lock.
  A second record at a held position is a **fork**; a record that breaks a
  rule is an **offence**: both become warrants, which spread, and honest
  nodes then refuse that agent.
- **Publishing**: every record authored here is sent to the authorities of
  its action hash and of its author (the R nearest peers, everyone while the
  network is smaller than R) until enough of them returned signed receipts;
  a link also goes to the authorities of its base, which answer ``links``
  for it (``fetch_links`` asks them and takes the links in through ingest).
- **Gossip**: every few seconds the node swaps chain heads (and warrant
  hashes) with a random peer, and pulls whatever the peer holds further on;
  the peer does the same the other way. This repairs whatever publishing
  missed: downtime, partitions, late joiners.
- **Payments**: the countersigning machines of ``conode.validation.countersign``
  driven over the ``countersign`` protocol. The payer's node starts the
  session; the payee's node completes and signs for agents it hosts by their
  policy (auto-accept), so a member is paid while its own laptop is off.
  A session record is persisted before any signature leaves, and a responder
  that signed holds its chain until it learns the outcome, across restarts.

Everything here is a thin shell around pure code: a domain decision found
here is a bug.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from conode import encoding
from conode.apps.sdk import verify_bundle
from conode.chain import ActionKind, Record, author_record, link_base
from conode.chain.records import MAX_ENTRY_TYPE_LENGTH
from conode.crypto import SIG_ACTION, SIG_COUNTERSIGN, SIG_MESSAGE, SIG_RECEIPT, Signer, verify
from conode.dht import wire
from conode.dht.routing import authorities
from conode.dht.transport import PeerId, TaskStatus, Transport, protocol_id
from conode.errors import (
    ConodeError,
    EncodingError,
    NetworkError,
    RemoteProtocolError,
    ValidationError,
)
from conode.hashes import ActionHash, AgentKey, BundleHash, EntryHash, OpHash, TypedHash
from conode.store import NodeStore, Receipt
from conode.store.node import MAX_BUNDLE
from conode.validation import countersign as cs
from conode.validation.activity import step
from conode.validation.charter import Charter
from conode.validation.credit import Party, check_limits, party_at
from conode.validation.engine import AppValidator, Engine
from conode.validation.entries import (
    BILL,
    BILL_DECLINE,
    EXCHANGE_OFFER,
    MAX_AMOUNT,
    PAYMENT,
    Bill,
    BillDecline,
    Genesis,
    Payment,
    PaymentBody,
    Role,
)
from conode.validation.foundation import check_disbursement
from conode.validation.governance import RATIFICATION, Ratification, Rules, log_rank
from conode.validation.payment import (
    PaymentOffer,
    commit_payment,
    complete_offer,
    completion_differs,
    offer_payment,
)
from conode.validation.stale import stale_evidence
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict
from conode.validation.warrants import Warrant, check_warrant

__all__ = ["HostedAgent", "Node", "NodeSettings", "PaymentResult", "wall_clock_us"]

log = logging.getLogger("conode.node")

_MAX_FETCH_ROUNDS: Final = 6
_MAX_CHAIN_BATCH: Final = 2_000
_MAX_CHAIN_BYTES: Final = 2 << 20  # a chain(s) reply stops adding records past this size
_MAX_LINK_PAGES: Final = 8  # a links fetch asks one peer for at most this many cut-off replies
_PEER_SEEN_REFRESH_US: Final = 600_000_000  # a peer's unchanged addresses are rewritten this often
_SESSION_KEY_SIZE: Final = cs.SESSION_ID_SIZE + 32
_FINISHED_SESSION_KEEP_US: Final = 600_000_000  # a finished session is forgotten 10 min on
_FINAL: Final = frozenset({cs.Phase.COMMITTED, cs.Phase.ABORTED})
_LinkIndex = tuple[bytes, str | None]
"""A link index asked for: its base (typed-hash bytes) and link type (None: any)."""
_LINKS_DIGEST_SIZE: Final = 32
_MAX_LINK_BASES: Final = 64  # bases one links request may name


@dataclass(slots=True)
class _LinksAsk:
    """One link index being fetched: its base, the hashes held there (growing as links come in),
    the digest of those held when the fetch began, its authorities nearest first."""

    key: _LinkIndex
    base: TypedHash
    held: set[ActionHash]
    have: bytes
    ranked: list[str]


@dataclass(slots=True)
class _Room:
    """What a links reply may still hold: records and bytes (it stops once past the bytes)."""

    records: int
    size: int


def _links_digest(hashes: Iterable[ActionHash]) -> bytes:
    """What a ``links`` asker and responder compare to learn that they hold the same links at a
    base: a digest of the typed hashes in order (an asker holding none sends it too)."""
    data = b"".join(sorted(h.to_bytes() for h in hashes))
    return hashlib.blake2b(data, digest_size=_LINKS_DIGEST_SIZE, person=b"conode-links").digest()


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
    session_timeout_us: int = 10_000_000
    retry_interval_us: int = 2_000_000
    links_fresh_us: int = 30_000_000
    """A base whose links an authority gave in full less than this long ago is not asked again."""


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
    """How a payment ended: committed on both chains, or refused (with why)."""

    committed: bool
    reason: str = ""
    record: ActionHash | None = None
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class _Need:
    """What ingest must fetch before it can judge a record."""

    chain: tuple[AgentKey, int] | None = None
    records: tuple[ActionHash, ...] = ()
    agents: tuple[AgentKey, ...] = ()


@dataclass(slots=True)
class _Session:
    machine: cs.Initiator | cs.Responder
    agent: AgentKey
    lock: trio.Lock = field(default_factory=trio.Lock)
    done: trio.Event = field(default_factory=trio.Event)


class Node:
    """One conode node: its store, its hosted agents, its peers."""

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
        self.store = store
        self.charter = charter
        self.transport = transport
        self.signer = node_signer
        self.key = AgentKey(node_signer.public_key)
        self.settings = settings or NodeSettings(replication=charter.params.replication)
        self.clock = clock
        self.engine = Engine(charter, apps)
        self.network_short = charter.network_id.raw[:8].hex()
        self.agents: dict[AgentKey, HostedAgent] = {a.key: a for a in agents}
        self.hosts: dict[AgentKey, PeerId] = {}
        self._claims: dict[AgentKey, tuple[int, PeerId, bytes]] = {}
        self.peer_keys: dict[PeerId, AgentKey] = {}
        self._remembered: dict[str, tuple[list[str], int]] = {}
        self.rng = random.Random()
        self._ingest_lock = trio.Lock()
        self._author_lock = trio.Lock()  # records authored here one at a time (create_entry)
        raw_head = store.get_meta("rules_head")
        # kept in memory too: every record taken in is checked against it (stale rules)
        self._rules_head = None if raw_head is None else ActionHash.from_bytes(raw_head)
        self._locks: dict[AgentKey, bytes] = {}
        self._sessions: dict[bytes, _Session] = {}
        self._timers: dict[bytes, int] = {}
        self._finished: dict[bytes, int] = {}  # session key -> when it ended (node clock, µs)
        self._links_fetched: dict[_LinkIndex, int] = {}  # when an authority last answered in full
        self._links_fetching: dict[_LinkIndex, trio.Event] = {}
        self._publish_now = trio.Event()
        self._gossip_now = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.started = trio.Event()
        self.on_stored: list[Callable[[Record], None]] = []
        """Called with each record ingest stores, under the ingest lock: take note, never block or raise
        (the app host's watchers only wake their task here)."""

    # -- running ------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the peer protocols, publish, gossip and drive sessions until cancelled."""
        for name, handler in (
            (wire.HELLO, self._on_hello),
            (wire.PUBLISH, self._on_publish),
            (wire.FETCH, self._on_fetch),
            (wire.CHAIN, self._on_chain),
            (wire.CHAINS, self._on_chains),
            (wire.HEADS, self._on_heads),
            (wire.COUNTERSIGN, self._on_countersign),
            (wire.WARRANT, self._on_warrant),
            (wire.BUNDLE, self._on_bundle),
            (wire.LINKS, self._on_links),
        ):
            self.transport.set_handler(self._protocol(name), handler)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.transport.run)
            await self._restart_sessions()
            nursery.start_soon(self._publish_loop)
            nursery.start_soon(self._gossip_loop)
            nursery.start_soon(self._hello_loop)
            nursery.start_soon(self._timer_loop)
            self.started.set()
            task_status.started()

    def _protocol(self, name: str) -> str:
        return protocol_id(self.network_short, name)

    async def _request(self, peer: PeerId, name: str, message: dict[str, Any]) -> dict[str, Any]:
        """One request to a peer; its decoded response (``NetworkError``/``RemoteProtocolError``)."""
        raw = await self.transport.request(
            peer, self._protocol(name), wire.dumps(message), timeout=self.settings.request_timeout
        )
        return wire.loads(raw, set())

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    # -- local agents -----------------------------------------------------------------------------------------

    def add_agent(self, agent: HostedAgent) -> None:
        """Host one more agent (its chain must be in the store, or be recovered)."""
        self.agents[agent.key] = agent

    def rules_head(self) -> ActionHash | None:
        """The newest governance log head this node knows."""
        return self._rules_head

    def rules_now(self) -> Rules:
        rules = self.engine.rules_at(self.rules_head(), self.clock(), self.store)
        if not isinstance(rules, Rules):
            raise ValidationError("rules", f"the rules in force are not known here ({rules})")
        return rules

    async def commit(self, agent: AgentKey, records: list[Record]) -> None:
        """Append records authored here (in order) after every rule passed; then publish them."""
        for record in records:
            if self._locks.get(agent) is not None:
                raise ValidationError("locked", "the chain is held by a payment session")
            verdict = await self.ingest(record, None)  # from no peer: ours, queued for publishing
            if not isinstance(verdict, Valid):
                if isinstance(verdict, Invalid):
                    raise ValidationError(verdict.rule, verdict.reason)
                raise ValidationError("missing", str(verdict))
        self._publish_now.set()

    async def create_entry(
        self,
        agent: AgentKey,
        entry_type: str,
        entry: Any,
        *,
        kind: ActionKind = ActionKind.CREATE,
        not_before: int = 0,
    ) -> Record:
        """Author, check, store and publish one record on a hosted agent's chain.

        One author at a time: two records made from the same head would be a
        fork of our own agent's chain. ``not_before``: the earliest timestamp
        the record may carry (e.g. the time of the rules it names).
        ``entry`` may also be ``make(timestamp, activity)``, called under the
        lock: an entry that depends on the record's time (a proposal's
        deadline) or on the chain as it stands (an app's credit move).
        """
        hosted = self._hosted(agent)
        async with self._author_lock:
            head = self.store.head(agent)
            timestamp = max(self.clock(), not_before, 0 if head is None else head.timestamp)
            if callable(entry):
                entry = entry(timestamp, self.store.activity(agent))
            record = author_record(
                hosted.signer, head, kind=kind, timestamp=timestamp, entry=entry, entry_type=entry_type
            )
            await self.commit(agent, [record])
        return record

    def in_session(self, agent: AgentKey) -> bool:
        """A payment session of hosted ``agent`` is open here, or holds its chain."""
        return agent in self._locks or any(
            s.agent == agent and not s.machine.done for s in self._sessions.values()
        )

    def _hosted(self, agent: AgentKey) -> HostedAgent:
        hosted = self.agents.get(agent)
        if hosted is None:
            raise ValidationError("not-hosted", f"{agent.short()} is not hosted on this node")
        return hosted

    # -- ingest: the one door into the store ------------------------------------------------------------------

    async def ingest(self, record: Record, source: PeerId | None, depth: int = 0) -> Verdict:
        """Judge ``record`` and keep it if valid; fetch what it needs from ``source`` first."""
        for _round in range(_MAX_FETCH_ROUNDS):
            async with self._ingest_lock:
                outcome = self._apply(record, publish=source is None)
            if not isinstance(outcome, _Need):
                return outcome
            if source is None or depth > 4:
                return Missing(tuple(outcome.records) + tuple(outcome.agents))
            if not await self._fetch_needed(outcome, source, depth):
                return Missing(tuple(outcome.records) + tuple(outcome.agents))
        return Missing((record.hash,))

    def _apply(self, record: Record, *, publish: bool = False) -> Verdict | _Need:
        """Under the ingest lock: the verdict on ``record`` (kept if valid), or what to fetch.

        ``publish``: the record is authored here; it joins the publishing queue
        in the same write that stores it.
        """
        action = record.action
        author = action.author
        if self.store.warranted(author):
            return Invalid(
                "warranted", f"{author.short()} is warranted: its new records are refused"
            )
        held = self.store.hash_at(author, action.seq)
        if held is not None:
            return VALID if held == record.hash else self._fork(record, held)
        head = self.store.head(author)
        expected = 0 if head is None else head.seq + 1
        if action.seq > expected:
            if not verify(author.raw, SIG_ACTION, record.action_bytes, record.signature):
                return Invalid("signature", "the author's signature does not verify")
            self.store.add_pending(record, self.clock())
            return _Need(chain=(author, expected))
        state, offence = step(self.store.activity(author), record)
        if isinstance(offence, Invalid):
            self._offence(record, offence, "activity")
            return offence
        verdict = self.engine.validate_record(record, self.store, signature_checked=True)
        if isinstance(verdict, Missing):
            deps = verdict.dependencies
            return _Need(
                records=tuple(d for d in deps if isinstance(d, ActionHash)),
                agents=tuple(d for d in deps if isinstance(d, AgentKey)),
            )
        if isinstance(verdict, Invalid):
            self._offence(record, verdict, "invalid")
            return verdict
        self.store.append([record], activities={author: state}, publish=publish)
        for listener in self.on_stored:
            listener(record)
        if action.entry_type == RATIFICATION:
            self._advance_rules_head(record)
        elif author not in self.agents:
            self._warrant_if_stale(record)
        self._drain_pending(author)
        return VALID

    def _warrant_if_stale(self, record: Record) -> None:
        """Warrant a record made under an old rules head that a ratification we hold had barred.

        The record itself is valid (it is judged under the head it names); see
        ``conode.validation.stale`` for why this is a warrant and not a verdict.
        """
        found = stale_evidence(self.engine, record, self.rules_head(), self.store)
        if found is None:
            return
        ratification, offence = found
        log.warning(
            "%s made %s under rules from before %s (%s)",
            record.action.author.short(), record.hash.short(), ratification.hash.short(), offence,
        )
        self._keep_warrant(
            Warrant.issue(
                self.signer, "stale-rules", record.action.author, (record, ratification), self.clock()
            )
        )

    def _advance_rules_head(self, record: Record) -> None:
        """A valid ratification that ``log_rank`` puts above this node's head becomes the head.

        Usually it extends the log; on a fork (another n-th entry than ours) the
        higher-ranked branch wins on every node, wherever it arrived first.
        """
        ratification = Ratification.from_value(record.entry_value())
        current = self.rules_head()
        held = None if current is None else self.store.get(current)
        if current is not None and held is not None:
            current_n = Ratification.from_value(held.entry_value()).n
            if log_rank(ratification.n, record.hash) <= log_rank(current_n, current):
                return
        if ratification.prev != current:
            log.warning(
                "the governance log forked: following %s (n=%d) instead of %s",
                record.hash.short(), ratification.n, "none" if current is None else current.short(),
            )
        self.store.set_meta("rules_head", record.hash.to_bytes())
        self._rules_head = record.hash
        log.info("governance log now at n=%d (%s)", ratification.n, record.hash.short())

    def _drain_pending(self, author: AgentKey) -> None:
        """Append the author's pending records that now fit, in order."""
        while True:
            head = self.store.head(author)
            expected = 0 if head is None else head.seq + 1
            ready = [r for r in self.store.pending(author) if r.action.seq <= expected]
            if not ready:
                return
            for record in ready:
                self.store.drop_pending([record.hash])
                if record.action.seq == expected and isinstance(self._apply(record), Valid):
                    break
            else:
                return

    def _fork(self, record: Record, held: ActionHash) -> Verdict:
        """A second record at a held position: a fork if the author really signed both."""
        first = self.store.get(held)
        signed = verify(record.action.author.raw, SIG_ACTION, record.action_bytes, record.signature)
        if first is None or not signed:
            return Invalid("signature", "a record at a held position that its author did not sign")
        if record.action.author in self.agents:
            # authored here (a session's commit racing another record): refused, never warranted
            return Invalid("seq", f"seq {record.action.seq} of a hosted chain is already taken")
        warrant = Warrant.issue(
            self.signer, "fork", record.action.author, (first, record), self.clock()
        )
        self._keep_warrant(warrant)
        return Invalid(
            "fork", f"{record.action.author.short()} signed two records at seq {record.action.seq}"
        )

    def _offence(self, record: Record, verdict: Invalid, kind: str) -> None:
        """Warrant the author of a record it signed that breaks a rule (not a forgery)."""
        # a bad signature, or an entry other than the one the action names: not the author's act
        if verdict.rule in ("signature", "entry-hash", "warranted"):
            return
        if record.action.author in self.agents:
            return
        evidence = (
            (*self.store.records(record.action.author), record) if kind == "activity" else (record,)
        )
        if kind == "activity" and verdict.rule in (
            "seq",
            "prev",
            "author",
            "timestamp",
            "closed",
            "kind",
        ):
            return  # a malformed chain step, not a signed double act: refused, not warranted
        warrant = Warrant.issue(
            self.signer, kind, record.action.author, tuple(evidence), self.clock()
        )
        self._keep_warrant(warrant)

    def judge_held(self, records: Iterable[Record]) -> list[tuple[Record, Invalid]]:
        """Judge held records of an app this node has just started running; the invalid ones.

        While the app did not run here its records were held unjudged
        (``conode.apps.hosting``); an invalid one now warrants its author, as
        it would have on arrival.
        """
        invalid = []
        for record in records:
            verdict = self.engine.validate_record(record, self.store, signature_checked=True)
            if isinstance(verdict, Invalid):
                self._offence(record, verdict, "invalid")
                invalid.append((record, verdict))
        return invalid

    def _keep_warrant(self, warrant: Warrant) -> bool:
        data = warrant.to_bytes()
        digest = OpHash.of(data).raw
        new = self.store.add_warrant(digest, warrant.offender, data, self.clock())
        if new:
            log.warning("warrant (%s) against %s", warrant.kind, warrant.offender.short())
            self._spawn(self._spread_warrant, data)
        return new

    async def _fetch_needed(self, need: _Need, source: PeerId, depth: int) -> bool:
        """Fetch and ingest what ``need`` names from ``source``; False if nothing came."""
        got = False
        try:
            if need.chain is not None:
                got |= await self._pull_chain(source, need.chain[0], need.chain[1], depth + 1)
            for agent in need.agents:
                got |= await self._pull_chain(source, agent, 0, depth + 1)
            if need.records:
                reply = await self._request(
                    source, wire.FETCH, {"hashes": [h.to_bytes() for h in need.records]}
                )
                for blob in wire.bytes_list(reply, "records"):
                    record = _decode_record(blob)
                    # a dependency on another chain: make sure that chain is held up to it
                    head = self.store.head(record.action.author)
                    if head is None or head.seq + 1 < record.action.seq:
                        await self._pull_chain(
                            source,
                            record.action.author,
                            0 if head is None else head.seq + 1,
                            depth + 1,
                        )
                    verdict = await self.ingest(record, source, depth + 1)
                    got |= isinstance(verdict, Valid)
        except (NetworkError, RemoteProtocolError) as exc:
            log.info("fetching from %s failed: %s", source, exc)
        return got

    async def _pull_chain(
        self, source: PeerId, agent: AgentKey, from_seq: int, depth: int = 0
    ) -> bool:
        """Fetch ``agent``'s chain from ``from_seq`` from ``source`` and ingest it in order.

        True if the chain held here grew (records already held do not count).
        """
        before = self._next_seq(agent)
        while True:
            reply = await self._request(
                source,
                wire.CHAIN,
                {"author": agent.to_bytes(), "from": from_seq, "limit": _MAX_CHAIN_BATCH},
            )
            blobs = wire.bytes_list(reply, "records")
            for blob in blobs:
                record = _decode_record(blob)
                if record.action.author != agent:
                    raise RemoteProtocolError("the peer sent a record of another chain")
                verdict = await self.ingest(record, source, depth)
                if not isinstance(verdict, Valid):
                    return self._next_seq(agent) > before
            if len(blobs) < _MAX_CHAIN_BATCH:
                return self._next_seq(agent) > before
            from_seq += len(blobs)

    # -- peer protocol handlers -----------------------------------------------------------------------------

    async def _on_hello(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"node", "agents", "peers"})
        self._learn_hello(peer, message)
        return wire.dumps(self._hello_message())

    def _hello_message(self) -> dict[str, Any]:
        peers = [[p, self.transport.peer_addrs(p)] for p in self.transport.connected_peers()]
        return {
            "node": self.key.to_bytes(),
            "agents": self._own_claims(),
            "hosts": [
                [agent.to_bytes(), peer, at, signature]
                for agent, (at, peer, signature) in self._claims.items()
                if agent not in self.agents
            ],
            "peers": peers,
            "addrs": self.transport.listen_addrs(),
        }

    def _own_claims(self) -> list[list[Any]]:
        """Each hosted agent's signed statement that this peer hosts it (made once per start)."""
        claims = []
        for key, hosted in self.agents.items():
            known = self._claims.get(key)
            if known is None or known[1] != self.transport.peer_id:
                at = self.clock()
                signature = hosted.signer.sign(
                    SIG_MESSAGE, _claim_bytes(key, self.transport.peer_id, at)
                )
                known = self._claims[key] = (at, self.transport.peer_id, signature)
            claims.append([key.to_bytes(), known[1], known[0], known[2]])
        return claims

    def _learn_claim(self, item: Any) -> None:
        """Believe a hosting claim only if the agent signed it, and only the newest one."""
        if not (isinstance(item, list) and len(item) == 4):
            return
        raw, peer, at, signature = item
        if not (isinstance(peer, str) and type(at) is int and type(signature) is bytes):
            return
        try:
            agent = AgentKey.from_bytes(raw)
        except (EncodingError, TypeError):
            return
        known = self._claims.get(agent)
        if agent in self.agents or (known is not None and known[0] >= at):
            return
        if verify(agent.raw, SIG_MESSAGE, _claim_bytes(agent, peer, at), signature):
            self._claims[agent] = (at, PeerId(peer), signature)
            self.hosts[agent] = PeerId(peer)

    def _learn_hello(self, peer: PeerId, message: dict[str, Any]) -> None:
        """Learn a peer's node key, the agents it hosts, the hosts it knows, and its peers.

        Who hosts an agent is learned only from that agent's own signed claim
        (``_learn_claim``), never on a peer's word: a peer that says it hosts
        someone else's agent cannot divert payments to itself.
        """
        try:
            self.peer_keys[peer] = AgentKey.from_bytes(message["node"])
        except (EncodingError, TypeError, KeyError) as exc:
            raise RemoteProtocolError(f"a bad hello: {exc}") from exc
        for field_name in ("agents", "hosts"):
            items = message.get(field_name) or []
            if isinstance(items, list):
                for item in items[: wire.MAX_ITEMS]:
                    self._learn_claim(item)
        addrs = message.get("addrs")
        if isinstance(addrs, list) and all(isinstance(a, str) for a in addrs):
            self._remember_peer(peer, addrs)
        connected = set(self.transport.connected_peers())
        for item in message.get("peers") or []:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                continue
            other, other_addrs = item
            good = (
                [a for a in other_addrs if isinstance(a, str)]
                if isinstance(other_addrs, list)
                else []
            )
            if other != self.transport.peer_id and other not in connected and good:
                self._remember_peer(other, good)
                self._spawn(self._dial, good)

    def _remember_peer(self, peer: str, addrs: list[str]) -> None:
        """Keep a peer's addresses on disk, writing only when they change (hellos come often)."""
        now = self.clock()
        known = self._remembered.get(peer)
        if known is not None and known[0] == addrs and now - known[1] < _PEER_SEEN_REFRESH_US:
            return
        self.store.remember_peer(peer, addrs, now)
        self._remembered[peer] = (list(addrs), now)

    async def _dial(self, addrs: list[str]) -> bool:
        """Connect to a peer at one of its addresses and greet it; False if none answered."""
        for addr in addrs:
            try:
                await self.connect(addr)
                return True
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("dialing %s: %s", addr, exc)
        return False

    async def _route_to(self, peer: PeerId) -> None:
        """A known peer that none of its old addresses reach: ask the routing table (Kademlia)."""
        find = getattr(self.transport, "find_peer", None)
        if find is None:
            return
        try:
            addrs = list(await find(peer))
        except NetworkError as exc:
            log.info("routing to %s: %s", peer, exc)
            return
        if addrs and await self._dial(addrs):
            self._remember_peer(peer, addrs)

    async def _on_publish(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"records"})
        receipts = []
        for blob in wire.bytes_list(message, "records"):
            record = _decode_record(blob)
            verdict = await self.ingest(record, peer)
            if not isinstance(verdict, Missing):
                receipts.append(self._receipt(record.hash, isinstance(verdict, Valid)))
        return wire.dumps({"receipts": receipts})

    def _receipt(self, record: ActionHash, valid: bool) -> list[Any]:
        at = self.clock()
        signature = self.signer.sign(SIG_RECEIPT, _receipt_bytes(record, valid, at))
        return [record.to_bytes(), valid, at, signature, self.key.to_bytes()]

    async def _on_fetch(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"hashes"})
        records = []
        for raw in wire.bytes_list(message, "hashes")[:_MAX_CHAIN_BATCH]:
            try:
                record = self.store.get(ActionHash.from_bytes(raw))
            except EncodingError as exc:
                raise RemoteProtocolError(str(exc)) from exc
            if record is not None:
                records.append(record.to_bytes())
        return wire.dumps({"records": records})

    async def _on_chain(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"author", "from", "limit"})
        try:
            author = AgentKey.from_bytes(message["author"])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad chain request: {exc}") from exc
        start, limit = message["from"], message["limit"]
        if not isinstance(start, int) or not isinstance(limit, int) or start < 0 or limit < 1:
            raise RemoteProtocolError("a chain request takes a seq and a positive limit")
        blobs = []
        size = 0
        for blob in self.store.record_blobs(author, start):
            blobs.append(blob)
            size += len(blob)
            if len(blobs) >= min(limit, _MAX_CHAIN_BATCH) or size > 2 << 20:
                break
        return wire.dumps({"records": blobs})

    async def _on_chains(self, peer: PeerId, payload: bytes) -> bytes:
        """Records of several chains, each from a seq on, in one reply (cut off at the limits)."""
        message = wire.loads(payload, {"chains", "limit"})
        wanted, limit = message["chains"], message["limit"]
        if not isinstance(wanted, list) or not isinstance(limit, int) or limit < 1:
            raise RemoteProtocolError(
                "a chains request takes a list of chains and a positive limit"
            )
        limit = min(limit, _MAX_CHAIN_BATCH)
        blobs: list[bytes] = []
        size = 0
        for author, start in (_read_chain_want(item) for item in wanted):
            for blob in self.store.record_blobs(author, start):
                if len(blobs) >= limit or size > _MAX_CHAIN_BYTES:
                    return wire.dumps({"records": blobs, "more": True})
                blobs.append(blob)
                size += len(blob)
        return wire.dumps({"records": blobs, "more": False})

    async def _on_links(self, peer: PeerId, payload: bytes) -> bytes:
        """The link records held at a base (``base``, after a hash) or at each of several
        (``bases``, from the start), of one type or any, cut off at the limits; none at a base
        where the asker's ``have`` digest is that of what is held there."""
        message = wire.loads(payload, {"limit"})
        link_type, limit = message.get("type"), message["limit"]
        if link_type is not None and (
            type(link_type) is not str or not 0 < len(link_type) <= MAX_ENTRY_TYPE_LENGTH
        ):
            raise RemoteProtocolError("a links request's type is an entry type or nil")
        if type(limit) is not int or limit < 1:
            raise RemoteProtocolError("a links request takes a positive limit")
        room = _Room(min(limit, _MAX_CHAIN_BATCH), _MAX_CHAIN_BYTES)
        if "bases" in message:
            parts = [
                self._links_page(base, link_type, None, have, room)
                for base, have in _read_bases(message["bases"])
            ]
            return wire.dumps({"indexes": [{"records": b, "more": m} for b, m in parts]})
        if "base" not in message:
            raise RemoteProtocolError("a links request names its base or bases")
        base, after = _read_base(message["base"]), message.get("after")
        try:
            start = None if after is None else ActionHash.from_bytes(after)
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad links request: {exc}") from exc
        have = _read_have(message.get("have"))
        blobs, more = self._links_page(base, link_type, start, have, room)
        return wire.dumps({"records": blobs, "more": more})

    def _links_page(
        self,
        base: TypedHash,
        link_type: str | None,
        start: ActionHash | None,
        have: bytes | None,
        room: _Room,
    ) -> tuple[list[bytes], bool]:
        """The portable link records held at ``base`` after ``start`` that fit in ``room`` (which
        shrinks by them), and whether more are held; none from the start if ``have`` is the
        digest of all of them (the asker holds the very same)."""
        same = have is not None and have == _links_digest(self._held_links(base, link_type))
        if start is None and same:
            return [], False
        limit = max(0, room.records) + 1
        held = self.store.link_blobs(base, link_type, after=start, limit=limit)
        blobs: list[bytes] = []
        for _hash, blob in held[: room.records]:
            if room.size < 0:  # past the byte limit: the asker pages on
                break
            blobs.append(blob)
            room.size -= len(blob)
        room.records -= len(blobs)
        return blobs, len(blobs) < len(held)

    async def _on_heads(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"heads", "warrants"})
        theirs = _read_heads(message)
        ours = self._heads()
        behind = [a for a, (seq, _h) in theirs.items() if seq > ours.get(a, (-1, b""))[0]]
        if behind:
            self._spawn(self._pull_from, peer, behind)
        known = set(wire.bytes_list(message, "warrants"))
        missing = [w for h, _o, w in self.store.warrants() if h not in known][:100]
        return wire.dumps({"heads": _heads_message(ours), "warrants": missing})

    async def _on_countersign(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"from", "to", "msg"})
        try:
            sender = AgentKey.from_bytes(message["from"])
            to = AgentKey.from_bytes(message["to"])
            inner = cs.decode_message(message["msg"])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad countersigning message: {exc}") from exc
        reply = await self._countersign_inbound(sender, to, inner, peer)
        return wire.dumps({"msg": None if reply is None else cs.encode_message(reply)})

    async def _on_warrant(self, peer: PeerId, payload: bytes) -> bytes:
        message = wire.loads(payload, {"warrant"})
        data = message["warrant"]
        if type(data) is not bytes:
            raise RemoteProtocolError("a warrant is bytes")
        await self._receive_warrant(data, peer)
        return wire.dumps({})

    async def _on_bundle(self, peer: PeerId, payload: bytes) -> bytes:
        """An app bundle by hash, if this node keeps it (the asker checks the bytes' hash)."""
        message = wire.loads(payload, {"hash"})
        try:
            bundle = BundleHash.from_bytes(message["hash"])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad bundle request: {exc}") from exc
        return wire.dumps({"data": self.store.bundle(bundle)})

    async def fetch_bundle(self, bundle: BundleHash) -> bytes:
        """An app bundle's bytes from the first peer whose bytes hash to ``bundle``; kept here.

        Bytes that do not hash to it are refused (and the next peer asked):
        a peer can withhold code, never substitute it. ``NetworkError`` if no
        peer served it.
        """
        refused = []
        for peer in self.transport.connected_peers():
            try:
                reply = await self._request(peer, wire.BUNDLE, {"hash": bundle.to_bytes()})
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("asking %s for bundle %s: %s", peer, bundle.short(), exc)
                continue
            data = reply.get("data")
            if data is None:
                continue
            if type(data) is not bytes or len(data) > MAX_BUNDLE or not verify_bundle(data, bundle):
                log.warning("%s sent bytes that are not bundle %s: refused", peer, bundle.short())
                refused.append(peer)
                continue
            self.store.keep_bundle(bundle, data)
            return data
        wrong = f" ({len(refused)} sent bytes that do not hash to it: refused)" if refused else ""
        raise NetworkError(f"no connected peer served bundle {bundle}{wrong}")

    async def fetch_links(
        self,
        bases: Iterable[TypedHash],
        link_type: str | None = None,
        new: list[Record] | None = None,
    ) -> list[Record]:
        """Bring here the links at ``bases`` (of ``link_type``, or any) that their authorities hold.

        Asks the R peers nearest to each base at once, one ``links`` request per peer for all
        the bases it is an authority of (for a base none of them answered, the next R, and so
        on). Every link record goes in through ``ingest`` after its author's chain is pulled
        from the peer that sent it, and its target (with the target's chain) is fetched if it
        is not held: nothing unjudged is stored. A reply that is malformed or holds a record
        that is not a link at the base it is given for is refused whole, with a log line. The
        link records taken in (also added to ``new`` as they come, for a caller that may cancel).

        A base is fresh for ``settings.links_fresh_us`` after an authority answered for it in
        full: a fetch within that time does not ask about it (what it would bring comes by
        publishing or gossip meanwhile, or at the next fetch after it); a fetch of a base
        already being fetched waits for that fetch.
        """
        taken: list[Record] = [] if new is None else new
        first = len(taken)
        now, window = self.clock(), self.settings.links_fresh_us
        self._links_fetched = {  # forget the bases fetched too long ago
            k: at for k, at in self._links_fetched.items() if 0 <= now - at < window
        }
        todo: dict[_LinkIndex, TypedHash] = {}
        under_way: list[trio.Event] = []
        for base in bases:
            key = (base.to_bytes(), link_type)
            fetched = self._links_fetched.get(key)
            if key in todo or fetched is not None:
                continue
            if key in self._links_fetching:
                under_way.append(self._links_fetching[key])
                continue
            todo[key] = base
            self._links_fetching[key] = trio.Event()
        try:
            if todo:
                await self._ask_authorities(todo, link_type, taken)
        finally:
            for key in todo:
                self._links_fetching.pop(key).set()
        for event in under_way:
            await event.wait()
        got = taken[first:]
        if got:
            log.info("fetched %d links at %d bases from the DHT", len(got), len(todo))
        return got

    async def _ask_authorities(
        self, todo: Mapping[_LinkIndex, TypedHash], link_type: str | None, taken: list[Record]
    ) -> None:
        """Ask each base's authorities, R at a time, until one answers in full (from then on the
        base is fresh). Each round sends each peer one request for all its bases unanswered."""
        peers = [p for p in self.transport.connected_peers() if p != self.transport.peer_id]
        asks: dict[_LinkIndex, _LinksAsk] = {}
        for key, base in todo.items():
            held = self._held_links(base, link_type)
            ranked = authorities(base.raw, peers, len(peers))
            asks[key] = _LinksAsk(key, base, held, _links_digest(held), ranked)
        answered: set[_LinkIndex] = set()
        r = self.settings.replication
        for start in range(0, len(peers), r):
            by_peer: dict[str, list[_LinksAsk]] = {}
            for ask in asks.values():
                if ask.key not in answered:
                    for peer in ask.ranked[start : start + r]:
                        by_peer.setdefault(peer, []).append(ask)
            if not by_peer:
                break
            async with trio.open_nursery() as nursery:
                for peer, its in by_peer.items():
                    for i in range(0, len(its), _MAX_LINK_BASES):
                        chunk = its[i : i + _MAX_LINK_BASES]
                        nursery.start_soon(
                            self._links_from, PeerId(peer), link_type, chunk, answered, taken
                        )

    def _held_links(self, base: TypedHash, link_type: str | None) -> set[ActionHash]:
        """The hashes of the link records held at ``base`` (an index read; nothing decoded)."""
        held: set[ActionHash] = set()
        after: ActionHash | None = None
        while rows := self.store.link_blobs(base, link_type, after=after, limit=_MAX_CHAIN_BATCH):
            held.update(h for h, _blob in rows)
            after = rows[-1][0]
        return held

    async def _links_from(
        self,
        peer: PeerId,
        link_type: str | None,
        asks: list[_LinksAsk],
        answered: set[_LinkIndex],
        taken: list[Record],
    ) -> None:
        """Ask ``peer`` in one request for the links at the bases of ``asks`` and take in those
        not held (a base whose part was cut off is paged on alone); the bases it answered in
        full go into ``answered`` and are fresh from now (even if another authority never
        answers and the caller gives up)."""
        message = {
            "bases": [[ask.base.to_bytes(), ask.have] for ask in asks],
            "type": link_type, "limit": _MAX_CHAIN_BATCH,
        }  # fmt: skip
        try:
            reply = await self._request(peer, wire.LINKS, message)
            parts = _read_links_parts(reply, [ask.base for ask in asks], link_type)
        except NetworkError as exc:
            log.info("asking %s for the links at %d bases: %s", peer, len(asks), exc)
            return
        except RemoteProtocolError as exc:
            log.warning("refused the links at %d bases from %s: %s", len(asks), peer, exc)
            return
        for ask, (records, more) in zip(asks, parts, strict=True):
            await self._take_links(peer, records, ask, taken)
            after = records[-1].hash if records else None
            if not more or await self._links_after(peer, link_type, ask, after, taken):
                answered.add(ask.key)
                self._links_fetched[ask.key] = self.clock()

    async def _links_after(
        self,
        peer: PeerId,
        link_type: str | None,
        ask: _LinksAsk,
        after: ActionHash | None,
        taken: list[Record],
    ) -> bool:
        """Page on through ``peer``'s links at one base from just after ``after`` (single-base
        requests) and take them in; whether it answered to the end."""
        for _page in range(_MAX_LINK_PAGES):
            start = None if after is None else after.to_bytes()
            message = {
                "base": ask.base.to_bytes(), "type": link_type, "after": start,
                "limit": _MAX_CHAIN_BATCH,
            }  # fmt: skip
            try:
                reply = await self._request(peer, wire.LINKS, message)
                records = _read_links(reply, ask.base, link_type, start)
            except NetworkError as exc:
                log.info("asking %s for the links at %s: %s", peer, ask.base.short(), exc)
                return False
            except RemoteProtocolError as exc:
                log.warning("refused the links at %s from %s: %s", ask.base.short(), peer, exc)
                return False
            await self._take_links(peer, records, ask, taken)
            if reply.get("more") is not True or not records:
                return True
            after = records[-1].hash
        return True  # as far as a fetch reads one peer

    async def _take_links(
        self, peer: PeerId, links: list[Record], ask: _LinksAsk, taken: list[Record]
    ) -> None:
        """Ingest link records from ``peer``: their authors' chains first, then each link's target;
        each taken in joins ``ask.held`` and ``taken``.

        Links held by now are skipped (their targets came with them; gossip keeps them fresh).
        """
        held = ask.held
        links = [
            link for link in links if link.hash not in held and self.store.get(link.hash) is None
        ]
        await self._pull_from(peer, sorted({link.action.author for link in links}))
        for link in links:
            verdict = await self.ingest(link, peer)
            if not isinstance(verdict, Valid):
                log.warning("refused link %s from %s: %s", link.hash.short(), peer, verdict)
                continue
            if link.hash not in held:
                held.add(link.hash)
                taken.append(link)
            target = _link_target(link)
            if target is not None and self.store.get(target) is None:
                await self._fetch_needed(_Need(records=(target,)), peer, 0)
                held_target = self.store.get(target)
                if held_target is not None:
                    await self._pull_from(peer, [held_target.action.author])

    async def _receive_warrant(self, data: bytes, peer: PeerId) -> None:
        try:
            warrant = Warrant.from_bytes(data)
        except EncodingError as exc:
            raise RemoteProtocolError(f"a bad warrant: {exc}") from exc
        verdict = check_warrant(warrant, self.engine, self.store)
        if isinstance(verdict, Missing) and warrant.evidence:
            for record in warrant.evidence:
                head = self.store.head(record.action.author)
                if head is None:
                    await self._pull_chain(peer, record.action.author, 0)
            verdict = check_warrant(warrant, self.engine, self.store)
        if isinstance(verdict, Valid):
            self._keep_warrant(warrant)
        else:
            log.warning("refused a warrant from %s: %s", peer, verdict)

    async def _spread_warrant(self, data: bytes) -> None:
        for peer in self.transport.connected_peers():
            try:
                await self._request(peer, wire.WARRANT, {"warrant": data})
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("could not pass a warrant to %s: %s", peer, exc)

    # -- publishing -------------------------------------------------------------------------------------------

    def _targets(self, record: Record) -> list[PeerId]:
        """The R nearest peers other than this node to the record's action hash, to its author
        and, for a link, to its base (whose authorities answer ``links`` for it).

        This node is left out before choosing: were it one of the R nearest to both, only R - 1
        peers would be asked and ``receipts_needed`` (R) could never be met. A base authority's
        receipt counts like any other: a link is published once R peers hold it, as every
        record is; the base authorities are sent it in the same rounds, and one that missed
        it learns it by gossip (every held link is indexed by its base, whoever holds it).
        """
        peers = [p for p in self.transport.connected_peers() if p != self.transport.peer_id]
        r = self.settings.replication
        bases = [record.hash.raw, record.action.author.raw]
        if record.action.kind is ActionKind.LINK and (base := link_base(record.entry)):
            bases.append(base[1:])  # the 32 bytes after the kind byte, as for every basis
        chosen = {peer for basis in bases for peer in authorities(basis, peers, r)}
        return sorted(PeerId(p) for p in chosen)

    def receipts_needed(self) -> int:
        """How many remote receipts make a record published: R, or every peer in a smaller network."""
        return max(1, min(self.settings.replication, len(self.transport.connected_peers())))

    async def _publish_loop(self) -> None:
        while True:
            try:
                await self.publish_pending()
            except ConodeError as exc:
                log.warning("publishing: %s", exc)
            with trio.move_on_after(self.settings.publish_interval):
                await self._publish_now.wait()
            self._publish_now = trio.Event()

    async def publish_pending(self) -> None:
        """Send every record still short of receipts to its authorities that have not answered."""
        if not self.transport.connected_peers():
            return
        batches: dict[PeerId, list[Record]] = {}
        done: list[ActionHash] = []
        for record_hash in self.store.publishing():
            record = self.store.get(record_hash)
            if record is None:
                done.append(record_hash)
                continue
            have = {r.authority for r in self.store.receipts(record_hash)}
            if len(have) >= self.receipts_needed():
                done.append(record_hash)
                continue
            for peer in self._targets(record):
                if self.peer_keys.get(peer) not in have:
                    batches.setdefault(peer, []).append(record)
        self.store.done_publishing(done)
        async with trio.open_nursery() as nursery:
            for peer, records in batches.items():
                nursery.start_soon(self._publish_to, peer, records)

    async def _publish_to(self, peer: PeerId, records: list[Record]) -> None:
        try:
            reply = await self._request(
                peer, wire.PUBLISH, {"records": [r.to_bytes() for r in records]}
            )
        except (NetworkError, RemoteProtocolError) as exc:
            log.info("publishing to %s: %s", peer, exc)
            return
        receipts = [_read_receipt(item) for item in reply.get("receipts") or []]
        self.store.add_receipts(
            [
                receipt
                for receipt in receipts
                if receipt is not None
                and receipt.authority == self.peer_keys.get(peer, receipt.authority)
            ]
        )

    # -- gossip -------------------------------------------------------------------------------------------------

    async def _gossip_loop(self) -> None:
        """Gossip with a random peer every interval, and at once again after hearing news.

        Passing news on as soon as it arrives (rumour mongering) is what makes a
        healed partition converge in a few rounds instead of a few intervals.
        """
        while True:
            with trio.move_on_after(self.settings.gossip_interval * self.rng.uniform(0.5, 1.5)):
                await self._gossip_now.wait()
            self._gossip_now = trio.Event()
            peers = self.transport.connected_peers()
            if peers:
                await self.gossip_with(self.rng.choice(peers))

    async def gossip_with(self, peer: PeerId) -> None:
        """Swap heads and warrants with ``peer`` and pull what it holds further on."""
        try:
            reply = await self._request(
                peer,
                wire.HEADS,
                {
                    "heads": _heads_message(self._heads()),
                    "warrants": [h for h, _o, _w in self.store.warrants()],
                },
            )
            theirs = _read_heads(reply)
            for data in wire.bytes_list(reply, "warrants"):
                await self._receive_warrant(data, peer)
        except (NetworkError, RemoteProtocolError) as exc:
            log.info("gossip with %s: %s", peer, exc)
            return
        ours = self._heads()
        ahead = [
            a
            for a, (seq, h) in theirs.items()
            if seq > ours.get(a, (-1, b""))[0] or (seq == ours[a][0] and h != ours[a][1])
        ]
        await self._pull_from(peer, ahead)

    async def _pull_from(self, peer: PeerId, agents: list[AgentKey]) -> None:
        """Pull these chains from ``peer`` (from the held head on, so a fork there shows)."""
        if not agents:
            return
        wants = {}
        for agent in agents:
            head = self.store.head(agent)
            wants[agent] = 0 if head is None else head.seq
        try:
            news = await self._pull_chains(peer, wants)
        except (NetworkError, RemoteProtocolError) as exc:
            log.info("pulling %d chains from %s: %s", len(wants), peer, exc)
            return
        if news:
            self._gossip_now.set()

    async def _pull_chains(
        self, source: PeerId, wants: dict[AgentKey, int], depth: int = 0
    ) -> bool:
        """Fetch several chains from ``source`` (each from its seq in ``wants``) and ingest them.

        One ``chains`` request a round for all of them, again only if the reply
        was cut off. True if any chain held here grew.
        """
        before = {agent: self._next_seq(agent) for agent in wants}
        while wants:
            reply = await self._request(
                source,
                wire.CHAINS,
                {
                    "chains": [[agent.to_bytes(), seq] for agent, seq in wants.items()],
                    "limit": _MAX_CHAIN_BATCH,
                },
            )
            records = [_decode_record(blob) for blob in wire.bytes_list(reply, "records")]
            last: dict[AgentKey, int] = {}
            for record in records:
                author, seq = record.action.author, record.action.seq
                if author not in wants or seq < max(wants[author], last.get(author, -1) + 1):
                    raise RemoteProtocolError("the peer sent records it was not asked for")
                last[author] = seq
            stopped = await self._ingest_batch(records, source, depth)
            if reply.get("more") is not True or not records:
                break
            # cut off: ask again for the rest, from where each chain's records ended
            wants = {
                agent: last[agent] + 1 if agent in last else seq
                for agent, seq in wants.items()
                if agent not in stopped
            }
        return any(self._next_seq(agent) > seq for agent, seq in before.items())

    async def _ingest_batch(
        self, records: list[Record], source: PeerId, depth: int
    ) -> set[AgentKey]:
        """Ingest records of several chains, each chain's in order; the chains that stopped short.

        A record that needs a record it does not have waits while the other
        chains go on, and is tried again once they have: within a batch what
        one chain needs is usually another chain's earlier record, which may
        come later in the batch. Only what the whole batch did not provide is
        fetched from ``source`` (as ``ingest`` does).
        """
        queues: dict[AgentKey, deque[Record]] = {}
        for record in records:
            queues.setdefault(record.action.author, deque()).append(record)
        stopped: set[AgentKey] = set()
        progress = True
        while progress:
            progress = False
            for author, queue in queues.items():
                while queue:
                    async with self._ingest_lock:
                        outcome = self._apply(queue[0])
                    if isinstance(outcome, _Need):
                        break  # tried again after the other chains moved on
                    queue.popleft()
                    progress = True
                    if not isinstance(outcome, Valid):
                        queue.clear()
                        stopped.add(author)
        for author, queue in queues.items():
            for record in queue:
                if not isinstance(await self.ingest(record, source, depth), Valid):
                    stopped.add(author)
                    break
        return stopped

    def _heads(self) -> dict[AgentKey, tuple[int, bytes]]:
        return {h.author: (h.seq, h.hash.raw) for h in self.store.heads()}

    def heads_digest(self) -> str:
        """A digest of every held chain head and warrant: equal on nodes that have converged."""
        # a warranted agent's chain is frozen where each node saw it: after a fork, honest nodes
        # may each hold another branch, and agree only that the agent is warranted
        warranted = {offender for _h, offender, _w in self.store.warrants()}
        parts = [
            h.author.raw + h.seq.to_bytes(8, "big") + h.hash.raw
            for h in self.store.heads()
            if h.author not in warranted
        ]
        parts += [h for h, _o, _w in self.store.warrants()]
        return ActionHash.of(b"".join(parts)).raw.hex()

    # -- peers ----------------------------------------------------------------------------------------------------

    async def _hello_loop(self) -> None:
        """Keep known peers connected and greeted (so hosts and peers lists stay fresh)."""
        while True:
            connected = set(self.transport.connected_peers())
            for peer_id, addrs, _seen in self.store.known_peers():
                stranger = peer_id not in connected and peer_id != self.transport.peer_id
                if stranger and not await self._dial(addrs):
                    await self._route_to(PeerId(peer_id))
            for peer in self.transport.connected_peers():
                await self.hello(peer)
            await trio.sleep(self.settings.hello_interval)

    async def hello(self, peer: PeerId) -> None:
        """Tell ``peer`` who this node hosts and whom it knows, and learn the same of it."""
        try:
            reply = await self._request(peer, wire.HELLO, self._hello_message())
            self._learn_hello(peer, reply)
        except (NetworkError, RemoteProtocolError) as exc:
            log.info("hello to %s: %s", peer, exc)

    async def connect(self, addr: str) -> PeerId:
        """Connect to a peer and greet it."""
        peer = await self.transport.connect(addr)
        await self.hello(peer)
        return peer

    async def host_of(self, agent: AgentKey) -> PeerId:
        """The peer that hosts ``agent`` (asks every peer once if it is not known yet)."""
        if agent not in self.hosts:
            connected = set(self.transport.connected_peers())
            for peer_id, addrs, _seen in self.store.known_peers():
                if peer_id not in connected and peer_id != self.transport.peer_id:
                    await self._dial(addrs)  # a peer not reconnected yet (after a restart, say)
            for peer in self.transport.connected_peers():
                await self.hello(peer)
        host = self.hosts.get(agent)
        if host is None:
            raise NetworkError(f"no known node hosts {agent.short()}")
        return host

    async def fetch_chain(self, agent: AgentKey) -> int:
        """Bring ``agent``'s chain here from its host or any peer; how many records came."""
        before = self._next_seq(agent)
        peers = [self.hosts[agent]] if agent in self.hosts else []
        peers += [p for p in self.transport.connected_peers() if p not in peers]
        for peer in peers:
            try:
                await self._pull_chain(peer, agent, self._next_seq(agent))
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("fetching the chain of %s from %s: %s", agent.short(), peer, exc)
        return self._next_seq(agent) - before

    # -- payments -----------------------------------------------------------------------------------------------

    async def pay(
        self,
        payer: AgentKey,
        payee: AgentKey,
        amount: int,
        *,
        memo: str = "",
        ref: ActionHash | None = None,
        offer: ActionHash | None = None,
    ) -> PaymentResult:
        """Make a countersigned payment from a hosted agent; wait until it is decided.

        ``offer``: the ``exchange/offer`` (by the payee) the payment buys from.
        """
        started = time.perf_counter()
        hosted = self._hosted(payer)
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            return PaymentResult(False, f"the amount must be a whole number from 1 to {MAX_AMOUNT}")
        if payee == payer:
            return PaymentResult(False, "an agent cannot pay itself")
        if self.store.warranted(payee):
            return PaymentResult(False, f"{payee.short()} is warranted")
        bought = None if offer is None else self.store.get(offer)
        if bought is not None and (
            bought.action.entry_type != EXCHANGE_OFFER or bought.action.author != payee
        ):
            return PaymentResult(False, f"{offer} is not an exchange offer of the payee")
        refusal = self._precheck(payer, -amount)
        if refusal is not None:
            return PaymentResult(False, refusal, elapsed_ms=_ms(started))
        if payee not in self.agents:
            try:
                peer = await self.host_of(payee)
                if (
                    self.store.head(payee) is None
                ):  # its genesis names it; the rest is the payee's to check
                    await self._pull_chain(peer, payee, 0)
            except (NetworkError, RemoteProtocolError) as exc:
                return PaymentResult(
                    False, f"cannot reach the payee: {exc}", elapsed_ms=_ms(started)
                )
        session_id = os.urandom(cs.SESSION_ID_SIZE)
        now = self.clock()
        rules_head = self.rules_head()

        def make_partial(_head: bytes) -> bytes | str:
            state = self.store.activity(payer)
            if state.head is None:
                return "the payer has no chain"
            partial = offer_payment(
                self.charter.network_id,
                state,
                payee,
                amount,
                timestamp=self.clock(),
                memo=memo,
                rules=rules_head,
                ref=ref,
                offer=offer,
            )
            return partial.to_bytes()

        def check_body(partial: bytes, body: bytes) -> str | None:
            offer = PaymentOffer.from_bytes(partial)
            try:
                completed = PaymentBody.from_bytes(body)
            except EncodingError as exc:
                return f"the completed body is malformed: {exc}"
            differs = completion_differs(offer, completed)
            if differs is not None:
                return differs
            credit = completed.payee.prev_credit
            if credit is not None and self.store.get(credit) is None:
                # the payer's record could not be judged (Missing) once the machine had committed
                return "the payee's chain is not held here up to its position"
            sig = hosted.signer.sign(SIG_COUNTERSIGN, body)
            return self._judge_payment(
                hosted, Payment(completed, sig, b"\x00" * 64, body), check_sigs=False
            )

        machine = cs.Initiator(
            cs.SessionId(session_id),
            payee,
            now + self.settings.session_timeout_us,
            make_partial=make_partial,
            check_body=check_body,
            sign=_signs_for(hosted),
            verify_peer=_verifies_for(payee),
        )
        key = session_id + payer.raw
        session = self._sessions[key] = _Session(machine, payer)
        async with session.lock:
            await self._run_effects(key, machine.start(self.clock()), None)
        with trio.move_on_after(
            self.settings.session_timeout_us / 1e6 + self.settings.request_timeout
        ):
            await session.done.wait()
        state = session.machine.state  # the session may have restarted its machine
        if state.phase is cs.Phase.COMMITTED:
            head = self.store.head(payer)
            return PaymentResult(True, "", None if head is None else head.hash, _ms(started))
        return PaymentResult(
            False, state.reason or "the session did not finish", elapsed_ms=_ms(started)
        )

    def _next_seq(self, agent: AgentKey) -> int:
        head = self.store.head(agent)
        return 0 if head is None else head.seq + 1

    def _precheck(self, agent: AgentKey, change: int) -> str | None:
        """Refuse at once what the rules would refuse (a limit): no session is started."""
        rules = self.rules_now()
        state = self.store.activity(agent)
        if state.genesis is None:
            return f"{agent.short()} has no chain here"
        # the hosted agent's own chain pins its genesis, as its position in the payment will
        party = party_at(self.engine, agent, state.genesis, self.clock(), rules, self.store)
        if not isinstance(party, Party):
            return str(party)
        verdict = check_limits(state.balance + change, rules, party)
        return None if isinstance(verdict, Valid) else str(verdict)

    def _judge_payment(
        self, hosted: HostedAgent, payment: Payment, *, check_sigs: bool = True
    ) -> str | None:
        """Why this party's record of ``payment`` would be refused here (None: it would pass)."""
        record = commit_payment(hosted.signer, payment)
        _, offence = step(self.store.activity(hosted.key), record)
        if isinstance(offence, Invalid):
            return str(offence)
        if not check_sigs:
            # the peer's signature is checked by the machine; judge everything else by the rules
            body = payment.body
            return _limits_reason(self, body)
        verdict = self.engine.validate_record(record, self.store)
        return None if isinstance(verdict, Valid) else str(verdict)

    async def _countersign_inbound(
        self, sender: AgentKey, to: AgentKey, message: cs.Message, peer: PeerId | None
    ) -> cs.Message | None:
        """A session message for hosted agent ``to``; the reply to send back, if any."""
        key = message.session_id + to.raw
        session = self._sessions.get(key)
        if session is None:
            if not isinstance(message, cs.Offer):
                if isinstance(message, cs.Accept):
                    return self._late_accept(to, message)
                return None
            refusal = await self._may_answer_offer(sender, to, message, peer)
            if refusal is not None:
                return cs.Decline(message.session_id, refusal)
            session = self._sessions[key] = _Session(
                self._responder(message.session_id, sender, to), to
            )
        if peer is not None and isinstance(session.machine, cs.Initiator):
            await self._hold_payee_chain(message, peer)
        replies: list[cs.Message] = []
        async with session.lock:
            effects = session.machine.handle(cs.Received(self.clock(), message))
            await self._run_effects(key, effects, (sender, replies))
        return replies[-1] if replies else None

    async def _hold_payee_chain(self, message: cs.Message | None, peer: PeerId) -> None:
        """Before an initiator judges an Accept: fetch the payee's chain up to its position."""
        if not isinstance(message, cs.Accept):
            return
        try:
            position = PaymentBody.from_bytes(message.body).payee
        except EncodingError:
            return  # the machine refuses it
        if position.seq > 0 and self.store.hash_at(position.agent, position.seq - 1) is None:
            try:
                await self._pull_chain(peer, position.agent, self._next_seq(position.agent))
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("fetching the payee's chain from %s: %s", peer, exc)

    async def _may_answer_offer(
        self, sender: AgentKey, to: AgentKey, offer: cs.Offer, peer: PeerId | None
    ) -> str | None:
        hosted = self.agents.get(to)
        if hosted is None:
            return "that agent is not hosted here"
        if not hosted.auto_accept:
            return "the payee accepts payments only in person"
        if self.store.warranted(sender):
            return "the payer is warranted"
        try:
            parsed = PaymentOffer.from_bytes(offer.partial)
        except EncodingError as exc:
            return f"a malformed offer: {exc}"
        if parsed.payee != to or parsed.payer.agent != sender:
            return "the offer names other parties"
        credit = parsed.payer.prev_credit
        # its genesis names the payer; its last credit record is needed to commit ours
        missing = self.store.head(sender) is None or (
            credit is not None and self.store.get(credit) is None
        )
        if peer is not None and missing:
            try:
                await self._pull_chain(peer, sender, self._next_seq(sender))
            except (NetworkError, RemoteProtocolError) as exc:
                return f"cannot fetch the payer's chain: {exc}"
        return None

    def _responder(self, session_id: bytes, payer: AgentKey, to: AgentKey) -> cs.Responder:
        hosted = self.agents[to]

        def complete(partial: bytes, _head: bytes) -> bytes | str:
            offer = PaymentOffer.from_bytes(partial)
            if self.store.hash_at(offer.payer.agent, offer.payer.seq) is not None:
                # the payer already used that position (held here): signing would fund a fork
                return "the payer's position in the offer is already taken"
            credit = offer.payer.prev_credit
            if credit is not None and self.store.get(credit) is None:
                # our record could not be judged (Missing) when the Complete comes
                return "the payer's chain is not held here up to its position"
            body = complete_offer(offer, self.store.activity(to))
            if isinstance(body, str):
                return body
            body_bytes = body.to_bytes()
            # judge the payer's record as it will be: the payer's own signature comes later
            reason = _limits_reason(self, body)
            if reason is not None:
                return reason
            check = self._judge_payment(
                hosted,
                Payment(
                    body, b"\x00" * 64, hosted.signer.sign(SIG_COUNTERSIGN, body_bytes), body_bytes
                ),
                check_sigs=False,
            )
            return body_bytes if check is None else check

        return cs.Responder(
            cs.SessionId(session_id),
            payer,
            complete=complete,
            sign=_signs_for(hosted),
            verify_peer=_verifies_for(payer),
            retry_interval=self.settings.retry_interval_us,
        )

    async def _run_effects(
        self,
        key: bytes,
        effects: tuple[cs.Effect, ...],
        reply_to: tuple[AgentKey, list[cs.Message]] | None,
    ) -> None:
        """Carry out a machine's effects in order (the session's lock is held)."""
        session = self._sessions[key]
        agent = session.agent
        for effect in effects:
            _crash_point(session.machine.state.role, "before", effect)
            if isinstance(effect, cs.Lock):
                holder = self._locks.get(agent)
                if holder is not None and holder != key:
                    event: cs.Event = cs.LockRefused(
                        self.clock(), "the chain is busy with another payment"
                    )
                else:
                    self._locks[agent] = key
                    head = self.store.head(agent)
                    event = cs.Locked(self.clock(), b"" if head is None else head.hash.raw)
                await self._run_effects(key, session.machine.handle(event), reply_to)
            elif isinstance(effect, cs.Unlock):
                if self._locks.get(agent) == key:
                    del self._locks[agent]
            elif isinstance(effect, cs.Persist):
                self.store.save_session(key, agent, effect.record.to_bytes())
            elif isinstance(effect, cs.Commit):
                if not await self._commit_session(key, agent, effect.record):
                    await self._commit_failed(key, agent, effect.record)
                    return  # nothing after a failed commit may run: not the Unlock, not the Complete
            elif isinstance(effect, cs.SetTimer):
                self._timers[key] = effect.at
            elif isinstance(effect, cs.CancelTimer):
                self._timers.pop(key, None)
            elif isinstance(effect, cs.SendTo):
                if reply_to is not None and effect.peer == reply_to[0]:
                    reply_to[1].append(effect.message)
                else:
                    await self._send(key, agent, effect)
            elif isinstance(effect, cs.QueryDHT):
                await self._query_dht(key, effect.body)
            elif isinstance(effect, cs.Reject):
                log.warning("countersigning: %s", effect.reason)
            _crash_point(session.machine.state.role, "after", effect)
        if session.machine.done:
            session.done.set()
            self._publish_now.set()
            self._finished.setdefault(key, self.clock())

    async def _send(self, key: bytes, agent: AgentKey, effect: cs.SendTo) -> None:
        """Send a session message; feed the reply (if any) back into the machine."""
        session = self._sessions[key]
        reply: cs.Message | None = None
        if effect.peer in self.agents:
            reply = await self._countersign_inbound(agent, effect.peer, effect.message, None)
        else:
            try:
                peer = await self.host_of(effect.peer)
                answer = await self._request(
                    peer,
                    wire.COUNTERSIGN,
                    {
                        "from": agent.to_bytes(),
                        "to": effect.peer.to_bytes(),
                        "msg": cs.encode_message(effect.message),
                    },
                )
                raw = answer.get("msg")
                reply = None if raw is None else cs.decode_message(raw)
                await self._hold_payee_chain(reply, peer)
            except (NetworkError, RemoteProtocolError, EncodingError) as exc:
                log.info("countersigning message to %s: %s", effect.peer.short(), exc)
        if reply is not None and reply.session_id == key[: cs.SESSION_ID_SIZE]:
            _crash_point(session.machine.state.role, "", "got-reply")
            await self._run_effects(
                key, session.machine.handle(cs.Received(self.clock(), reply)), None
            )

    async def _commit_session(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> bool:
        """Append this party's record of the payment and the COMMITTED session record, atomically.

        False if the rules cannot pass the record here now (a dependency that
        could not be fetched): nothing is written then.
        """
        assert (
            record.body is not None
            and record.own_signature is not None
            and record.peer_signature is not None
        )
        body = PaymentBody.from_bytes(record.body)
        if body.payer.agent == agent:
            payment = Payment(body, record.own_signature, record.peer_signature, record.body)
        else:
            payment = Payment(body, record.peer_signature, record.own_signature, record.body)
        chain_record = commit_payment(self.agents[agent].signer, payment)
        counterparty = body.payee.agent if body.payer.agent == agent else body.payer.agent
        for _attempt in range(3):
            async with self._ingest_lock:
                state, offence = step(self.store.activity(agent), chain_record)
                verdict = (
                    offence
                    if isinstance(offence, Invalid)
                    else self.engine.validate_record(
                        chain_record, self.store, signature_checked=True
                    )
                )
                if isinstance(verdict, Valid):
                    self.store.append(
                        [chain_record],
                        activities={agent: state},
                        sessions={key: (agent, record.to_bytes())},
                        publish=True,
                    )
                    # published once the session is done (``_run_effects``): sent now, it would
                    # have the payee judge our record while it commits its own
                    return True
            if not isinstance(verdict, Missing) or counterparty in self.agents:
                break
            try:  # fetch what is missing from the counterparty's node, then judge again
                need = _Need(
                    records=tuple(d for d in verdict.dependencies if isinstance(d, ActionHash)),
                    agents=tuple(d for d in verdict.dependencies if isinstance(d, AgentKey)),
                )
                await self._fetch_needed(need, await self.host_of(counterparty), 0)
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("fetching what a payment needs: %s", exc)
        log.error("cannot commit payment session %s here yet: %s", key[:4].hex(), verdict)
        return False

    async def _commit_failed(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
        """A decided commit that cannot be written now: never half a payment.

        The initiator has given no signature of its own to anyone yet, so it
        goes back to what it persisted (OFFERED) and restarts from there,
        which aborts durably and tells the payee. The responder gave its
        signature: its chain stays locked and it keeps trying to commit.
        """
        session = self._sessions[key]
        if record.role is cs.Role.INITIATOR:
            offered = next((raw for k, _a, raw in self.store.sessions() if k == key), None)
            if offered is None:
                return
            persisted = cs.SessionRecord.from_bytes(offered)
            session.machine = self._restarted_initiator(agent, persisted)
            await self._run_effects(
                key, session.machine.handle(cs.Restarted(self.clock(), persisted)), None
            )
        else:
            self._spawn(self._retry_commit, key, agent, record)

    def _restarted_initiator(self, agent: AgentKey, record: cs.SessionRecord) -> cs.Initiator:
        """An initiator rebuilt from its persisted record (it decides nothing anew)."""
        return cs.Initiator(
            record.session_id,
            record.peer,
            record.expires_at,
            make_partial=lambda _h: "restarted",
            check_body=lambda _p, _b: "restarted",
            sign=_signs_for(self.agents[agent]),
            verify_peer=_verifies_for(record.peer),
        )

    async def _retry_commit(self, key: bytes, agent: AgentKey, record: cs.SessionRecord) -> None:
        """Keep trying a responder's commit (its chain stays locked) until it is written."""
        while not await self._commit_session(key, agent, record):
            await trio.sleep(self.settings.retry_interval_us / 1e6)
        self._publish_now.set()
        if self._locks.get(agent) == key:
            del self._locks[agent]
        self._timers.pop(key, None)

    async def _query_dht(self, key: bytes, body_bytes: bytes) -> None:
        """Look for the initiator's record at its position, here and at its host."""
        session = self._sessions[key]
        body = PaymentBody.from_bytes(body_bytes)
        payer = body.payer.agent
        if self.store.hash_at(payer, body.payer.seq) is None and payer not in self.agents:
            try:
                peer = await self.host_of(payer)
                await self._pull_chain(peer, payer, self._next_seq(payer))
            except (NetworkError, RemoteProtocolError) as exc:
                log.info("resolving a session: %s", exc)
        held = self.store.hash_at(payer, body.payer.seq)
        answer = cs.DHTAnswered(self.clock())
        if held is not None:
            record = self.store.get(held)
            if record is not None and record.action.entry_type == PAYMENT:
                payment = Payment.from_value(record.entry_value())
                if payment.body_bytes == body_bytes:
                    answer = cs.DHTAnswered(self.clock(), initiator_signature=payment.payer_sig)
                else:
                    answer = cs.DHTAnswered(self.clock(), position_taken=True)
            else:
                answer = cs.DHTAnswered(self.clock(), position_taken=True)
        await self._run_effects(key, session.machine.handle(answer), None)

    async def _timer_loop(self) -> None:
        while True:
            await trio.sleep(0.05)
            now = self.clock()
            for key, at in list(self._timers.items()):
                if now >= at and key in self._sessions:
                    del self._timers[key]
                    session = self._sessions[key]
                    async with session.lock:
                        await self._run_effects(key, session.machine.handle(cs.TimedOut(now)), None)
            self._forget_finished_sessions(now)

    def _forget_finished_sessions(self, now: int) -> None:
        """Drop sessions finished ``_FINISHED_SESSION_KEEP_US`` ago, from memory and from disk.

        Kept, they would grow with every payment ever made (and be resumed at
        every start). A late Accept for one is answered from the chain
        (``_late_accept``). Never dropped: a session whose machine is not done,
        one that holds its agent's chain (a responder still retrying its
        commit), or one whose record on disk is not final.
        """
        due = [key for key, at in self._finished.items() if now - at >= _FINISHED_SESSION_KEEP_US]
        if not due:
            return
        on_disk = {key: raw for key, _agent, raw in self.store.sessions() if key in self._finished}
        holding = set(self._locks.values())
        forget: list[bytes] = []
        for key in due:
            del self._finished[key]
            session = self._sessions.get(key)
            raw = on_disk.get(key)
            if (
                key in holding
                or (session is not None and (not session.machine.done or session.lock.locked()))
                or (raw is not None and cs.SessionRecord.from_bytes(raw).status not in _FINAL)
            ):
                continue
            self._sessions.pop(key, None)
            self._timers.pop(key, None)
            forget.append(key)
        if forget:
            self.store.append([], sessions=dict.fromkeys(forget))

    def _late_accept(self, agent: AgentKey, accept: cs.Accept) -> cs.Message:
        """The answer to an Accept for a session not held here (finished and forgotten, or never).

        If this agent's chain holds the very body accepted, this side committed
        it: answer Complete with its signature from the entry, as the session
        would have. Anything else was never committed here and never will be
        (a session is only forgotten once final): Abort.
        """
        try:
            position = PaymentBody.from_bytes(accept.body).position_of(agent)
        except EncodingError:
            position = None
        held = None if position is None else self.store.hash_at(agent, position.seq)
        record = None if held is None else self.store.get(held)
        if record is not None and record.action.entry_type == PAYMENT and record.entry is not None:
            payment = Payment.from_value(record.entry_value())
            if payment.body_bytes == accept.body:
                own = payment.payer_sig if payment.body.payer.agent == agent else payment.payee_sig
                return cs.Complete(accept.session_id, own)
        return cs.Abort(accept.session_id, "no such session here")

    async def _restart_sessions(self) -> None:
        """Resume every persisted session: the responders that signed hold their chains again."""
        resumed: list[tuple[bytes, cs.SessionRecord]] = []
        finished: list[bytes] = []
        for key, agent, raw in self.store.sessions():
            if len(key) != _SESSION_KEY_SIZE or agent not in self.agents:
                continue
            try:
                record = cs.SessionRecord.from_bytes(raw)
            except EncodingError as exc:
                log.error("a stored session is unreadable: %s", exc)
                continue
            if record.status in _FINAL and record.role is cs.Role.RESPONDER:
                finished.append(key)  # nothing left to do or to answer: forgotten
                continue
            machine: cs.Initiator | cs.Responder
            if record.role is cs.Role.INITIATOR:
                machine = self._restarted_initiator(agent, record)
            else:
                machine = self._responder(record.session_id, record.peer, agent)
                if record.status is cs.Phase.SIGNED:
                    self._locks[agent] = key
            self._sessions[key] = _Session(machine, agent)
            resumed.append((key, record))
        if finished:
            self.store.append([], sessions=dict.fromkeys(finished))
        # every SIGNED chain is held (above) before any session speaks: resuming one awaits the
        # network, and an Offer served meanwhile must find its chain locked
        for key, record in resumed:
            session = self._sessions[key]
            async with session.lock:
                await self._run_effects(
                    key, session.machine.handle(cs.Restarted(self.clock(), record)), None
                )

    # -- bills ----------------------------------------------------------------------------------------------------

    async def bill(
        self, payee: AgentKey, payer: AgentKey, amount: int, *, memo: str = "", expires_in_us: int
    ) -> Record:
        """Ask ``payer`` for ``amount``: a bill record on the payee's chain."""
        genesis = self.store.activity(payer).genesis
        if genesis is None:  # the payer's chain is not held here yet: fetch it from its host
            await self._pull_chain(await self.host_of(payer), payer, 0)
            genesis = self.store.activity(payer).genesis
        if genesis is None:
            raise ValidationError("provenance", f"{payer.short()} has no chain this node can find")
        now = self.clock()
        bill = Bill(payer, genesis, amount, memo, now + expires_in_us, self.rules_head())
        return await self.create_entry(payee, BILL, bill.to_value())

    def bills(self) -> list[dict[str, Any]]:
        """Bills to or from hosted agents, with their status (open, paid, declined, expired)."""
        declined = set()
        for record in self.store.records_of_type(BILL_DECLINE):
            declined.add(BillDecline.from_value(record.entry_value()).bill)
        now = self.clock()
        result = []
        for record in self.store.records_of_type(BILL):
            bill = Bill.from_value(record.entry_value())
            payee = record.action.author
            if payee not in self.agents and bill.payer not in self.agents:
                continue
            paid = record.hash in self.store.activity(bill.payer).bills_paid
            status = (
                "paid"
                if paid
                else "declined"
                if record.hash in declined
                else "expired"
                if now > bill.expires_at
                else "open"
            )
            result.append(
                {
                    "id": str(record.hash),
                    "payee": str(payee),
                    "payee_name": self.name_of(payee),
                    "payer": str(bill.payer),
                    "payer_name": self.name_of(bill.payer),
                    "amount": bill.amount,
                    "memo": bill.memo,
                    "expires_at": bill.expires_at,
                    "status": status,
                }
            )
        return result

    async def accept_bill(self, bill_hash: ActionHash) -> PaymentResult:
        """Pay a bill addressed to a hosted agent."""
        record = self.store.get(bill_hash)
        if record is None or record.action.entry_type != BILL:
            raise ValidationError("bill", f"no bill {bill_hash.short()} is held here")
        bill = Bill.from_value(record.entry_value())
        return await self.pay(
            bill.payer, record.action.author, bill.amount, memo=bill.memo, ref=bill_hash
        )

    async def decline_bill(self, bill_hash: ActionHash) -> Record:
        """Decline a bill addressed to a hosted agent."""
        record = self.store.get(bill_hash)
        if record is None or record.action.entry_type != BILL:
            raise ValidationError("bill", f"no bill {bill_hash.short()} is held here")
        bill = Bill.from_value(record.entry_value())
        return await self.create_entry(bill.payer, BILL_DECLINE, BillDecline(bill_hash).to_value())

    # -- reading ---------------------------------------------------------------------------------------------------

    def name_of(self, agent: AgentKey) -> str:
        """The name an agent's genesis gives it ("?" if its chain is not held)."""
        genesis = self.store.get_genesis(agent)
        if genesis is None:
            return "?"
        try:
            return Genesis.from_value(genesis.entry_value()).name
        except EncodingError:
            return "?"

    def history(self, agent: AgentKey) -> list[dict[str, Any]]:
        """Every payment on ``agent``'s chain, oldest first, with named counterparties."""
        rows = []
        for record in self.store.records(agent):
            if record.action.entry_type != PAYMENT or record.entry is None:
                continue
            body = Payment.from_value(record.entry_value()).body
            outgoing = body.payer.agent == agent
            other = body.payee.agent if outgoing else body.payer.agent
            mine = body.payer if outgoing else body.payee
            rows.append(
                {
                    "seq": record.action.seq,
                    "timestamp": body.timestamp,
                    "direction": "out" if outgoing else "in",
                    "counterparty": str(other),
                    "counterparty_name": self.name_of(other),
                    "amount": -body.amount if outgoing else body.amount,
                    "memo": body.memo,
                    "balance_after": mine.balance_after,
                    "ref": None if body.ref is None else str(body.ref),
                    "offer": None if body.offer is None else str(body.offer),
                    "offer_title": None if body.offer is None else self._title(body.offer),
                    "record": str(record.hash),
                }
            )
        return rows

    def _title(self, action: ActionHash) -> str | None:
        """The ``title`` of a held record's entry (an exchange offer's), if it has one."""
        record = self.store.get(action)
        entry = None if record is None or record.entry is None else record.entry_value()
        title = entry.get("title") if isinstance(entry, dict) else None
        return title if isinstance(title, str) else None

    def status(self) -> dict[str, Any]:
        """What the node is doing: peers, chains, pending, publishing, sessions, warrants."""
        open_sessions = sum(1 for s in self._sessions.values() if not s.machine.done)
        return {
            "peer_id": self.transport.peer_id,
            "listen": self.transport.listen_addrs(),
            "network": str(self.charter.network_id),
            "peers": len(self.transport.connected_peers()),
            "agents": [{"name": a.name, "key": str(a.key)} for a in self.agents.values()],
            "chains": len(self.store.heads()),
            "pending": self.store.pending_count(),
            "publishing": len(self.store.publishing()),
            "sessions": open_sessions,
            "locked_chains": len(self._locks),
            "warrants": len(self.store.warrants()),
            "heads_digest": self.heads_digest(),
        }


def _limits_reason(node: Node, body: PaymentBody) -> str | None:
    """Both parties' balance limits and standing, under the rules in force at the payment's time.

    Judged under the head the payment names and under this node's own newest
    head: an honest node takes no part in a payment its newest rules forbid,
    so it never signs what a stale-rules warrant could be made of. A payment
    by the Foundation must carry out a ratified disbursement: checked before
    either side signs, so a refused one never leaves a chain held.
    """
    for head in dict.fromkeys((body.rules, node.rules_head())):
        rules = node.engine.rules_at(head, body.timestamp, node.store)
        if not isinstance(rules, Rules):
            return f"the rules named are not known here ({rules})"
        parties = []
        for position in (body.payer, body.payee):
            party = party_at(
                node.engine, position.agent, position.genesis, body.timestamp, rules, node.store
            )
            if not isinstance(party, Party):
                return str(party)
            parties.append(party)
            verdict = check_limits(position.balance_after, rules, party)
            if not isinstance(verdict, Valid):
                return str(verdict)
        if head == body.rules and parties[0].role == Role.FOUNDATION:
            spending = check_disbursement(node.engine, body, parties[1].is_coop, node.store)
            if not isinstance(spending, Valid):
                return str(spending)
    for position in (body.payer, body.payee):
        state = node.store.activity(position.agent)
        if (
            state.head is not None
            and position.prev_credit != state.last_credit
            and position.agent in node.agents
        ):
            return "the position does not follow the chain's last payment"
    return None


CRASH_ENV: Final = "CONODE_CRASH_AT"
"""Fault injection for the process tests: ``initiator-after-commit`` (say) makes this process
SIGKILL itself at that step of a payment session, as a power cut would (see ``_crash_point``)."""
_CRASH_AT: Final = frozenset(filter(None, os.environ.get(CRASH_ENV, "").split(",")))


def _crash_point(role: cs.Role, when: str, effect: cs.Effect | str) -> None:
    """Kill this process here if the environment asks for it (see ``CRASH_ENV``).

    Points are ``<role>-<before|after>-<effect>`` around each effect of a
    session (``after-lock`` and ``after-sendto`` come only once the nested
    effects they set off are done: use ``before-`` points to land between
    them), and ``initiator-got-reply``: a reply arrived, not yet handled.
    """
    if _CRASH_AT:
        name = effect if isinstance(effect, str) else type(effect).__name__.lower()
        point = f"{role.name.lower()}-{when}-{name}" if when else f"{role.name.lower()}-{name}"
        if point in _CRASH_AT:
            log.critical("%s=%s: killing this process", CRASH_ENV, point)
            os.kill(os.getpid(), signal.SIGKILL)


def _signs_for(hosted: HostedAgent) -> Callable[[bytes], bytes]:
    """The agent's countersignature over a payment body."""
    return lambda body: hosted.signer.sign(SIG_COUNTERSIGN, body)


def _verifies_for(agent: AgentKey) -> Callable[[bytes, bytes], bool]:
    """Whether a countersignature over a body is ``agent``'s."""
    return lambda body, signature: verify(agent.raw, SIG_COUNTERSIGN, body, signature)


def _decode_record(blob: bytes) -> Record:
    try:
        return Record.from_bytes(blob)
    except EncodingError as exc:
        raise RemoteProtocolError(f"a malformed record: {exc}") from exc


_LINK_BASES: Final = (EntryHash, ActionHash, AgentKey)
"""What a link's base may name: an entry (an anchor), a record, an agent."""


def _read_base(raw: Any) -> TypedHash:
    """A link base from the wire (33 typed-hash bytes); ``RemoteProtocolError`` otherwise."""
    for kind in _LINK_BASES:
        try:
            return kind.from_bytes(raw)
        except EncodingError:
            continue
    raise RemoteProtocolError("a link base is an entry, action or agent hash (33 bytes)")


def _read_have(raw: Any) -> bytes | None:
    """A links request's ``have``: null or a 32-byte digest; ``RemoteProtocolError`` otherwise."""
    if raw is not None and (type(raw) is not bytes or len(raw) != _LINKS_DIGEST_SIZE):
        raise RemoteProtocolError("a links request's have is a 32-byte digest or nil")
    return raw


def _read_bases(raw: Any) -> list[tuple[TypedHash, bytes | None]]:
    """A links request's ``bases``: 1 to 64 ``[base, have]`` pairs."""
    if type(raw) is not list or not 0 < len(raw) <= _MAX_LINK_BASES:
        raise RemoteProtocolError(f"a links request names 1 to {_MAX_LINK_BASES} bases")
    pairs = []
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise RemoteProtocolError("each base of a links request is [base, have]")
        pairs.append((_read_base(item[0]), _read_have(item[1])))
    return pairs


def _read_links_parts(
    reply: dict[str, Any], bases: list[TypedHash], link_type: str | None
) -> list[tuple[list[Record], bool]]:
    """The parts of a reply to a ``links`` request for ``bases``: each base's link records (as
    ``_read_links`` checks them) and whether more are held there."""
    parts = reply.get("indexes")
    if type(parts) is not list or len(parts) != len(bases):
        raise RemoteProtocolError(f"a links reply has one part for each of the {len(bases)} bases")
    read = []
    for base, part in zip(bases, parts, strict=True):
        if type(part) is not dict:
            raise RemoteProtocolError("a part of a links reply is a map")
        read.append((_read_links(part, base, link_type, None), part.get("more") is True))
    total = sum(len(records) for records, _more in read)
    if total > _MAX_CHAIN_BATCH:
        raise RemoteProtocolError(f"{total} records, more than the {_MAX_CHAIN_BATCH} asked")
    return read


def _read_links(
    reply: dict[str, Any], base: TypedHash, link_type: str | None, after: bytes | None
) -> list[Record]:
    """The records of a ``links`` reply, each a link at ``base`` (of ``link_type``) in hash order
    after ``after``; ``RemoteProtocolError`` naming the first that is not."""
    blobs = wire.bytes_list(reply, "records")
    if len(blobs) > _MAX_CHAIN_BATCH:
        raise RemoteProtocolError(f"{len(blobs)} records, more than the {_MAX_CHAIN_BATCH} asked")
    records = [_decode_record(blob) for blob in blobs]
    last = b"" if after is None else after[1:]
    want_base = base.to_bytes()
    for record in records:
        problem = None
        if record.action.kind is not ActionKind.LINK:
            problem = "is not a link"
        elif link_type is not None and record.action.entry_type != link_type:
            problem = f"is a {record.action.entry_type}, not {link_type}"
        elif link_base(record.entry) != want_base:
            problem = f"is not a link at {base.short()}"
        elif record.hash.raw <= last:
            problem = "is out of order or repeated"
        if problem is not None:  # named only then: a reply holds thousands of good ones
            raise RemoteProtocolError(f"record {record.hash.short()} {problem}")
        last = record.hash.raw
    return records


def _link_target(link: Record) -> ActionHash | None:
    """The record a link points at, if its target is an action hash."""
    try:
        value = link.entry_value()
        return ActionHash.from_bytes(value["target"]) if type(value) is dict else None
    except (ValueError, KeyError, EncodingError):
        return None


def _claim_bytes(agent: AgentKey, peer: str, at: int) -> bytes:
    """What an agent signs to say that ``peer`` hosts it, from ``at`` on."""
    return encoding.encode(["conode-host", agent.to_bytes(), peer, at])


def _receipt_bytes(record: ActionHash, valid: bool, at: int) -> bytes:
    return encoding.encode([record.to_bytes(), valid, at])


def _read_receipt(item: Any) -> Receipt | None:
    """A receipt from the wire if its signature verifies, else None."""
    if not (isinstance(item, list) and len(item) == 5):
        return None
    raw_record, valid, at, signature, raw_authority = item
    try:
        record = ActionHash.from_bytes(raw_record)
        authority = AgentKey.from_bytes(raw_authority)
    except (EncodingError, TypeError):
        return None
    if type(valid) is not bool or type(at) is not int or type(signature) is not bytes:
        return None
    if not verify(authority.raw, SIG_RECEIPT, _receipt_bytes(record, valid, at), signature):
        return None
    return Receipt(record, authority, valid, at, signature)


def _heads_message(heads: dict[AgentKey, tuple[int, bytes]]) -> list[list[Any]]:
    return [[agent.to_bytes(), seq, h] for agent, (seq, h) in heads.items()]


def _read_heads(message: dict[str, Any]) -> dict[AgentKey, tuple[int, bytes]]:
    items = message.get("heads")
    if type(items) is not list:
        raise RemoteProtocolError("heads must be a list")
    heads = {}
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and type(item[1]) is int
            and type(item[2]) is bytes
        ):
            raise RemoteProtocolError("a head is [agent, seq, hash]")
        try:
            heads[AgentKey.from_bytes(item[0])] = (item[1], item[2])
        except (EncodingError, TypeError) as exc:
            raise RemoteProtocolError(f"a bad head: {exc}") from exc
    return heads


def _read_chain_want(item: Any) -> tuple[AgentKey, int]:
    """One ``[author, from]`` pair of a chains request."""
    if not (isinstance(item, list) and len(item) == 2 and type(item[1]) is int and item[1] >= 0):
        raise RemoteProtocolError("a chains request names each chain as [author, seq]")
    try:
        return AgentKey.from_bytes(item[0]), item[1]
    except (EncodingError, TypeError) as exc:
        raise RemoteProtocolError(f"a bad chains request: {exc}") from exc


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

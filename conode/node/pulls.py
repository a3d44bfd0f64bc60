"""Pulls: chains and records fetched from a peer and taken in through ingest, in order.

Every fetch of records lands here: the gap ahead of a record or its missing
dependencies (``fetch_needed``, ingest's ``fetch``), one chain from a seq on
(``pull_chain``), several chains in one ``chains`` request a round
(``pull_chains``), records by hash (``pull_records``, reconciliation's way),
and a chain from its authorities, its host or any peer (``fetch_chain``).
Nothing fetched is stored unjudged: every record goes through ``Ingest``.

A dependency of a chain this node does not hold (a counterparty's genesis or
previous credit) is fetched on its own, not with its chain (``must_get``):
from the authorities of the agents the record being judged names (a payment
names both parties), then from the peer that sent that record; it is held
loose, trusted if an authority of its author served it, judged here first if
anyone else did.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from conode.chain import Record
from conode.chain.ops import location, op_locations
from conode.crypto import SIG_ACTION, verify
from conode.dht.messages import MAX_CHAIN_BATCH, ChainRequest, ChainsRequest, FetchRequest, Records
from conode.dht.transport import PeerId
from conode.errors import RemoteProtocolError
from conode.hashes import ActionHash, AgentKey
from conode.node.ingest import Ingest, Need
from conode.node.peer_client import PeerClient, tolerate
from conode.node.ring import Placement
from conode.store import Loose, NodeStore
from conode.validation.governance import GOVERNANCE_TYPES
from conode.validation.verdict import Valid

_ASKED_PER_AGENT = 2
"""Authorities of one named agent asked for a dependency before the next agent's."""

__all__ = ["Pulls"]


class Pulls:
    """Records fetched from peers and taken in through ``ingest``."""

    def __init__(
        self,
        store: NodeStore,
        ingest: Ingest,
        client: PeerClient,
        hosts: Mapping[AgentKey, PeerId],
        news: Callable[[], None],
        placement: Placement,
    ) -> None:
        self.store = store
        self.placement = placement
        self.ingest = ingest
        self.client = client
        self.hosts = hosts
        self.news = news
        """Called when a pull brought something new: gossip passes it on at once."""
        self.batch = MAX_CHAIN_BATCH
        """The most records asked for in one request (the protocol's limit)."""
        ingest.fetch = self.fetch_needed

    def next_seq(self, agent: AgentKey) -> int:
        """The seq the next record of ``agent``'s chain held here will have."""
        head = self.store.head(agent)
        return 0 if head is None else head.seq + 1

    async def fetch_needed(self, need: Need, source: PeerId | None, depth: int) -> bool:
        """Fetch and take in what ``need`` names (from ``source`` or the authorities that hold
        it); False if nothing came."""
        got = False
        if need.chain is not None:
            agent, start = need.chain
            for peer in await self._servers((agent,), source):
                with tolerate("fetching the chain of %s from %s", agent.short(), peer):
                    got |= await self.pull_chain(peer, agent, start, depth + 1)
                    break
        for agent in need.agents:
            got |= await self.must_get_genesis(agent, source, depth + 1)
        if need.records:
            got |= await self.must_get(need.records, need.hints, source, depth + 1)
        return got

    async def _servers(self, agents: Sequence[AgentKey], source: PeerId | None) -> list[PeerId]:
        """Whom to ask for what ``agents``' chains hold: a few of each one's authorities as this
        node knows them (looked up in the background for next time), then ``source``."""
        for agent in agents:
            self.placement.locate_soon(location(agent.raw))
        found: list[PeerId] = []
        for agent in agents:
            found += [
                p for p in self.placement.authorities_of(agent)[:_ASKED_PER_AGENT] if p not in found
            ]
        if source is not None and source not in found:
            found.append(source)
        return found

    async def must_get_genesis(self, agent: AgentKey, source: PeerId | None, depth: int = 0) -> bool:
        """Bring ``agent``'s genesis here: its chain if this node holds it, else the genesis alone,
        held loose; True if it is held now."""
        if self.store.get_genesis(agent) is not None:
            return True
        servers = await self._servers((agent,), source)
        if self.ingest.holds(agent):
            for peer in servers:
                with tolerate("fetching the chain of %s from %s", agent.short(), peer):
                    await self.pull_chain(peer, agent, self.next_seq(agent), depth)
                if self.store.get_genesis(agent) is not None:
                    return True
            return False

        def genesis(reply: Records) -> Record | None:
            found = [r for r in reply.read() if r.action.author == agent and r.action.seq == 0]
            return found[0] if found else None

        while servers:
            answer = await self.client.hedged(
                servers, ChainRequest(agent, 0, 1), lambda _p, reply: genesis(reply) is not None
            )
            if answer is None:
                return False
            peer, reply = answer
            servers.remove(peer)
            record = genesis(reply)
            assert record is not None
            trusted = peer in self.placement.authorities_of(agent)
            await self.ingest.keep(record, Loose.DEPENDENCY, peer, depth, trusted=trusted)
            if self.store.get_genesis(agent) is not None:
                return True
        return False

    async def record_at(self, agent: AgentKey, seq: int, source: PeerId | None) -> Record | None:
        """The record ``agent`` signed at ``seq``, as its authorities (then ``source``) hold it;
        not stored: its author's signature is what shows the position is taken."""
        held = self.store.hash_at(agent, seq)
        if held is not None:
            return self.store.get(held)

        def signed(reply: Records) -> Record | None:
            for record in reply.read():
                action = record.action
                ok = verify(agent.raw, SIG_ACTION, record.action_bytes, record.signature)
                if action.author == agent and action.seq == seq and ok:
                    return record
            return None

        answer = await self.client.hedged(
            await self._servers((agent,), source), ChainRequest(agent, seq, 1),
            lambda _p, reply: signed(reply) is not None,
        )  # fmt: skip
        return None if answer is None else signed(answer[1])

    async def must_get(
        self,
        hashes: Sequence[ActionHash],
        hints: Sequence[AgentKey],
        source: PeerId | None,
        depth: int = 0,
    ) -> bool:
        """Bring records by hash here (``Need.records``): from the authorities of ``hints``'
        chains, then from ``source`` (hedged: the next asked when one is slow); a record of a
        chain this node holds goes in with its chain, any other is held loose. True if any came."""
        wanted = [h for h in hashes if self.store.get(h) is None]
        servers = await self._servers([a for a in hints if a not in self.ingest.agents], source)
        got = False
        while wanted and servers:
            asked = set(wanted)

            def useful(_peer: PeerId, reply: Records, asked: set[ActionHash] = asked) -> bool:
                return any(r.hash in asked for r in reply.read())

            answer = await self.client.hedged(servers, FetchRequest(tuple(wanted)), useful)
            if answer is None:
                break
            peer, reply = answer
            servers.remove(peer)
            for record in reply.read():
                if record.hash not in asked or self.store.get(record.hash) is not None:
                    continue
                author = record.action.author
                if self.ingest.holds(author):
                    with tolerate("fetching the chain of %s from %s", author.short(), peer):
                        head = self.store.head(author)
                        if head is None or head.seq + 1 < record.action.seq:
                            start = 0 if head is None else head.seq + 1
                            await self.pull_chain(peer, author, start, depth)
                    verdict = await self.ingest.ingest(record, peer, depth)
                else:
                    trusted = peer in self.placement.authorities_of(author)
                    verdict = await self.ingest.keep(
                        record, Loose.DEPENDENCY, peer, depth, trusted=trusted
                    )
                got |= isinstance(verdict, Valid)
            wanted = [h for h in wanted if self.store.get(h) is None]
        return got

    async def pull_chain(
        self, source: PeerId, agent: AgentKey, from_seq: int, depth: int = 0
    ) -> bool:
        """Fetch ``agent``'s chain from ``from_seq`` from ``source`` and ingest it in order.

        True if the chain held here grew (records already held do not count). A chain this
        node does not hold is held loose instead (as dependencies): True if any record is new
        (``Ingest.hold_chain`` first to hold it whole for a while).
        """
        if not self.ingest.holds(agent):
            return await self._pull_loose(source, agent, from_seq, depth)
        before = self.next_seq(agent)
        while True:
            reply = await self.client.ask(source, ChainRequest(agent, from_seq, self.batch))
            records = reply.read()
            for record in records:
                if record.action.author != agent:
                    raise RemoteProtocolError("the peer sent a record of another chain")
                verdict = await self.ingest.ingest(record, source, depth)
                if not isinstance(verdict, Valid):
                    return self.next_seq(agent) > before
            if len(records) < self.batch:
                return self.next_seq(agent) > before
            from_seq += len(records)

    async def _pull_loose(self, source: PeerId, agent: AgentKey, from_seq: int, depth: int) -> bool:
        """``agent``'s records from ``from_seq`` held loose, trusted if ``source`` is its authority."""
        trusted = source in self.placement.authorities_of(agent)
        got = False
        while True:
            reply = await self.client.ask(source, ChainRequest(agent, from_seq, self.batch))
            records = reply.read()
            for record in records:
                if record.action.author != agent:
                    raise RemoteProtocolError("the peer sent a record of another chain")
                new = self.store.get(record.hash) is None
                verdict = await self.ingest.keep(record, Loose.DEPENDENCY, source, depth, trusted=trusted)
                if not isinstance(verdict, Valid):
                    return got
                got |= new
            if len(records) < self.batch:
                return got
            from_seq += len(records)

    async def pull_records(self, source: PeerId, hashes: Sequence[ActionHash]) -> bool:
        """Records by hash that ``source`` holds and this node should (reconciliation's ``need``),
        taken in each chain's in order; True if any chain held here grew."""
        got = False
        for start in range(0, len(hashes), self.batch):
            reply = await self.client.ask(source, FetchRequest(tuple(hashes[start : start + self.batch])))
            records = sorted(reply.read(), key=lambda r: (r.action.author, r.action.seq))
            chains = [r for r in records if self.ingest.holds(r.action.author)]
            before = {r.action.author: self.next_seq(r.action.author) for r in chains}
            await self._ingest_batch(chains, source, 0)
            got |= any(self.next_seq(agent) > seq for agent, seq in before.items())
            arc = self.placement.arc()
            for record in records:
                links_here = any(arc.contains(loc) for loc in op_locations(record)[1:])
                if record in chains or not links_here or self.store.get(record.hash) is not None:
                    continue  # a link held at its base on this arc; nothing else is held loose here
                got |= isinstance(await self.ingest.keep(record, Loose.LINK, source), Valid)
        if got:
            self.news()
        return got

    async def pull_globals(self, source: PeerId, hashes: Sequence[ActionHash]) -> bool:
        """Governance records by hash from ``source``, each judged and held (in its chain if this
        node holds it, else loose for good); True if any is new."""
        got = False
        for start in range(0, len(hashes), self.batch):
            reply = await self.client.ask(source, FetchRequest(tuple(hashes[start : start + self.batch])))
            for record in sorted(reply.read(), key=lambda r: (r.action.timestamp, r.hash)):
                if record.action.entry_type not in GOVERNANCE_TYPES or self.store.get(record.hash):
                    continue
                if self.ingest.holds(record.action.author):
                    head = self.store.head(record.action.author)
                    start_seq = 0 if head is None else head.seq + 1
                    await self.pull_chain(source, record.action.author, start_seq)
                    got |= self.store.get(record.hash) is not None
                else:
                    got |= isinstance(await self.ingest.keep(record, Loose.GLOBAL, source), Valid)
        return got

    async def pull_from(self, peer: PeerId, agents: Sequence[AgentKey]) -> None:
        """Pull these chains from ``peer`` (from the held head on, so a fork there shows), of those
        this node holds."""
        agents = [agent for agent in agents if self.ingest.holds(agent)]
        if not agents:
            return
        wants = {}
        for agent in agents:
            head = self.store.head(agent)
            wants[agent] = 0 if head is None else head.seq
        news = False
        with tolerate("pulling %d chains from %s", len(wants), peer):
            news = await self.pull_chains(peer, wants)
        if news:
            self.news()

    async def pull_chains(
        self, source: PeerId, wants: dict[AgentKey, int], depth: int = 0
    ) -> bool:
        """Fetch several chains from ``source`` (each from its seq in ``wants``) and ingest them.

        One ``chains`` request a round for all of them, again only if the reply
        was cut off. True if any chain held here grew.
        """
        before = {agent: self.next_seq(agent) for agent in wants}
        while wants:
            reply = await self.client.ask(source, ChainsRequest(tuple(wants.items()), self.batch))
            records = reply.read()
            last: dict[AgentKey, int] = {}
            for record in records:
                author, seq = record.action.author, record.action.seq
                if author not in wants or seq < max(wants[author], last.get(author, -1) + 1):
                    raise RemoteProtocolError("the peer sent records it was not asked for")
                last[author] = seq
            stopped = await self._ingest_batch(records, source, depth)
            if not reply.more or not records:
                break
            # cut off: ask again for the rest, from where each chain's records ended
            wants = {
                agent: last[agent] + 1 if agent in last else seq
                for agent, seq in wants.items()
                if agent not in stopped
            }
        return any(self.next_seq(agent) > seq for agent, seq in before.items())

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
                    outcome = await self.ingest.try_now(queue[0])
                    if isinstance(outcome, Need):
                        break  # tried again after the other chains moved on
                    queue.popleft()
                    progress = True
                    if not isinstance(outcome, Valid):
                        queue.clear()
                        stopped.add(author)
        for author, queue in queues.items():
            for record in queue:
                if not isinstance(await self.ingest.ingest(record, source, depth), Valid):
                    stopped.add(author)
                    break
        return stopped

    async def fetch_chain(self, agent: AgentKey) -> int:
        """Bring ``agent``'s whole chain here (an audit), held for a while whatever this node's
        arc, from its authorities, its host or any peer; how many records came."""
        self.ingest.hold_chain(agent)
        before = self.next_seq(agent)
        await self.placement.locate_agent(agent)
        me = self.client.transport.peer_id
        peers = [p for p in self.placement.authorities_of(agent) if p != me]
        host = self.hosts.get(agent)
        # a restored node's own claims name itself as the host: never ask itself
        if host is not None and host != me and host not in peers:
            peers.append(host)
        peers += [p for p in self.client.peers() if p not in peers]
        for peer in peers:
            with tolerate("fetching the chain of %s from %s", agent.short(), peer):
                await self.pull_chain(peer, agent, self.next_seq(agent))
        return self.next_seq(agent) - before

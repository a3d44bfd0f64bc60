"""Pulls: chains and records fetched from a peer and taken in through ingest, in order.

Every fetch of records lands here: the gap ahead of a record or its missing
dependencies (``fetch_needed``, ingest's ``fetch``), one chain from a seq on
(``pull_chain``), several chains in one ``chains`` request a round
(``pull_chains``, gossip's way), and a chain from its host or any peer
(``fetch_chain``). Nothing fetched is stored unjudged: every record goes
through ``Ingest``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from conode.chain import Record
from conode.dht.messages import MAX_CHAIN_BATCH, ChainRequest, ChainsRequest, FetchRequest
from conode.dht.transport import PeerId
from conode.errors import RemoteProtocolError
from conode.hashes import AgentKey
from conode.node.ingest import Ingest, Need
from conode.node.peer_client import PeerClient, tolerate
from conode.store import NodeStore
from conode.validation.verdict import Valid

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
    ) -> None:
        self.store = store
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

    async def fetch_needed(self, need: Need, source: PeerId, depth: int) -> bool:
        """Fetch and ingest what ``need`` names from ``source``; False if nothing came."""
        got = False
        with tolerate("fetching from %s failed", source):
            if need.chain is not None:
                got |= await self.pull_chain(source, need.chain[0], need.chain[1], depth + 1)
            for agent in need.agents:
                got |= await self.pull_chain(source, agent, 0, depth + 1)
            if need.records:
                reply = await self.client.ask(source, FetchRequest(need.records))
                for record in reply.read():
                    # a dependency on another chain: make sure that chain is held up to it
                    author = record.action.author
                    head = self.store.head(author)
                    if head is None or head.seq + 1 < record.action.seq:
                        start = 0 if head is None else head.seq + 1
                        await self.pull_chain(source, author, start, depth + 1)
                    verdict = await self.ingest.ingest(record, source, depth + 1)
                    got |= isinstance(verdict, Valid)
        return got

    async def pull_chain(
        self, source: PeerId, agent: AgentKey, from_seq: int, depth: int = 0
    ) -> bool:
        """Fetch ``agent``'s chain from ``from_seq`` from ``source`` and ingest it in order.

        True if the chain held here grew (records already held do not count).
        """
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

    async def pull_from(self, peer: PeerId, agents: Sequence[AgentKey]) -> None:
        """Pull these chains from ``peer`` (from the held head on, so a fork there shows)."""
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
        """Bring ``agent``'s chain here from its host or any peer; how many records came."""
        before = self.next_seq(agent)
        host = self.hosts.get(agent)
        # a restored node's own claims name itself as the host: never ask itself
        peers = [host] if host is not None and host != self.client.transport.peer_id else []
        peers += [p for p in self.client.peers() if p not in peers]
        for peer in peers:
            with tolerate("fetching the chain of %s from %s", agent.short(), peer):
                await self.pull_chain(peer, agent, self.next_seq(agent))
        return self.next_seq(agent) - before

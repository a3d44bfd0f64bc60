"""Exchange search over the DHT's link indexes, on real nodes on the in-memory network.

Every offer is indexed by an ``exchange/category`` link whose base is its
category's anchor; the link is published to that base's authorities too, and
they answer ``links`` for it. A node that missed an offer (partitioned while
it was posted, gossip made too slow to bring it) finds it with a category
search and with a text search: the search reads the indexes in scope first,
takes in the links with their chains, then searches what it holds. A
``local`` search does not. A Byzantine peer that answers ``links`` with
garbage, forged or misplaced records gets nothing stored, and the search
still answers from what is held. Under trio's ``MockClock``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import greet, trio_clock, wait_until

from conode.apphost import AppCatalog, AppHost, AppPlan, NodeAppAPI
from conode.apps.exchange import app
from conode.apps.exchange.entries import category_anchor
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.chain import sign_record
from conode.chain.ops import location
from conode.crypto import Signer
from conode.dht import wire
from conode.dht.arcs import RING, location_candidates
from conode.dht.memnet import MemoryNetwork
from conode.dht.ringview import Place
from conode.dht.transport import PeerId, protocol_id
from conode.errors import NetworkError
from conode.hashes import ActionHash, TypedHash
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore
from conode.testing.network import FAST, TestNetwork, derive_signer, make_charter
from conode.validation.charter import AppPin

SEED = "links"
CATEGORIES = ["food/bakery", "food/dairy", "tools", "crafts/pottery", "crafts/textiles"]


@dataclasses.dataclass
class Exchange:
    """Nodes that each host one co-op and run the exchange (as ``conode run`` does)."""

    net: TestNetwork
    hosts: list[AppHost]

    def api(self, i: int) -> NodeAppAPI:
        return self.hosts[i].api("exchange")

    async def post(self, i: int, title: str, category: str, description: str = "") -> ActionHash:
        """Co-op ``i`` offers something; the offer's hash."""
        posted = await app.functions["offer-add"](
            self.api(i), title=title, category=category, price=100, unit="each", quantity=5,
            description=description,
        )  # fmt: skip
        return ActionHash.parse(posted["hash"])

    async def search(self, i: int, **params: Any) -> list[ActionHash]:
        """The offers node ``i``'s ``offer-search`` finds, best first."""
        found = await app.functions["offer-search"](self.api(i), **params)
        return [ActionHash.parse(item["hash"]) for item in found]

    async def quiet_gossip(self) -> None:
        """Gossip and reconcile every 10 000 s from now on: only publishing, ``links`` and a
        node meeting a neighbour anew move records."""
        for node in self.net.nodes:
            node.settings = dataclasses.replace(
                node.settings, gossip_interval=10_000.0, reconcile_interval=10_000.0
            )
        await trio.sleep(2)  # each gossip loop ends its short wait and starts a long one

    def lacking(self, *posters: int) -> list[int]:
        """The nodes (posters left out) that hold none of the posters' chains: not on their arcs."""
        keys = [self.net.agents[f"coop{i}"] for i in posters]
        return [
            k
            for k, node in enumerate(self.net.nodes)
            if k not in posters and not any(node.placement.holds_chain(key) for key in keys)
        ]

    async def published(self) -> None:
        await wait_until(lambda: not any(node.store.publishing() for node in self.net.nodes))


@asynccontextmanager
async def exchange_network(
    directory: Path, nodes: int, settings: NodeSettings = FAST
) -> AsyncIterator[Exchange]:
    """``nodes`` converged nodes whose charter pins the exchange with a category tree."""
    pin = AppPin("exchange", app.version, installed_apps()["exchange"].bundle_hash())
    coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(nodes)]
    charter = make_charter(coops, replication=settings.replication, apps=(pin,))
    params = dataclasses.replace(
        charter.params, app_config={"exchange": {"categories": CATEGORIES}}
    )
    charter = dataclasses.replace(charter, params=params)
    running = {"exchange": app}
    net = TestNetwork(MemoryNetwork(seed=5), charter, [])
    hosts = []
    try:
        async with trio.open_nursery() as nursery:
            for i, (name, signer) in enumerate(coops):
                coop = HostedAgent(name, signer)
                node = Node(
                    store=NodeStore.open(directory / f"node{i}.db"), charter=charter,
                    transport=net.memnet.transport(f"node{i}"),
                    node_signer=derive_signer(SEED, f"node{i}"), agents=[coop],
                    settings=settings, clock=trio_clock, apps=NodeApps(running),
                )  # fmt: skip
                net.nodes.append(node)
                net.agents[name] = coop.key
                net.home[name] = node
                await net.start_node(nursery, node)
                await net.genesis(node, coop, [])
                plan = AppPlan((), running, NodeApps(running))
                hosts.append(AppHost(node, AppCatalog(node.store, charter, {}), plan))
            for node in net.nodes[1:]:
                await node.connect(net.nodes[0].transport.listen_addrs()[0])
            await net.converge()
            yield Exchange(net, hosts)
            nursery.cancel_scope.cancel()
    finally:
        for node in net.nodes:
            node.store.close()


# -- (a) a node that missed offers finds them through the indexes ------------------------------------------


async def test_a_node_that_missed_offers_finds_them_by_category_and_by_text_through_the_dht(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with exchange_network(tmp_path, 10) as ex:
        await ex.quiet_gossip()
        a, b = ex.lacking(0, 1)[:2]  # with R = 3 of 10 nodes, most hold neither poster's chain
        names = {f"node{k}" for k in range(10)}
        memnet = ex.net.memnet
        memnet.partition(names - {f"node{a}", f"node{b}"}, {f"node{a}"}, {f"node{b}"})
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        saw = await ex.post(1, "Hand saw", "tools", "a rip saw for timber")
        await app.functions["offer-renew"](ex.api(1), offer=saw, quantity=9)  # after its link
        await ex.published()
        # a and b are back with the others but not with each other: what one fetches (and the
        # gossip its news sets off) cannot reach the other
        memnet.partition(names - {f"node{b}"}, names - {f"node{a}"})
        await trio.sleep(5)  # hellos reconnect them; nothing gossips; neither holds the chains
        by_category, by_text = ex.net.nodes[a], ex.net.nodes[b]
        for node in (by_category, by_text):
            assert node.store.get(bread) is None and node.store.get(saw) is None

        assert await ex.search(a, category="food", local=True) == []
        assert await ex.search(a, category="food") == [bread]
        assert by_category.store.validated(bread)
        assert [r.hash for r in by_category.store.links(category_anchor("food/bakery"))]
        assert await ex.search(a, category="food", local=True) == [bread]  # held now

        assert await ex.search(b, text="saw", local=True) == []
        assert await ex.search(b, text="saw") == [saw]  # no category: the whole tree is read
        assert by_text.store.validated(saw)
        assert by_text.store.validated(bread)  # the whole tree: bakery too
        coop1 = ex.net.agents["coop1"]  # the target's chain came whole, the renewal too
        assert by_text.store.head(coop1) == ex.net.nodes[1].store.head(coop1)
        (found,) = await app.functions["offer-search"](ex.api(b), text="saw", local=True)
        assert found["quantity"] == 9
        assert found["author_name"] == by_text.name_of(coop1) != "?"  # the seller, by name


# -- links go to their base's authorities ----------------------------------------------------------------


async def test_a_link_is_published_to_the_authorities_of_its_base(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with exchange_network(tmp_path, 6, dataclasses.replace(FAST, replication=1)) as ex:
        await ex.quiet_gossip()
        poster = ex.net.nodes[0]
        by_peer = {node.transport.peer_id: node for node in ex.net.nodes}
        base_only = 0
        for category in CATEGORIES:
            offer = await ex.post(0, f"Something in {category}", category)
            await ex.published()
            (link,) = [
                r for r in poster.store.links(category_anchor(category)) if _target(r) == offer
            ]
            base = location(category_anchor(category).raw)
            (authority,) = poster.placement.view.authorities(base)  # R = 1: one holder
            holder = by_peer[PeerId(authority)]
            assert link.hash in {r.hash for r in holder.store.links(category_anchor(category))}
            base_only += authority not in poster.placement.view.authorities(
                location(link.action.author.raw)
            )
        assert base_only  # at least one holder was sent the link only as its base's authority


def _target(link: Any) -> ActionHash:
    return ActionHash.from_bytes(link.entry_value()["target"])


# -- (b) a Byzantine peer answering links ----------------------------------------------------------------


async def test_links_replies_that_are_garbage_forged_or_misplaced_store_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with exchange_network(tmp_path, 2) as ex:
        honest, asker = ex.net.nodes
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        await ex.net.converge()
        await ex.quiet_gossip()
        rogue = ex.net.memnet.transport("rogue")
        async with trio.open_nursery() as nursery:
            await nursery.start(rogue.run)
            await rogue.connect(asker.transport.listen_addrs()[0])
            await greet(rogue, asker)  # a conode peer: links are asked of those only
            ex.net.memnet.partition({"node0"}, {"node1", "rogue"})  # the rogue is all it asks
            tools = await ex.post(0, "Hand saw", "tools")  # held by node 0 only
            await trio.sleep(1)
            assert asker.store.get(tools) is None

            bakery = category_anchor("food/bakery")
            (genuine,) = honest.store.links(bakery)
            tools_anchor = category_anchor("tools")
            (elsewhere,) = honest.store.links(tools_anchor)
            head = honest.store.head(ex.net.agents["coop0"])
            assert head is not None
            forged_action = dataclasses.replace(
                genuine.action, seq=head.seq + 1, prev=head.hash, timestamp=head.timestamp + 1
            )
            forged = sign_record(Signer(bytes([9]) * 32), forged_action, genuine.entry)
            offer = honest.store.get(bread)
            assert offer is not None

            def parts(
                part: Any, page: Any = None, only: bytes | None = None
            ) -> Callable[[dict[str, Any]], bytes]:
                """The rogue answers ``part`` for every base it is asked about (``only`` that one)
                but tools (nothing there: the one it may hold), and nothing for the others;
                ``page`` (or ``part``) to a request paging on."""

                def answer(request: dict[str, Any]) -> bytes:
                    if "bases" not in request:
                        return wire.dumps(part if page is None else page)
                    empty = {"records": [], "more": False}
                    asked = [base for base, _have in request["bases"]]
                    wrong = [b != tools_anchor.to_bytes() and only in (None, b) for b in asked]
                    return wire.dumps({"indexes": [part if w else empty for w in wrong]})

                return answer

            def raw(data: bytes) -> Callable[[dict[str, Any]], bytes]:
                return lambda _request: data

            replies: list[tuple[str, Callable[[dict[str, Any]], bytes]]] = [
                ("malformed", raw(b"\xc1")),
                ("one part for each", raw(wire.dumps({"indexes": []}))),
                ("is a map", parts("junk")),
                ("malformed", parts({"records": [b"junk"], "more": False})),
                ("more than the 2000 asked", parts({"records": [b"x"] * 2_001, "more": False})),
                ("is not a link", parts({"records": [offer.to_bytes()]})),
                ("is not a link at", parts({"records": [elsewhere.to_bytes()]})),
                (
                    "refused link",
                    parts({"records": [forged.to_bytes()], "more": False}, only=bakery.to_bytes()),
                ),
                (  # cut off with nothing: the asker pages on alone, and gets garbage
                    "is not a link",
                    parts({"records": [], "more": True}, page={"records": [offer.to_bytes()]}),
                ),
            ]
            answer: list[Callable[[dict[str, Any]], bytes]] = []

            async def on_links(_peer: PeerId, payload: bytes) -> bytes:
                return answer[0](wire.loads(payload, set()))

            rogue.set_handler(protocol_id(asker.network_short, wire.LINKS), on_links)
            # every search asks again, so each reply is tried whatever the last one answered
            asker.settings = dataclasses.replace(asker.settings, links_fresh_us=0)
            for expected, reply in replies:
                answer[:] = [reply]
                before = asker.heads_digest()
                caplog.clear()
                assert await ex.search(1, category="food") == [bread]  # from what is held
                assert await ex.search(1, text="saw") == []
                assert asker.heads_digest() == before, expected
                assert asker.store.get(tools) is None and asker.store.get(forged.hash) is None
                assert [r.hash for r in asker.store.links(bakery)] == [genuine.hash]
                assert asker.store.pending_count() == 0, expected
                assert any(expected in r.getMessage() for r in caplog.records), expected
                assert asker.store.warrants() == []
            nursery.cancel_scope.cancel()


# -- (c) repeated searches: the freshness window, one fetch at a time, the have digest ---------------------


LinksRequests = list[tuple[PeerId, list[bytes]]]
"""Each ``links`` request a node sent: to which peer, for which bases."""


def count_links_requests(ex: Exchange, i: int, monkeypatch: pytest.MonkeyPatch) -> LinksRequests:
    """Every ``links`` request node ``i`` sends from now on, in order."""
    node = ex.net.nodes[i]
    links_protocol = protocol_id(node.network_short, wire.LINKS)
    send = node.transport.request
    sent: LinksRequests = []

    async def request(peer: PeerId, protocol: str, payload: bytes, *, timeout: float) -> bytes:
        if protocol == links_protocol:
            message = wire.loads(payload, set())
            many = message.get("bases")
            sent.append((peer, [message["base"]] if many is None else [b for b, _h in many]))
        return await send(peer, protocol, payload, timeout=timeout)

    monkeypatch.setattr(node.transport, "request", request)
    return sent


def bases_asked(requests: LinksRequests) -> list[bytes]:
    return [base for _peer, bases in requests for base in bases]


def tree_anchors() -> set[bytes]:
    nodes = {"/".join(c.split("/")[:i]) for c in CATEGORIES for i in (1, 2)}
    return {category_anchor(c).to_bytes() for c in nodes}


async def test_a_search_within_the_freshness_window_asks_no_peer_and_one_after_it_asks_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with exchange_network(tmp_path, 10) as ex:
        await ex.quiet_gossip()
        k = ex.lacking(0)[0]  # a node that does not hold the poster's chain
        searcher = ex.net.nodes[k]
        window_s = searcher.settings.links_fresh_us / 1_000_000
        sent = count_links_requests(ex, k, monkeypatch)
        assert await ex.search(k, text="rye") == []
        assert set(bases_asked(sent)) == tree_anchors()  # no category: every index of the tree
        peers = [peer for peer, _bases in sent]
        assert len(peers) == len(set(peers)) <= 9  # each authority once, for all its bases
        first = len(sent)

        memnet = ex.net.memnet
        memnet.partition({f"node{i}" for i in range(10) if i != k}, {f"node{k}"})
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        await ex.published()
        memnet.heal()
        await trio.sleep(5)  # hellos reconnect it; nothing gossips
        assert searcher.store.get(bread) is None
        assert await ex.search(k, text="rye") == []  # within the window: what it holds
        assert await ex.search(k, text="rye", category="food") == []
        assert len(sent) == first  # no index asked again

        await trio.sleep(window_s)
        assert await ex.search(k, text="rye", category="food") == [bread]
        food = {category_anchor(c).to_bytes() for c in ("food", "food/bakery", "food/dairy")}
        assert set(bases_asked(sent[first:])) == food  # the window passed: asked again
        again = len(sent)
        assert await ex.search(k, text="rye") == [bread]
        assert set(bases_asked(sent[again:])) == tree_anchors() - food  # food's just refreshed


async def test_two_searches_at_once_ask_each_index_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with exchange_network(tmp_path, 3) as ex:
        await ex.quiet_gossip()
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        await ex.published()
        sent = count_links_requests(ex, 2, monkeypatch)
        found: list[list[ActionHash]] = []

        async def search() -> None:
            found.append(await ex.search(2, text="rye"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(search)
            nursery.start_soon(search)
        assert found == [[bread], [bread]]
        peers = len(ex.net.nodes) - 1  # fewer than R: every peer is every base's authority
        assert len(sent) == peers
        assert sorted(bases_asked(sent)) == sorted(list(tree_anchors()) * peers)


def links_digest(hashes: list[ActionHash]) -> bytes:
    """The ``have`` digest as docs/protocol.md defines it (written out here, not imported)."""
    data = b"".join(sorted(h.to_bytes() for h in hashes))
    return hashlib.blake2b(data, digest_size=32, person=b"conode-links").digest()


async def test_a_peer_answers_links_with_nothing_when_the_have_digest_matches_what_it_holds(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with exchange_network(tmp_path, 2) as ex:
        holder = ex.net.nodes[0]
        for title in ("Rye sourdough", "Spelt loaf", "Barm cake"):
            await ex.post(0, title, "food/bakery")
        bakery = category_anchor("food/bakery")
        held = [r.hash for r in holder.store.links(bakery)]
        assert len(held) == 3
        asker = ex.net.memnet.transport("asker")
        async with trio.open_nursery() as nursery:
            await nursery.start(asker.run)
            await asker.connect(holder.transport.listen_addrs()[0])
            protocol = protocol_id(holder.network_short, wire.LINKS)

            async def links(**extra: Any) -> list[bytes]:
                message = {"base": bakery.to_bytes(), "type": None, "after": None, "limit": 100}
                reply = await asker.request(
                    holder.transport.peer_id, protocol, wire.dumps({**message, **extra}), timeout=2
                )
                return wire.bytes_list(wire.loads(reply, {"records"}), "records")

            assert await links(have=links_digest(held)) == []
            assert len(await links(have=links_digest(held[:2]))) == 3  # it holds one more
            assert len(await links(have=links_digest([]))) == 3
            assert len(await links()) == 3  # an asker that sends no digest is served as before

            async def indexes(*bases: list[Any]) -> list[int]:
                message = {"bases": list(bases), "type": None, "limit": 100}
                reply = await asker.request(
                    holder.transport.peer_id, protocol, wire.dumps(message), timeout=2
                )
                parts = wire.loads(reply, {"indexes"})["indexes"]
                return [len(part["records"]) for part in parts]

            dairy = category_anchor("food/dairy").to_bytes()
            assert await indexes([bakery.to_bytes(), links_digest(held)], [dairy, None]) == [0, 0]
            assert await indexes([bakery.to_bytes(), links_digest([])], [dairy, None]) == [3, 0]
            assert await indexes([dairy, None], [bakery.to_bytes(), None]) == [0, 3]
            with pytest.raises(NetworkError):  # refused: no answer
                await links(have=b"short")
            nursery.cancel_scope.cancel()


async def missed_offer(ex: Exchange) -> ActionHash:
    """Node 0 posts an offer while node 2 is cut off, and node 2 comes back without it."""
    await ex.quiet_gossip()
    memnet = ex.net.memnet
    memnet.partition({"node0", "node1"}, {"node2"})
    bread = await ex.post(0, "Rye sourdough", "food/bakery")
    await ex.published()
    memnet.heal()
    await trio.sleep(5)  # hellos reconnect it; nothing gossips
    assert ex.net.nodes[2].store.get(bread) is None
    return bread


def silent_name(node: Node, base: TypedHash) -> str:
    """A peer name with a place that would make it the nearest holder of ``base`` that ``node``
    knows; ``node`` is told that place (the peer itself never says it: it runs no node)."""
    loc = location(base.raw)
    nearest = node.placement.view.ring().authorities(loc)[0]
    upto = (node.placement.view.place_of(nearest) or node.placement.place).loc
    assert upto is not None
    for i in range(10_000):
        for candidate in location_candidates(f"silent{i}"):
            if 0 < (upto - candidate) % RING <= (upto - loc) % RING:  # in [loc, upto)
                node.placement.hear(PeerId(f"silent{i}"), Place(candidate))
                return f"silent{i}"
    raise AssertionError("no silent name found")


async def test_a_base_whose_nearest_authority_does_not_answer_is_asked_of_the_next(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with exchange_network(tmp_path, 3, dataclasses.replace(FAST, replication=1)) as ex:
        bread = await missed_offer(ex)
        searcher = ex.net.nodes[2]
        bakery = category_anchor("food/bakery")
        (next_nearest,) = searcher.placement.view.authorities(location(bakery.raw))[:1]
        name = silent_name(searcher, bakery)
        silent = ex.net.memnet.transport(name)  # no links handler: it never answers one
        async with trio.open_nursery() as nursery:
            await nursery.start(silent.run)
            await silent.connect(searcher.transport.listen_addrs()[0])
            # a conode peer that answers no links request, at the place the searcher heard of
            await greet(silent, searcher, searcher.placement.view.place_of(PeerId(name)))
            sent = count_links_requests(ex, 2, monkeypatch)
            assert await ex.search(2, category="food/bakery") == [bread]
            assert sent == [(name, [bakery.to_bytes()]), (next_nearest, [bakery.to_bytes()])]
            nursery.cancel_scope.cancel()


async def test_a_base_one_authority_answered_is_fresh_though_another_never_answers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with exchange_network(tmp_path, 3, dataclasses.replace(FAST, replication=2)) as ex:
        bread = await missed_offer(ex)
        searcher = ex.net.nodes[2]
        # it waits for a request longer than a search waits for the network
        searcher.settings = dataclasses.replace(searcher.settings, request_timeout=60.0)
        bakery = category_anchor("food/bakery")
        silent = ex.net.memnet.transport(silent_name(searcher, bakery))
        async with trio.open_nursery() as nursery:
            await nursery.start(silent.run)
            await silent.connect(searcher.transport.listen_addrs()[0])
            await greet(silent, searcher)  # a conode peer that answers no links request
            sent = count_links_requests(ex, 2, monkeypatch)
            assert await ex.search(2, category="food/bakery") == [bread]  # gave up on the silent
            assert len(sent) == 2  # the silent peer and the next nearest, at once
            assert await ex.search(2, category="food/bakery") == [bread]
            assert len(sent) == 2  # fresh: the next nearest answered in full
            nursery.cancel_scope.cancel()


# -- what a search shows stays held --------------------------------------------------------------------


async def test_a_chain_whose_offer_searches_keep_showing_is_held_while_they_do_and_shed_after(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    keep_us = 20_000_000
    settings = dataclasses.replace(FAST, dependency_keep_us=keep_us, links_fresh_us=1_000_000)
    async with exchange_network(tmp_path, 5, settings) as ex:
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        await ex.published()
        k = ex.lacking(0)[0]  # a node whose arc leaves the poster's chain out
        searcher, coop0 = ex.net.nodes[k], ex.net.agents["coop0"]
        assert await ex.search(k, text="rye") == [bread]  # fetched with its chain, held a while
        assert searcher.store.head(coop0) is not None
        # the user searches again and again, each time shown the offer (each search finds the
        # index as held here: nothing to fetch), past the time the first search's hold ends
        for _ in range(4):
            await trio.sleep(keep_us / 1e6 / 2)
            assert searcher.store.head(coop0) is not None, "shed while searches showed it"
            assert await ex.search(k, text="rye") == [bread]
        # once no search shows it, the chain goes when its hold ends (reconciliation rounds
        # every second shed it once the chain's authorities hold it)
        await trio.sleep(2 * keep_us / 1e6)
        assert searcher.store.head(coop0) is None
        assert searcher.store.get(bread) is None

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
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from netkit import trio_clock, wait_until

from conode.apphost import AppCatalog, AppHost, AppPlan, NodeAppAPI
from conode.apps.exchange import app
from conode.apps.exchange.entries import category_anchor
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.chain import sign_record
from conode.crypto import Signer
from conode.dht import wire
from conode.dht.memnet import MemoryNetwork
from conode.dht.routing import authorities
from conode.dht.transport import PeerId, protocol_id
from conode.hashes import ActionHash
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
        """Gossip every 10 000 s from now on: only publishing and ``links`` move records."""
        for node in self.net.nodes:
            node.settings = dataclasses.replace(node.settings, gossip_interval=10_000.0)
        await trio.sleep(2)  # each gossip loop ends its short wait and starts a long one

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
    async with exchange_network(tmp_path, 5) as ex:
        await ex.quiet_gossip()
        memnet = ex.net.memnet
        memnet.partition({"node0", "node1", "node2"}, {"node3"}, {"node4"})
        bread = await ex.post(0, "Rye sourdough", "food/bakery")
        saw = await ex.post(1, "Hand saw", "tools", "a rip saw for timber")
        await app.functions["offer-renew"](ex.api(1), offer=saw, quantity=9)  # after its link
        await ex.published()
        # 3 and 4 are back with the others but not with each other: what one fetches (and the
        # gossip its news sets off) cannot reach the other
        memnet.partition({"node0", "node1", "node2", "node3"}, {"node0", "node1", "node2", "node4"})
        await trio.sleep(5)  # hellos reconnect them; nothing gossips
        by_category, by_text = ex.net.nodes[3], ex.net.nodes[4]
        for node in (by_category, by_text):
            assert node.store.get(bread) is None and node.store.get(saw) is None

        assert await ex.search(3, category="food", local=True) == []
        assert await ex.search(3, category="food") == [bread]
        assert by_category.store.validated(bread)
        assert [r.hash for r in by_category.store.links(category_anchor("food/bakery"))]
        assert await ex.search(3, category="food", local=True) == [bread]  # held now

        assert await ex.search(4, text="saw", local=True) == []
        assert await ex.search(4, text="saw") == [saw]  # no category: the whole tree is read
        assert by_text.store.validated(saw)
        assert by_text.store.validated(bread)  # the whole tree: bakery too
        coop1 = ex.net.agents["coop1"]  # the target's chain came whole, the renewal too
        assert by_text.store.head(coop1) == ex.net.nodes[1].store.head(coop1)
        (found,) = await app.functions["offer-search"](ex.api(4), text="saw", local=True)
        assert found["quantity"] == 9


# -- links go to their base's authorities ----------------------------------------------------------------


async def test_a_link_is_published_to_the_authorities_of_its_base(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with exchange_network(tmp_path, 6, dataclasses.replace(FAST, replication=1)) as ex:
        await ex.quiet_gossip()
        poster = ex.net.nodes[0]
        peers = [p for p in poster.transport.connected_peers() if p != poster.transport.peer_id]
        by_peer = {node.transport.peer_id: node for node in ex.net.nodes}
        base_only = 0
        for category in CATEGORIES:
            offer = await ex.post(0, f"Something in {category}", category)
            await ex.published()
            (link,) = [
                r for r in poster.store.links(category_anchor(category)) if _target(r) == offer
            ]
            (authority,) = authorities(category_anchor(category).raw, peers, 1)
            holder = by_peer[PeerId(authority)]
            assert link.hash in {r.hash for r in holder.store.links(category_anchor(category))}
            others = authorities(link.hash.raw, peers, 1) + authorities(poster.key.raw, peers, 1)
            others += authorities(link.action.author.raw, peers, 1)
            base_only += authority not in others
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
            replies: list[tuple[str, bytes]] = [
                ("malformed", b"\xc1"),
                ("malformed", wire.dumps({"records": [b"junk"], "more": False})),
                (
                    "more than the 2000 asked",
                    wire.dumps({"records": [b"x"] * 2_001, "more": False}),
                ),
                ("is not a link", wire.dumps({"records": [offer.to_bytes()]})),
                ("is not a link at", wire.dumps({"records": [elsewhere.to_bytes()]})),
                ("refused link", wire.dumps({"records": [forged.to_bytes()], "more": False})),
            ]
            answer: list[bytes] = []

            async def on_links(_peer: PeerId, payload: bytes) -> bytes:
                if wire.loads(payload, set())["base"] == tools_anchor.to_bytes():
                    return wire.dumps({"records": [], "more": False})  # the one it may hold
                return answer[0]

            rogue.set_handler(protocol_id(asker.network_short, wire.LINKS), on_links)
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

"""The ``links`` request over real libp2p: a node that joined after an offer was published (and
gossips too rarely to have pulled it) finds it through the category's index, in one process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import app
from conode.apps.exchange.entries import CATEGORY_LINK, category_anchor
from conode.apps.hosting import NodeApps
from conode.apps.loader import installed_apps
from conode.chain import ActionKind, author_record
from conode.dht.libp2p_transport import Libp2pTransport
from conode.hashes import ActionHash
from conode.node import HostedAgent, Node, NodeSettings
from conode.store import NodeStore
from conode.testing.network import derive_signer, make_charter
from conode.validation.activity import Activity, step
from conode.validation.charter import AppPin, Charter
from conode.validation.entries import Genesis, Role

SEED = "p2p-links"
QUIET = NodeSettings(
    replication=3,
    request_timeout=3.0,
    gossip_interval=10_000.0,  # only publishing and links move records in this test
    publish_interval=0.3,
    hello_interval=0.3,
)


async def wait_for(check: Callable[[], object], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.05)


def coop_node(tmp_path: Path, charter: Charter, i: int, bootstrap: list[str]) -> Node:
    """Node ``i``, hosting co-op ``i`` (its genesis already in its store), on a libp2p host."""
    coop = HostedAgent(f"coop{i}", derive_signer(SEED, f"coop{i}"))
    founding = charter.founding_coop(coop.key)
    assert founding is not None
    genesis = Genesis(charter.network_id, Role.COOP, founding.legal_name, founding.registration)
    record = author_record(
        coop.signer, None, kind=ActionKind.GENESIS, timestamp=2, entry=genesis.to_value()
    )
    store = NodeStore.open(tmp_path / f"node{i}.db")
    store.append([record], activities={coop.key: step(Activity(), record)[0]})
    running = {"exchange": app}
    return Node(
        store=store, charter=charter, node_signer=derive_signer(SEED, f"node{i}"),
        transport=Libp2pTransport(
            derive_signer(SEED, f"node{i}").seed, bootstrap=bootstrap, gossip=False
        ),
        agents=[coop], settings=QUIET, apps=NodeApps(running),
    )  # fmt: skip


async def test_a_late_node_fetches_an_offer_through_its_category_index_over_libp2p(
    tmp_path: Path,
) -> None:
    pin = AppPin("exchange", app.version, installed_apps()["exchange"].bundle_hash())
    coops = [(f"coop{i}", derive_signer(SEED, f"coop{i}")) for i in range(3)]
    charter = make_charter(coops, apps=(pin,))
    plan = AppPlan((), {"exchange": app}, NodeApps({"exchange": app}))
    started: list[Node] = []
    try:
        async with trio.open_nursery() as nursery:
            poster = coop_node(tmp_path, charter, 0, [])
            await nursery.start(poster.run)
            started.append(poster)
            holder = coop_node(tmp_path, charter, 1, poster.transport.listen_addrs()[:1])
            await nursery.start(holder.run)
            started.append(holder)
            await wait_for(lambda: poster.transport.connected_peers())
            host = AppHost(poster, AppCatalog(poster.store, charter, {}), plan)
            posted = await app.functions["offer-add"](
                host.api("exchange"), title="Rye sourdough", category="food/bakery", price=350,
                unit="loaf", quantity=40,
            )  # fmt: skip
            offer = ActionHash.parse(posted["hash"])
            await wait_for(lambda: not poster.store.publishing())  # the holder receipted it all
            assert holder.store.validated(offer)

            late = coop_node(tmp_path, charter, 2, poster.transport.listen_addrs()[:1])
            await nursery.start(late.run)
            started.append(late)
            await wait_for(lambda: poster.transport.peer_id in late.client.peers())  # greeted
            assert late.store.get(offer) is None
            search = app.functions["offer-search"]
            late_api = AppHost(late, AppCatalog(late.store, charter, {}), plan).api("exchange")
            assert await search(late_api, category="food/bakery", local=True) == []
            found = await search(late_api, category="food/bakery")
            assert [item["hash"] for item in found] == [str(offer)]
            assert late.store.validated(offer)
            (link,) = late.store.links(category_anchor("food/bakery"), CATEGORY_LINK)
            assert late.store.validated(link.hash)
            nursery.cancel_scope.cancel()
    finally:
        for node in started:
            node.store.close()

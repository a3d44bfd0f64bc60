"""A publishing backlog on the in-memory network: sent a page a request, and every record receipted.

A co-op's node posts offers while it is cut off from its only peer, so its
publishing queue holds hundreds of records when the partition heals. Each
round used to read the whole queue and send all of it in one ``publish``
request; once a backlog took the peer longer than the request timeout to
take in, no receipt ever came back, the queue only grew and every record
authored cost a read of all of it (1.3 s an offer with 14 000 queued, in
``bench/web.py``'s fill). Under trio's ``MockClock``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import trio
import trio.testing
from netkit import trio_clock, wait_until

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import app as exchange
from conode.apps.hosting import NodeApps
from conode.dht.messages import PublishRequest
from conode.node.publishing import PUBLISH_PAGE
from conode.testing import FAST
from conode.testing.network import TestNetwork

RUNNING = {"exchange": exchange}
OFFERS = 100  # each an offer and its category link: 200 records, over three pages


async def test_a_backlog_is_published_a_page_a_request_and_every_record_gets_its_receipt(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=1, apps=("exchange",), clock=trio_clock
    ) as net:
        node, peer = net.nodes
        host = AppHost(
            node, AppCatalog(node.store, net.charter, {}), AppPlan((), RUNNING, NodeApps(RUNNING))
        )
        await wait_until(lambda: node.store.publishing_count() == 0)
        sent: list[int] = []
        ask = node.client.ask

        async def counting_ask(to: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(request, PublishRequest):
                sent.append(len(request.records))
            return await ask(to, request, *args, **kwargs)

        node.client.ask = counting_ask  # type: ignore[method-assign]
        net.memnet.partition({"node0"}, {"node1"})
        api = host.api("exchange")
        for i in range(OFFERS):
            await exchange.functions["offer-add"](
                api, title=f"loaf {i}", category="food", price=100, unit="each", quantity=1,
                agent=net.agents["coop0"],
            )  # fmt: skip
        queued = node.store.publishing_page(None, 10 * OFFERS)
        assert len(queued) == node.store.publishing_count() >= 2 * OFFERS > 3 * PUBLISH_PAGE
        assert not sent  # nobody to send to while cut off

        net.memnet.heal()
        await wait_until(lambda: node.store.publishing_count() == 0)
        assert sent and max(sent) <= PUBLISH_PAGE, sent
        receipted_by = {node.peer_keys[peer.transport.peer_id]}
        for record in queued:
            assert {r.authority for r in node.store.receipts(record.hash)} == receipted_by
            assert peer.store.get(record.hash) is not None


async def test_a_record_leaves_the_queue_as_soon_as_its_last_needed_receipt_is_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Published means the receipts it needs are held: the record is off the queue then, not a
    publishing round later (here a round every 30 s, so a record authored now is sent at once,
    ``Publishing.soon``, and the next round is far off)."""
    slow_rounds = dataclasses.replace(FAST, publish_interval=30.0)
    async with TestNetwork.start(
        tmp_path, nodes=4, members=1, settings=slow_rounds, clock=trio_clock
    ) as net:
        node = net.nodes[0]
        await wait_until(lambda: all(n.placement.placed for n in net.nodes), 300)
        await wait_until(lambda: all(n.store.publishing_count() == 0 for n in net.nodes), 300)
        coop, other = net.agents["coop0"], net.agents["coop1"]
        record = await node.bill(coop, other, 5, expires_in_us=3_600_000_000)
        needed = node.publishing._needed(record)
        assert needed >= 1

        def receipted() -> int:
            return len({r.authority for r in node.store.receipts(record.hash)})

        await wait_until(lambda: receipted() >= needed, 25)  # within the first round's replies
        assert record.hash not in node.store.publishing()

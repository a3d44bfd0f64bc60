"""Pushed want notices: nodes on the in-memory network, each with the exchange hosted as
``conode run`` hosts it (``AppHost`` and its watch task), under trio's ``MockClock``.

Co-op 1's member (node 1) wants bread; co-op 0 (node 0) offers bread and, beside it, something
no one wants. Node 1's watcher keeps exactly one notice in the member's inbox, with no function
called by anyone; a restart neither loses nor repeats it, and offers node 1 stored but had not
watched, or that arrived while it was down, are noticed after it starts again. A watcher that
fails is logged and stops neither ingest nor the other watchers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from netkit import restart_node, trio_clock, wait_until

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import OFFER, WANT, app, listings, notices
from conode.apps.hosting import NodeApps
from conode.apps.sdk import AppAPI
from conode.chain import Record
from conode.hashes import ActionHash
from conode.node import Node
from conode.store import NodeStore
from conode.testing.network import TestNetwork

RUNNING = {"exchange": app}
WANTER = "coop1-m0"
LONDON = "51.5074,-0.1278"


class Hosted:
    """A node's ``AppHost`` with its watch task running in a cancel scope of its own."""

    def __init__(self, node: Node, net: TestNetwork) -> None:
        plan = AppPlan((), RUNNING, NodeApps(RUNNING))
        self.node = node
        self.host = AppHost(node, AppCatalog(node.store, net.charter, {}), plan)
        self.scope = trio.CancelScope()

    async def start(self, nursery: trio.Nursery) -> None:
        async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with self.scope:
                await self.host.watch(task_status=task_status)

        await nursery.start(watch)

    @property
    def api(self) -> AppAPI:
        return self.host.api("exchange")


def inbox_keys(node: Node) -> list[str]:
    """The notices kept in the exchange's state on ``node``, read from the store itself."""
    return [key for key, _ in node.store.app_state("exchange").items("notice/")]


def watched_through(node: Node, entry_type: str) -> bool:
    """The node's watchers of ``entry_type`` have been called with every such record it holds."""
    rows = node.store.records_after(0, [entry_type], 10_000)
    raw = node.store.get_meta(f"app_watch/{entry_type}")
    return bool(rows) and raw is not None and int.from_bytes(raw, "big") >= rows[-1][0]


def holds(node: Node, *hashes: str) -> Callable[[], bool]:
    return lambda: all(node.store.get(ActionHash.parse(h)) is not None for h in hashes)


async def offer(hosted: Hosted, net: TestNetwork, title: str, category: str = "food/bakery",
                description: str = "", coop: str = "coop0") -> str:  # fmt: skip
    posted = await app.functions["offer-add"](
        hosted.api, title=title, category=category, price=350, unit="loaf", quantity=100,
        description=description, location="51.52,-0.10", agent=net.agents[coop],
    )  # fmt: skip
    return str(posted["hash"])


async def want(hosted: Hosted, net: TestNetwork) -> str:
    wanted = await app.functions["want-add"](
        hosted.api, title="Sourdough for the cafe", category="food", price=400, unit="loaf",
        quantity=30, location=LONDON, radius_km=25, agent=net.agents[WANTER],
    )  # fmt: skip
    await trio.sleep(1)  # what is posted next is newer (the mock clock stands still otherwise)
    return str(wanted["hash"])


def notice_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "conode.apps.exchange" and r.levelno == logging.INFO
    ]


@asynccontextmanager
async def exchange_net(tmp_path: Path) -> AsyncIterator[tuple[TestNetwork, trio.Nursery]]:
    async with (
        TestNetwork.start(
            tmp_path, nodes=2, members=1, apps=("exchange",), clock=trio_clock
        ) as net,
        trio.open_nursery() as nursery,
    ):
        await net.converge()
        yield net, nursery
        nursery.cancel_scope.cancel()


async def test_a_matching_offer_from_another_node_puts_one_notice_in_the_wanters_inbox_unasked(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conode.apps.exchange")
    async with exchange_net(tmp_path) as (net, nursery):
        node0, node1 = net.nodes
        seller, wanter = Hosted(node0, net), Hosted(node1, net)
        await seller.start(nursery)
        await wanter.start(nursery)
        older = await offer(seller, net, "Sourdough starter", description="for bread at home")
        await wait_until(holds(node1, older))
        await trio.sleep(1)
        wanted = await want(wanter, net)
        unwanted = await offer(seller, net, "Bicycle repair", category="services/repair")
        matching = await offer(seller, net, "Sourdough bread", description="baked daily")

        await wait_until(holds(node1, wanted, older, unwanted, matching))
        await wait_until(lambda: watched_through(node1, OFFER) and watched_through(node1, WANT))
        assert inbox_keys(node1) == [f"notice/{net.agents[WANTER]}/{wanted}/{matching}"]
        assert inbox_keys(node0) == []  # no agent of node 0 wants anything
        assert len(notice_lines(caplog)) == 1 and "Sourdough bread" in notice_lines(caplog)[0]

        (told,) = app.functions["inbox"](wanter.api, agent=net.agents[WANTER])
        assert (told["want"], told["offer"]["hash"], told["read"]) == (wanted, matching, False)
        # the inbox holds what the pull view computes: an offer older than the want is in neither
        records = [r for t in (OFFER, WANT) for r in node1.store.records_of_type(t)]
        pulled = notices(listings(records).values(), [net.agents[WANTER]], node1.clock())
        assert [(str(n.want.hash), str(n.offer.hash)) for n in pulled] == [(wanted, matching)]

        # the watcher reads only the hosted agents' wants, through the store's index
        member = net.agents[WANTER]
        assert [r.hash for r in wanter.api.records(WANT, authors=[member])] == [
            ActionHash.parse(wanted)
        ]
        assert wanter.api.records(WANT, authors=[net.agents["coop0"]]) == []
        assert wanter.api.records(WANT, authors=[]) == []
        assert len(wanter.api.records(OFFER)) == 3

        # watching the same records again (a crash before the cursor moved) keeps nothing twice
        node1.store.set_meta(f"app_watch/{OFFER}", (0).to_bytes(8, "big"))
        assert await wanter.host.watch_new() >= 3
        assert len(inbox_keys(node1)) == 1 and len(notice_lines(caplog)) == 1


async def test_a_restart_neither_loses_nor_repeats_a_notice_and_notices_what_it_missed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with exchange_net(tmp_path) as (net, nursery):
        node0, node1 = net.nodes
        seller, wanter = Hosted(node0, net), Hosted(node1, net)
        await seller.start(nursery)
        await wanter.start(nursery)
        wanted = await want(wanter, net)
        first = await offer(seller, net, "Sourdough bread")
        await wait_until(lambda: len(inbox_keys(node1)) == 1)
        (kept,) = node1.store.app_state("exchange").items("notice/")

        # stored while the watcher did not run (as before the hook existed): watched at start
        wanter.scope.cancel()
        stored_unwatched = await offer(seller, net, "Rye sourdough", category="food/bakery/rye")
        await wait_until(holds(node1, stored_unwatched))
        node1.scope.cancel()  # type: ignore[attr-defined]
        await trio.testing.wait_all_tasks_blocked()
        assert len(inbox_keys(node1)) == 1
        # and one made while node 1 was down: it reaches node 1 after the restart
        while_down = await offer(seller, net, "Spelt sourdough")
        restarted = await restart_node(net, nursery, node1)
        again = Hosted(restarted, net)
        await again.start(nursery)

        await net.converge()
        await wait_until(lambda: watched_through(restarted, OFFER))
        member = net.agents[WANTER]
        assert inbox_keys(restarted) == sorted(
            f"notice/{member}/{wanted}/{o}" for o in (first, stored_unwatched, while_down)
        )
        assert (f"notice/{member}/{wanted}/{first}", kept[1]) in (
            restarted.store.app_state("exchange").items("notice/")
        )  # the first notice is the one kept before the restart, untouched
        told = app.functions["inbox"](again.api, agent=member)
        assert len(told) == 3 and not any(n["read"] for n in told)


async def test_a_failing_watcher_is_logged_and_stops_neither_ingest_nor_the_other_watchers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(api: AppAPI, record: Record) -> None:
        seen.append(str(record.hash))
        raise RuntimeError("a bug in a watcher")

    app.watchers[OFFER].insert(0, broken)  # called first, before the exchange's own watcher
    try:
        async with exchange_net(tmp_path) as (net, nursery):
            node0, node1 = net.nodes
            seller, wanter = Hosted(node0, net), Hosted(node1, net)
            await seller.start(nursery)
            await wanter.start(nursery)
            wanted = await want(wanter, net)
            first = await offer(seller, net, "Sourdough bread")
            second = await offer(seller, net, "Sourdough loaves")
            await wait_until(holds(node1, first, second))
            await wait_until(lambda: watched_through(node1, OFFER))
            assert {first, second} <= set(seen)
            member = net.agents[WANTER]
            assert inbox_keys(node1) == sorted(
                f"notice/{member}/{wanted}/{o}" for o in (first, second)
            )
            failures = [
                r for r in caplog.records
                if r.levelno == logging.ERROR and "a bug in a watcher" in str(r.exc_info)
            ]  # fmt: skip
            assert len(failures) == 4  # both offers, on both nodes
            await net.converge()  # ingest and gossip went on
    finally:
        app.watchers[OFFER].remove(broken)


def test_watching_a_type_the_app_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="no type 'parcel'"):
        app.watch("parcel")


async def test_app_state_adds_once_replaces_and_lists_by_prefix_per_app(tmp_path: Path) -> None:
    with NodeStore.open(tmp_path / "node.db") as store:
        mine, theirs = store.app_state("exchange"), store.app_state("lookout")
        assert mine.add("notice/a/1", {"read": False})
        assert not mine.add("notice/a/1", {"read": True})  # kept once: the first value stays
        assert mine.get("notice/a/1") == {"read": False}
        mine.put({"notice/a/1": {"read": True}, "notice/a/2": {"read": False}, "notice/b": 1})
        assert mine.items("notice/a/") == [
            ("notice/a/1", {"read": True}),
            ("notice/a/2", {"read": False}),
        ]
        assert [k for k, _ in mine.items()] == ["notice/a/1", "notice/a/2", "notice/b"]
        assert theirs.items() == [] and theirs.get("notice/a/1") is None
        with pytest.raises(ValueError):
            mine.add("", 1)
        with pytest.raises(ValueError):
            mine.put({"big": b"x" * (64 << 10)})
        assert mine.get("big") is None  # a refused write loses nothing and keeps nothing
    with NodeStore.open(tmp_path / "node.db") as store:  # durable across opening the file again
        assert store.app_state("exchange").get("notice/a/2") == {"read": False}

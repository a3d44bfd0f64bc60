"""What the web page shows and does, over two real nodes on the in-memory network.

Payments and bills in plain words (a refusal says why, in major units), a
vote that counts, the history's filter, statement, chart and CSV, the
exchange's buy link, the lookout, live events for a payment that arrives,
and payments that keep committing while the page is served under load.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
import trio
from conftest import SiteNet

import conode.web.apppages as apppages
from conode.web.port import NodeEvent


def flashes(text: str) -> list[str]:
    return re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', text)


async def test_a_payment_is_made_and_told_in_plain_words(site_net: SiteNet) -> None:
    ana = await site_net.logged_in("ana")
    await ana.get("/pay")
    await ana.post("/pay", {"to": "coop1-m0 (coop1 Ltd)", "amount": "1,25", "memo": "bread"})
    page = await ana.get("/pay")
    assert flashes(ana.text(page)) == ["Paid 1.25 CXT to coop1-m0."]
    home = ana.text(await ana.get("/"))
    assert "\u22121.25 CXT" in home  # the balance, in major units
    assert "bread" in home  # among the latest payments


async def test_a_refused_payment_says_why_with_the_numbers(site_net: SiteNet) -> None:
    ana = await site_net.logged_in("ana")
    await ana.get("/pay")
    await ana.post("/pay", {"to": "coop1-m0", "amount": "26.70"})  # member limit: 5.00 CXT
    text = ana.text(await ana.get("/pay"))
    assert flashes(text) == [
        "Refused: coop0-m0 would go 21.70 CXT below the credit limit of 5.00 CXT."
    ]
    assert site_net.adapter.history(site_net.net.agents["coop0-m0"]) == []


async def test_a_typed_amount_that_is_not_one_is_refused_without_paying(site_net: SiteNet) -> None:
    ana = await site_net.logged_in("ana")
    await ana.get("/pay")
    for typed in ("", "abc", "-1", "1.234", "0"):
        await ana.post("/pay", {"to": "coop1-m0", "amount": typed})
        (message,) = flashes(ana.text(await ana.get("/pay")))
        assert "is not an amount" in message, typed
    await ana.post("/pay", {"to": "nobody at all", "amount": "1"})
    assert flashes(ana.text(await ana.get("/pay"))) == [
        "No agent named nobody at all is known here."
    ]
    assert site_net.adapter.history(site_net.net.agents["coop0-m0"]) == []


async def test_a_bill_is_sent_and_paid_from_the_home_page(site_net: SiteNet) -> None:
    s = site_net
    bea, ana = await s.logged_in("bea"), await s.logged_in("ana")
    await bea.get("/pay")
    await bea.post("/bill", {"to": "coop0-m0", "amount": "2", "memo": "eggs"})
    assert flashes(bea.text(await bea.get("/pay"))) == ["Sent a bill of 2.00 CXT to coop0-m0."]
    home = ana.text(await ana.get("/"))
    assert "eggs" in home and "/bills/accept" in home
    (bill,) = [b for b in s.adapter.bills() if b["memo"] == "eggs"]
    await ana.post("/bills/accept", {"id": bill["id"]})
    assert flashes(ana.text(await ana.get("/"))) == ["Paid 2.00 CXT to coop0-m1."]
    assert [b["status"] for b in s.adapter.bills() if b["id"] == bill["id"]] == ["paid"]


async def test_a_vote_cast_on_the_page_counts_in_the_tally(site_net: SiteNet) -> None:
    s = site_net
    await s.net.governance[0].propose(
        s.net.agents["coop0"], "amend", "More credit",
        {"param": "member_limits", "value": {"credit": 900, "cap": 100000}},
    )  # fmt: skip
    (proposal,) = s.adapter.proposals()
    assert proposal["tally"]["yes"] == 0
    coop = await s.logged_in("coop")
    page = coop.text(await coop.get(f"/foundation/proposal?id={proposal['id']}"))
    assert "More credit" in page and "Cast the vote" in page
    await coop.post(
        "/foundation/vote", {"as": s.key("coop0"), "id": proposal["id"], "choice": "yes"}
    )
    after = coop.text(await coop.get(f"/foundation/proposal?id={proposal['id']}"))
    assert "Your vote (yes) is counted." in flashes(after)
    assert s.adapter.proposal(proposal["id"])["tally"]["yes"] == 1  # type: ignore[index]
    assert "yes 1 · no 0 · abstain 0" in after
    listing = coop.text(await coop.get("/foundation"))
    assert "yes 1 · no 0 · abstain 0" in listing


async def test_history_filters_a_statement_a_chart_and_a_csv(site_net: SiteNet) -> None:
    s = site_net
    for memo, amount in (("bread", 100), ("eggs", 50), ("bread rolls", 25)):
        assert (await s.net.pay("coop0-m0", "coop1-m0", amount, memo)).committed
    ana = await s.logged_in("ana")
    page = ana.text(await ana.get("/history?q=bread"))
    assert "2 payments" in page and "eggs" not in page.split("<tbody>")[1]
    assert "<polyline" in page
    rows = list(csv.reader(io.StringIO((await ana.get("/history.csv?q=bread")).body.decode())))
    assert [r[5] for r in rows[1:]] == ["bread", "bread rolls"]
    assert [r[3] for r in rows[1:]] == ["-1.00", "-0.25"]
    month = s.adapter.history(s.net.agents["coop0-m0"])[0]["timestamp"]
    import datetime as dt

    ym = dt.datetime.fromtimestamp(month / 1e6, dt.UTC).strftime("%Y-%m")
    statement = ana.text(await ana.get(f"/history?month={ym}"))
    assert "Paid out</dt><dd>1.75 CXT" in statement


async def test_an_offer_found_by_search_can_be_bought(site_net: SiteNet) -> None:
    s = site_net
    coop = await s.logged_in("coop")
    await coop.get("/exchange")
    await coop.post("/exchange/post", {
        "as": s.key("coop0"), "kind": "offer", "title": "Sourdough loaf", "category": "food/bakery",
        "price": "3.50", "unit": "loaf", "quantity": "40",
    })  # fmt: skip
    assert flashes(coop.text(await coop.get("/exchange"))) == ["Posted: Sourdough loaf."]
    bea = await s.logged_in("bea")
    found = bea.text(await bea.get("/exchange?q=sourdough"))
    (item,) = re.findall(r"/exchange/item\?id=(act_[a-z0-9]+)", found)
    offer = bea.text(await bea.get(f"/exchange/item?id={item}"))
    assert "3.50 CXT / loaf" in offer
    (buy,) = re.findall(r'href="(/pay\?to=[^"]+)"', offer)
    form = bea.text(await bea.get(buy.replace("&amp;", "&")))
    assert 'name="offer" value="' + item in form and "Sourdough loaf" in form


async def test_a_matching_offer_shows_in_the_wanters_inbox(site_net: SiteNet) -> None:
    s = site_net
    bea = await s.logged_in("bea")
    await bea.get("/exchange")
    await bea.post("/exchange/post", {
        "as": s.key("coop0-m1"), "kind": "want", "title": "Rye bread", "category": "food/bakery",
        "price": "5", "unit": "loaf", "quantity": "4",
    })  # fmt: skip
    await s.adapter.post_listing(
        s.net.agents["coop0"], "offer",
        {"title": "Rye bread loaf", "category": "food/bakery", "price": "300", "unit": "loaf",
         "quantity": "20"},
    )  # fmt: skip
    host = s.adapter.host
    assert host is not None
    await host.watch_new()  # what the node's watch task runs when an offer is stored
    page = bea.text(await bea.get("/exchange"))
    assert "matches your want “Rye bread”" in page
    home = bea.text(await bea.get("/"))
    assert "1 unread notice" in home


async def test_the_lookout_board_takes_a_signal_a_comment_and_a_poll(site_net: SiteNet) -> None:
    s = site_net
    ana = await s.logged_in("ana")
    await ana.get("/lookout")
    await ana.post(
        "/lookout/signal",
        {"as": s.key("coop0-m0"), "title": "Heat pumps", "source": "news", "sectors": "energy"},
    )
    board = ana.text(await ana.get("/lookout"))
    assert "Signal posted." in flashes(board) and "Heat pumps" in board
    (item,) = [i["hash"] for i in s.adapter.board()["signals"]]  # type: ignore[index]
    await ana.post("/lookout/poll", {"as": s.key("coop0-m0"), "id": item, "choice": "advance"})
    await ana.post("/lookout/comment", {"as": s.key("coop0-m0"), "id": item, "text": "Cheaper now"})
    (signal,) = s.adapter.board()["signals"]  # type: ignore[index]
    assert signal["polls"]["advance"] == 1 and signal["comments"] == 1


async def test_a_payment_arriving_from_another_node_is_an_event(site_net: SiteNet) -> None:
    s = site_net
    got: list[NodeEvent] = []

    async def listen() -> None:
        async with s.adapter.events() as subscription:
            async for event in subscription:
                got.append(event)
                if event.kind == "payment":
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        await trio.sleep(0.05)
        assert (await s.net.pay("coop1-m0", "coop0-m0", 125, "for ana")).committed  # node 1 pays
        with trio.fail_after(10):
            while not got or got[-1].kind != "payment":
                await trio.sleep(0.05)
    event = got[-1]
    assert event.agents == frozenset({s.net.agents["coop0-m0"]})
    assert dict(event.data) == {
        "amount": 125,
        "counterparty_name": "coop1-m0",
        "memo": "for ana",
        "direction": "in",
    }


async def test_a_payment_this_node_commits_is_an_event_when_pay_returns(site_net: SiteNet) -> None:
    """The node tells its own commits (payer and payee both hosted here): the event waits in the
    channel as ``pay`` returns, with nothing polled (it failed when the adapter polled heads)."""
    s = site_net
    ana, bea = s.net.agents["coop0-m0"], s.net.agents["coop0-m1"]
    async with s.adapter.events() as subscription:
        assert (await s.net.pay("coop0-m0", "coop0-m1", 75, "same node")).committed
        payments = []
        while True:
            try:
                event = subscription.receive_nowait()
            except trio.WouldBlock:
                break
            if event.kind == "payment":
                payments.append((event.agents, event.data["amount"], event.data["direction"]))
    assert sorted(payments, key=lambda p: p[1]) == [
        (frozenset({ana}), -75, "out"),
        (frozenset({bea}), 75, "in"),
    ]


async def test_the_event_stream_outlives_its_keep_alives_and_tells_a_payment(
    site_net: SiteNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a keep-alive used to cancel the wait inside the event generator, which ended
    it; the next read raised out of the server's task and stopped the node."""
    monkeypatch.setattr(apppages, "SSE_KEEPALIVE", 0.05)
    s = site_net
    ana = await s.logged_in("ana")
    response = await ana.get("/events")
    assert response.status == 200 and response.stream is not None
    chunks = response.stream
    assert await chunks.__anext__() == b"retry: 3000\n\n"
    assert await chunks.__anext__() == b": keep-alive\n\n"
    assert await chunks.__anext__() == b": keep-alive\n\n"
    assert (await s.net.pay("coop1-m0", "coop0-m0", 250, "after a pause")).committed
    with trio.fail_after(10):
        chunk = b": keep-alive"
        while chunk.startswith(b": keep-alive"):
            chunk = await chunks.__anext__()
    assert chunk.startswith(b"event: payment\n")
    assert "Payment received from coop1-m0: 2.50 CXT" in chunk.decode()
    await chunks.aclose()  # type: ignore[attr-defined]
    assert not s.adapter._subscribers  # the subscription ended with the stream


async def test_payments_keep_committing_while_the_page_is_served_under_load(
    site_net: SiteNet,
) -> None:
    s = site_net
    clients = [await s.logged_in(name) for name in ("ana", "bea", "coop", "ana")]
    served = []

    async def browse(client: object, pages: int) -> None:
        for i in range(pages):
            response = await client.get(["/", "/history", "/foundation", "/exchange"][i % 4])  # type: ignore[attr-defined]
            served.append(response.status)
            await trio.sleep(0.01)

    results = []
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(browse, client, 50)
        for i in range(10):
            results.append(await s.net.pay("coop0-m1", "coop1-m1", 10, f"under load {i}"))
    assert all(r.committed for r in results), [r.reason for r in results]
    assert served.count(200) == 200

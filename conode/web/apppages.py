"""The pages of the apps and of the node: exchange, Foundation and governance, lookout, network,
and the stream of live updates (server-sent events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import trio

from conode.errors import ConodeError
from conode.hashes import AgentKey
from conode.web import i18n
from conode.web.http import Response
from conode.web.money import format_amount
from conode.web.pages import form_amount
from conode.web.port import NodeEvent
from conode.web.routing import Ctx, Forbidden, NotFound, redirect, route

if TYPE_CHECKING:
    from conode.web.site import WebSite

__all__ = ["SSE_KEEPALIVE"]

SSE_KEEPALIVE: Final = 15.0
"""Seconds of silence after which the event stream sends a comment (proxies close idle streams)."""


# -- the exchange -------------------------------------------------------------------------------------------


@route("GET", "/exchange")
async def exchange(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    running = "exchange" in site.port.running_apps()
    acting = site.own_agent(ctx, query.get("as")) if ctx.agents else None
    found: Sequence[Mapping[str, Any]] = []
    error = ""
    searched = any(query.get(k) for k in ("q", "category", "near"))
    if running and searched:
        try:
            found = await site.port.search_offers(
                query.get("q", ""), query.get("category") or None,
                query.get("near") or None, query.get("within_km") or None,
            )  # fmt: skip
        except (ConodeError, ValueError) as exc:
            error = str(exc)
    views = site.views(ctx)
    acting_view = next((v for v in views if v.key == acting), None)
    return site.render(
        ctx,
        "exchange.html",
        running=running,
        views=views,
        acting=acting,
        acting_view=acting_view,
        query=query,
        searched=searched,
        found=found,
        error=error,
        offers=[] if acting is None or not running else site.port.own_listings(acting, "offer"),
        wants=[] if acting is None or not running else site.port.own_listings(acting, "want"),
        inbox=[] if acting is None or not running else site.port.inbox(acting),
    )


@route("GET", "/exchange/item")
async def exchange_item(site: WebSite, ctx: Ctx) -> Response:
    item_id = ctx.request.query.get("id", "")
    try:
        item = site.port.offer(item_id)
    except ValueError as exc:
        raise NotFound from exc
    if item is None:
        raise NotFound
    return site.render(
        ctx, "item.html", item=item, mine=AgentKey.parse(item["author"]) in ctx.agents
    )


@route("POST", "/exchange/post")
async def exchange_post(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site.own_agent(ctx, form.get("as"))
    kind = form.get("kind", "")
    if kind not in ("offer", "want"):
        raise NotFound
    back = f"/exchange?{urlencode({'as': str(agent)})}"
    price = form_amount(site, ctx, form.get("price", ""))
    if price is None:
        return redirect(back)
    values = {
        "title": form.get("title", ""), "category": form.get("category", ""),
        "price": str(price), "unit": form.get("unit", ""), "quantity": form.get("quantity", ""),
        "description": form.get("description", ""), "days": form.get("days", "") or "30",
    }  # fmt: skip
    try:
        posted = await site.port.post_listing(agent, kind, values)
    except (ConodeError, ValueError, TypeError) as exc:
        site.say(ctx, "error", ctx.t("Not posted: %(reason)s", reason=str(exc)))
    else:
        site.say(ctx, "ok", ctx.t("Posted: %(title)s.", title=posted.get("title", "")))
    return redirect(back)


@route("POST", "/exchange/renew")
async def exchange_renew(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    item = form.get("id", "")
    try:
        author = site.port.listing_author(item)
    except ValueError as exc:
        raise NotFound from exc
    if author is None:
        raise NotFound
    if author not in ctx.agents:
        raise Forbidden
    kind = "offer" if form.get("kind") == "offer" else "want"
    await site.attempt(ctx, site.port.renew_listing(kind, item, 30), ctx.t("Renewed for 30 days."))
    return redirect(f"/exchange?{urlencode({'as': str(author)})}")


# -- the Foundation and governance ------------------------------------------------------------------------


@route("GET", "/foundation")
async def foundation(site: WebSite, ctx: Ctx) -> Response:
    proposals = site.port.proposals()
    paid = [p for p in proposals if p.get("disbursement") and p["disbursement"].get("paid_by")]
    return site.render(
        ctx,
        "foundation.html",
        fund=await site.port.foundation(),
        proposals=proposals,
        paid=paid,
    )


@route("GET", "/foundation/proposal")
async def proposal_page(site: WebSite, ctx: Ctx) -> Response:
    try:
        proposal = site.port.proposal(ctx.request.query.get("id", ""))
    except ValueError as exc:
        raise NotFound from exc
    if proposal is None:
        raise NotFound
    return site.render(
        ctx,
        "proposal.html",
        proposal=proposal,
        views=site.views(ctx),
        commenting="foundation" in site.port.running_apps(),
    )


@route("POST", "/foundation/vote")
async def vote(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    voter = site.own_agent(ctx, form.get("as"))
    proposal_id = form.get("id", "")
    choice = form.get("choice", "")
    try:
        await site.port.vote(voter, proposal_id, choice)
        site.say(ctx, "ok", ctx.t("Your vote (%(choice)s) is counted.", choice=ctx.t(choice)))
    except (ConodeError, ValueError) as exc:
        site.say(ctx, "error", ctx.t("The vote was refused: %(reason)s", reason=str(exc)))
    return redirect(f"/foundation/proposal?{urlencode({'id': proposal_id})}")


@route("POST", "/foundation/comment")
async def comment_proposal(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site.own_agent(ctx, form.get("as"))
    proposal_id = form.get("id", "")
    text = form.get("text", "")
    await site.attempt(
        ctx, site.port.comment_proposal(agent, proposal_id, text), ctx.t("Comment posted.")
    )
    return redirect(f"/foundation/proposal?{urlencode({'id': proposal_id})}")


# -- the lookout ---------------------------------------------------------------------------------------------


@route("GET", "/lookout")
async def lookout(site: WebSite, ctx: Ctx) -> Response:
    return site.render(ctx, "lookout.html", board=site.port.board(), views=site.views(ctx))


@route("POST", "/lookout/signal")
async def lookout_signal(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site.own_agent(ctx, form.get("as"))
    posting = site.port.post_signal(
        agent, form.get("title", ""), form.get("source", ""), form.get("text", ""),
        form.get("sectors", ""),
    )  # fmt: skip
    await site.attempt(ctx, posting, ctx.t("Signal posted."))
    return redirect("/lookout")


@route("POST", "/lookout/comment")
async def lookout_comment(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site.own_agent(ctx, form.get("as"))
    await site.attempt(
        ctx,
        site.port.comment_item(agent, form.get("id", ""), form.get("text", "")),
        ctx.t("Comment posted."),
    )
    return redirect("/lookout")


@route("POST", "/lookout/poll")
async def lookout_poll(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site.own_agent(ctx, form.get("as"))
    await site.attempt(
        ctx,
        site.port.poll_item(agent, form.get("id", ""), form.get("choice", "")),
        ctx.t("Your poll answer is counted."),
    )
    return redirect("/lookout")


# -- the network (operator) ---------------------------------------------------------------------------------


@route("GET", "/network", "operator")
async def network(site: WebSite, ctx: Ctx) -> Response:
    port = site.port
    return site.render(
        ctx,
        "network.html",
        health=port.health(),
        peers=port.peers(),
        directory=port.directory(),
        warrants=port.warrants(),
        grants=port.grants(),
        apps=port.apps(),
    )


@route("POST", "/network/approve", "operator")
async def approve_app(site: WebSite, ctx: Ctx) -> Response:
    bundle = ctx.request.form().get("hash", "")
    try:
        site.port.approve_app(bundle)
        site.say(ctx, "ok", ctx.t("Approved: the app runs from the next start of the node."))
    except (ConodeError, ValueError) as exc:
        site.say(ctx, "error", str(exc))
    return redirect("/network")


# -- live updates --------------------------------------------------------------------------------------------


@route("GET", "/events")
async def events(site: WebSite, ctx: Ctx) -> Response:
    """Server-sent events: what concerns this login's agents (or everyone), as it happens."""
    mine = frozenset(ctx.agents)
    money = site.port.money()
    lang = ctx.lang

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        async with site.port.events() as subscription:
            while True:
                event: NodeEvent | None = None
                with trio.move_on_after(SSE_KEEPALIVE):
                    event = await subscription.receive()
                if event is None:
                    yield b": keep-alive\n\n"
                elif not event.agents or event.agents & mine:
                    yield _sse(event, _event_text(event, money.currency, money.scale, lang))

    return Response(
        200,
        headers=[
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-accel-buffering", "no"),  # a proxy passes each event at once
        ],
        stream=stream(),
    )


def _event_text(event: NodeEvent, currency: str, scale: int, lang: str) -> str:
    gettext = i18n.translations(lang).gettext
    data = event.data
    if event.kind == "payment" and data.get("direction") == "in":
        return gettext("Payment received from %(name)s: %(amount)s") % {
            "name": data["counterparty_name"],
            "amount": f"{format_amount(data['amount'], scale, lang)} {currency}",
        }
    if event.kind == "payment":
        return gettext("Payment to %(name)s: %(amount)s") % {
            "name": data["counterparty_name"],
            "amount": f"{format_amount(-data['amount'], scale, lang)} {currency}",
        }
    return {
        "bill": gettext("A bill arrived or changed."),
        "governance": gettext("A proposal or vote arrived."),
        "exchange": gettext("The exchange changed."),
        "lookout": gettext("The lookout board changed."),
    }.get(event.kind, "")


def _sse(event: NodeEvent, text: str) -> bytes:
    payload = json.dumps({"kind": event.kind, "text": text})
    return f"event: {event.kind}\ndata: {payload}\n\n".encode()

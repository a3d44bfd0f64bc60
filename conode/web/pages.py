"""The members' own pages: logging in and out, home, pay and bill, bills, history.

Each route resolves what a form or a query names to the login's own agents
(``WebSite.own_agent``; 403 for anyone else's) and reaches the node only
through ``NodePort``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import trio

from conode.errors import ConodeError, EncodingError
from conode.hashes import AgentKey
from conode.web import i18n
from conode.web.http import Response
from conode.web.money import format_amount, parse_amount
from conode.web.port import AgentView, PaymentOutcome
from conode.web.routing import (
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Ctx,
    Forbidden,
    NotFound,
    label,
    redirect,
    route,
    safe_next,
    when,
)

if TYPE_CHECKING:
    from conode.web.site import WebSite

__all__ = ["CHART_POINTS", "HISTORY_ROWS", "VALUE_TEXTS", "form_amount"]

HISTORY_ROWS: Final = 100
CHART_POINTS: Final = 240
_MONTH: Final = "%Y-%m"


def N_(message: str) -> str:
    """Marks a text the templates translate from a value (a status, a role, a choice)."""
    return message


VALUE_TEXTS: Final = (
    N_("open"), N_("expired"), N_("withdrawn"), N_("met"), N_("passed"), N_("failed"),
    N_("ratified"), N_("unknown"), N_("coop"), N_("member"), N_("foundation"), N_("yes"),
    N_("no"), N_("abstain"), N_("offer"), N_("want"), N_("paid"), N_("declined"),
)  # fmt: skip
"""The values shown through ``_()`` in the templates, so that the catalogues hold them."""


# -- login and logout ---------------------------------------------------------------------------------


@route("GET", "/login", "public")
async def login_page(site: WebSite, ctx: Ctx) -> Response:
    if ctx.session is not None:
        return redirect("/")
    return site.login_form(ctx)


@route("POST", "/login", "public")
async def login_post(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    login = form.get("login", "").strip()
    keys = (f"login:{login.casefold()}", f"client:{site.client_of(ctx.request)}")
    wait = site.limiter.wait_us(keys, ctx.now_us)
    if wait:
        minutes = max(1, -(-wait // 60_000_000))
        return site.login_form(
            ctx,
            429,
            ctx.t("Too many failed attempts: try again in %(minutes)s min.", minutes=minutes),
        )
    password = form.get("password", "")
    async with site.password_check:
        user = await trio.to_thread.run_sync(site.users.verify, login, password)
    if user is None:
        site.limiter.failed(keys, ctx.now_us)
        return site.login_form(ctx, 401, ctx.t("Wrong login or password."))
    site.limiter.succeeded(keys[0])
    return site.log_in(ctx, user, form.get("next", "/"))


@route("GET", "/login/link", "public")
async def login_link(site: WebSite, ctx: Ctx) -> Response:
    token = ctx.request.query.get("t", "")
    keys = (f"client:{site.client_of(ctx.request)}",)
    if site.limiter.wait_us(keys, ctx.now_us):
        return site.login_form(ctx, 429, ctx.t("Too many failed attempts: try again later."))
    user = None if not token else site.users.use_link(token, ctx.now_us)
    if user is None:
        site.limiter.failed(keys, ctx.now_us)
        return site.login_form(ctx, 401, ctx.t("This login link is used up or has expired."))
    return site.log_in(ctx, user, "/network" if user.operator and not user.agents else "/")


@route("POST", "/logout")
async def logout(site: WebSite, ctx: Ctx) -> Response:
    site.sessions.end(ctx.sid)
    ctx.cookies = [site.cookie(SESSION_COOKIE, "", max_age=0)]
    return redirect("/login")


@route("POST", "/lang")
async def set_language(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    if ctx.session is not None and form.get("lang") in i18n.LANGUAGES:
        ctx.session.lang = form["lang"]
    return redirect(safe_next(form.get("next", "/")))


# -- home ------------------------------------------------------------------------------------------------


@route("GET", "/")
async def home(site: WebSite, ctx: Ctx) -> Response:
    port = site.port
    views = site.views(ctx)
    mine = set(ctx.agents)
    bills = [b for b in port.bills() if b["status"] == "open"]
    to_answer = [b for b in bills if AgentKey.parse(b["payer"]) in mine]
    sent = [b for b in bills if AgentKey.parse(b["payee"]) in mine]
    cards = []
    for view in views:
        rows = port.history(view.key)
        unread = [n for n in port.inbox(view.key) if not n.get("read")]
        cards.append(
            {
                "view": view,
                "room": view.balance + view.credit_limit,
                "percent": _room_percent(view),
                "latest": list(reversed(rows[-5:])),
                "unread": len(unread),
            }
        )
    return site.render(
        ctx, "home.html", cards=cards, to_answer=to_answer, sent=sent, health=port.health()
    )


def _room_percent(view: AgentView) -> int:
    """How much of the credit line is still unused, in whole percent (100 when not in debt)."""
    if view.credit_limit <= 0:
        return 100 if view.balance >= 0 else 0
    room = view.balance + view.credit_limit
    return max(0, min(100, room * 100 // view.credit_limit))


# -- pay and bill ------------------------------------------------------------------------------------------


@route("GET", "/pay")
async def pay_page(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    acting = site.own_agent(ctx, query.get("as"))
    entries = [e for e in site.port.directory() if e.key != acting]
    payee = query.get("to", "")
    if payee.startswith("agt_"):
        payee = next((label(e) for e in entries if str(e.key) == payee), payee)
    offer = query.get("offer", "")
    offered = site.port.offer(offer) if offer else None
    return site.render(
        ctx,
        "pay.html",
        views=site.views(ctx),
        acting=acting,
        directory=[label(e) for e in entries],
        payee=payee,
        amount_text=query.get("amount", ""),
        memo=query.get("memo", ""),
        offer=offer if offered is not None else "",
        offered=offered,
    )


def form_amount(site: WebSite, ctx: Ctx, text: str) -> int | None:
    try:
        return parse_amount(text, site.port.money().scale)
    except ValueError:
        site.say(ctx, "error", ctx.t("%(text)s is not an amount (like 12.50).", text=text or "''"))
        return None


def _form_payee(site: WebSite, ctx: Ctx, text: str) -> AgentKey | None:
    try:
        return site.payee(text)
    except (ValueError, EncodingError) as exc:
        if str(exc) == "several":
            site.say(
                ctx,
                "error",
                ctx.t("Several agents are named %(name)s: pick one from the list.", name=text),
            )
        else:
            site.say(ctx, "error", ctx.t("No agent named %(name)s is known here.", name=text))
        return None


def _outcome_text(
    site: WebSite, ctx: Ctx, outcome: PaymentOutcome, amount: int, payee: str
) -> tuple[str, str]:
    money = site.port.money()

    def fmt(minor: int) -> str:
        return f"{format_amount(minor, money.scale, ctx.lang)} {money.currency}"

    if outcome.committed:
        return "ok", ctx.t("Paid %(amount)s to %(payee)s.", amount=fmt(amount), payee=payee)
    limit = outcome.limit
    if limit is not None and limit.rule == "credit-limit":
        return "error", ctx.t(
            "Refused: %(name)s would go %(over)s below the credit limit of %(limit)s.",
            name=limit.name, over=fmt(-limit.balance_after - limit.limit), limit=fmt(limit.limit),
        )  # fmt: skip
    if limit is not None:
        return "error", ctx.t(
            "Refused: %(name)s would go %(over)s above the balance cap of %(limit)s.",
            name=limit.name, over=fmt(limit.balance_after - limit.limit), limit=fmt(limit.limit),
        )  # fmt: skip
    return "error", ctx.t("Refused: %(reason)s", reason=outcome.reason)


@route("POST", "/pay")
async def pay(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    payer = site.own_agent(ctx, form.get("as"))
    back = f"/pay?{urlencode({'as': str(payer)})}"
    amount = form_amount(site, ctx, form.get("amount", ""))
    payee = _form_payee(site, ctx, form.get("to", ""))
    if amount is None or payee is None:
        return redirect(back)
    offer = form.get("offer") or None
    try:
        outcome = await site.port.pay(payer, payee, amount, form.get("memo", "")[:280], offer)
    except (ConodeError, ValueError) as exc:
        outcome = PaymentOutcome(False, str(exc))
    kind, text = _outcome_text(site, ctx, outcome, amount, site.port.name_of(payee))
    site.say(ctx, kind, text)
    return redirect(back)


@route("POST", "/bill")
async def bill(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    payee = site.own_agent(ctx, form.get("as"))
    back = f"/pay?{urlencode({'as': str(payee)})}"
    amount = form_amount(site, ctx, form.get("amount", ""))
    payer = _form_payee(site, ctx, form.get("to", ""))
    if amount is None or payer is None:
        return redirect(back)
    try:
        await site.port.bill(payee, payer, amount, form.get("memo", "")[:280])
    except (ConodeError, ValueError) as exc:
        site.say(ctx, "error", ctx.t("The bill was not sent: %(reason)s", reason=str(exc)))
    else:
        money = site.port.money()
        site.say(ctx, "ok", ctx.t(
            "Sent a bill of %(amount)s to %(payer)s.",
            amount=f"{format_amount(amount, money.scale, ctx.lang)} {money.currency}",
            payer=site.port.name_of(payer),
        ))  # fmt: skip
    return redirect(back)


def _own_bill(site: WebSite, ctx: Ctx, bill_id: str) -> tuple[AgentKey, AgentKey]:
    """(payee, payer) of a bill addressed to one of the login's agents; 403 otherwise."""
    try:
        parties = site.port.bill_parties(bill_id)
    except ValueError as exc:
        raise NotFound from exc
    if parties is None:
        raise NotFound
    if parties[1] not in ctx.agents:
        raise Forbidden
    return parties


@route("POST", "/bills/accept")
async def accept_bill(site: WebSite, ctx: Ctx) -> Response:
    bill_id = ctx.request.form().get("id", "")
    payee, _payer = _own_bill(site, ctx, bill_id)
    amount = next((b["amount"] for b in site.port.bills() if b["id"] == bill_id), 0)
    try:
        outcome = await site.port.accept_bill(bill_id)
    except (ConodeError, ValueError) as exc:
        outcome = PaymentOutcome(False, str(exc))
    kind, text = _outcome_text(site, ctx, outcome, amount, site.port.name_of(payee))
    site.say(ctx, kind, text)
    return redirect("/")


@route("POST", "/bills/decline")
async def decline_bill(site: WebSite, ctx: Ctx) -> Response:
    bill_id = ctx.request.form().get("id", "")
    _own_bill(site, ctx, bill_id)
    await site.attempt(ctx, site.port.decline_bill(bill_id), ctx.t("The bill was declined."))
    return redirect("/")


# -- history ------------------------------------------------------------------------------------------------


def _filtered(
    rows: Sequence[Mapping[str, Any]], query: Mapping[str, str]
) -> list[Mapping[str, Any]]:
    words = query.get("q", "").casefold().split()
    direction = query.get("direction", "")
    month = query.get("month", "")
    start_us = end_us = None
    if month:
        try:
            first = dt.datetime.strptime(month, _MONTH).replace(tzinfo=dt.UTC)
        except ValueError:
            first = None
        if first is not None:
            after = (first + dt.timedelta(days=32)).replace(day=1)
            start_us, end_us = int(first.timestamp() * 1e6), int(after.timestamp() * 1e6)
    out = []
    for row in rows:
        if direction in ("in", "out") and row["direction"] != direction:
            continue
        if start_us is not None and not start_us <= row["timestamp"] < (end_us or 0):
            continue
        if words:
            text = f"{row['counterparty_name']} {row['memo']}".casefold()
            if not all(w in text for w in words):
                continue
        out.append(row)
    return out


def _statement(rows: Sequence[Mapping[str, Any]], month: str) -> dict[str, Any] | None:
    try:
        first = dt.datetime.strptime(month, _MONTH).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    after = (first + dt.timedelta(days=32)).replace(day=1)
    start_us, end_us = int(first.timestamp() * 1e6), int(after.timestamp() * 1e6)
    before = [r for r in rows if r["timestamp"] < start_us]
    during = [r for r in rows if start_us <= r["timestamp"] < end_us]
    opening = before[-1]["balance_after"] if before else 0
    return {
        "month": month,
        "opening": opening,
        "closing": during[-1]["balance_after"] if during else opening,
        "paid_in": sum(r["amount"] for r in during if r["amount"] > 0),
        "paid_out": -sum(r["amount"] for r in during if r["amount"] < 0),
        "count": len(during),
    }


def _chart(
    rows: Sequence[Mapping[str, Any]], width: int = 600, height: int = 160
) -> dict[str, Any] | None:
    """An SVG polyline of the balance after each payment (at most ``CHART_POINTS`` points)."""
    if len(rows) < 2:
        return None
    step = max(1, len(rows) // CHART_POINTS)
    picked = list(rows[::step])
    if picked[-1] is not rows[-1]:
        picked.append(rows[-1])
    t0, t1 = picked[0]["timestamp"], picked[-1]["timestamp"]
    values = [r["balance_after"] for r in picked]
    low, high = min(0, *values), max(0, *values)
    span_t, span_v = max(1, t1 - t0), max(1, high - low)

    def xy(row: Mapping[str, Any]) -> str:
        x = (row["timestamp"] - t0) * width / span_t
        y = height - (row["balance_after"] - low) * height / span_v
        return f"{x:.1f},{y:.1f}"

    zero = height - (0 - low) * height / span_v
    return {
        "points": " ".join(xy(r) for r in picked),
        "width": width,
        "height": height,
        "zero": f"{zero:.1f}",
        "low": low,
        "high": high,
        "start": t0,
        "end": t1,
    }


def _cells(row: Mapping[str, Any], scale: int, lang: str) -> dict[str, str]:
    """A history row as the table shows it, formatted here (in the template, the calls cost
    a third of the page's time)."""
    return {
        "when": when(row["timestamp"]),
        "name": row["counterparty_name"],
        "memo": row["memo"],
        "direction": row["direction"],
        "amount": format_amount(row["amount"], scale, lang, sign=True),
        "balance": format_amount(row["balance_after"], scale, lang),
    }


@route("GET", "/history")
async def history(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    agent = site.own_agent(ctx, query.get("as"))
    rows = site.port.history(agent)
    shown = _filtered(rows, query)
    month = query.get("month", "")
    money = site.port.money()
    return site.render(
        ctx,
        "history.html",
        views=site.views(ctx),
        acting=agent,
        rows=[_cells(row, money.scale, ctx.lang) for row in reversed(shown[-HISTORY_ROWS:])],
        total=len(shown),
        query=query,
        statement=_statement(rows, month) if month else None,
        chart=_chart(shown if not query.get("q") and not query.get("direction") else rows),
        csv_link="/history.csv?" + urlencode({k: v for k, v in query.items() if v}),
    )


@route("GET", "/history.csv")
async def history_csv(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    agent = site.own_agent(ctx, query.get("as"))
    money = site.port.money()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "time",
            "direction",
            "counterparty",
            "amount",
            "currency",
            "memo",
            "balance_after",
            "record",
        ]
    )
    for row in _filtered(site.port.history(agent), query):
        writer.writerow([
            when(row["timestamp"]), row["direction"], row["counterparty_name"],
            format_amount(row["amount"], money.scale).replace("\u202f", "").replace("\u2212", "-"),
            money.currency, _csv_text(row["memo"]),
            format_amount(row["balance_after"], money.scale).replace("\u202f", "").replace("\u2212", "-"),
            row["record"],
        ])  # fmt: skip
    name = f"conode-{site.port.name_of(agent)}.csv".replace('"', "")
    return Response(
        200,
        out.getvalue().encode(),
        [
            ("content-type", "text/csv; charset=utf-8"),
            ("content-disposition", f'attachment; filename="{name}"'),
            ("cache-control", "no-store"),
            *SECURITY_HEADERS,
        ],
    )


def _csv_text(text: str) -> str:
    """A memo as a spreadsheet cell that is never run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

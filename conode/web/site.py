"""The members' web page: routes, who may use each, and what each shows or does.

Every request goes through ``WebSite.handle``:

1. static files and the login pages are public; everything else needs a
   session (else: the login page, or 403 for ``/events`` and POSTs);
2. every POST is checked for its CSRF token and its origin before its form
   is read (``_check_post``);
3. a member acts only as the agents of its login: each route that names an
   agent, a bill, an offer or a want resolves it and refuses (403) one that
   is not the login's (``_own``); node pages need an operator login;
4. an action answers with a redirect to a page that shows its outcome in
   plain words (a message kept in the session, shown once).

The page reaches the node only through ``NodePort``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
import trio

from conode.errors import ConodeError, EncodingError
from conode.hashes import AgentKey
from conode.web import i18n
from conode.web.auth import LoginLimiter, Session, Sessions, same_token
from conode.web.http import Request, Response
from conode.web.money import format_amount, parse_amount
from conode.web.port import AgentView, DirectoryEntry, NodeEvent, NodePort, PaymentOutcome
from conode.web.users import UserFile, WebUser, WebUserError

__all__ = ["SiteSettings", "WebSite"]

log = logging.getLogger("conode.web")

HERE: Final = Path(__file__).parent
STATIC_DIR: Final = HERE / "static"
SESSION_COOKIE: Final = "conode_session"
LOGIN_COOKIE: Final = "conode_login"
HISTORY_ROWS: Final = 100
CHART_POINTS: Final = 240
SSE_KEEPALIVE: Final = 15.0
_SECURITY_HEADERS: Final = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
]
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


class Forbidden(Exception):
    """The login may not see or do this (403)."""


class NotFound(Exception):
    """No such page or item (404)."""


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """How the page is reached: over TLS (directly or through a proxy) or plain loopback HTTP."""

    secure: bool = False
    behind_proxy: bool = False


@dataclass(slots=True)
class Ctx:
    """One request as a route sees it."""

    request: Request
    lang: str
    now_us: int
    sid: str | None = None
    session: Session | None = None
    user: WebUser | None = None
    cookies: list[str] | None = None

    def t(self, message: str, **values: Any) -> str:
        """``message`` in the request's language, with ``%(name)s`` values filled in."""
        translated = i18n.translations(self.lang).gettext(message)
        return translated % values if values else translated

    @property
    def agents(self) -> tuple[AgentKey, ...]:
        return () if self.user is None else self.user.agents


Route = Callable[["WebSite", Ctx], Awaitable[Response]]
_ROUTES: dict[tuple[str, str], tuple[str, Route]] = {}


def route(method: str, path: str, who: str = "member") -> Callable[[Route], Route]:
    """Register a route: ``who`` is ``public``, ``member`` (any login) or ``operator``."""

    def register(fn: Route) -> Route:
        _ROUTES[(method, path)] = (who, fn)
        return fn

    return register


def routes() -> dict[tuple[str, str], str]:
    """Every route and who may use it (the security tests walk them all)."""
    return {key: who for key, (who, _fn) in _ROUTES.items()}


class WebSite:
    """The page's routes over a ``NodePort``; ``handle`` is the HTTP server's handler."""

    def __init__(
        self,
        port: NodePort,
        users: UserFile,
        settings: SiteSettings = SiteSettings(),
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.port = port
        self.users = users
        self.settings = settings
        self.clock = clock or (lambda: time.time_ns() // 1_000)
        self.sessions = Sessions()
        self.limiter = LoginLimiter()
        self._password_check = trio.CapacityLimiter(1)  # 64 MiB each: one at a time
        self._envs: dict[str, jinja2.Environment] = {}
        self._loader = jinja2.FileSystemLoader(HERE / "templates")
        self.cookie_name = f"__Host-{SESSION_COOKIE}" if settings.secure else SESSION_COOKIE

    # -- the pipeline ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one request (never raises for what a client sends)."""
        if request.method == "GET" and request.path.startswith("/static/"):
            return self._static(request.path.removeprefix("/static/"))
        now = self.clock()
        sid = request.cookie(self.cookie_name)
        session = self.sessions.get(sid, now)
        user = self._user_of(session)
        if session is not None and user is None:  # the login was removed meanwhile
            self.sessions.end(sid)
            session = None
        lang = i18n.choose(
            None if session is None else session.lang, request.headers.get("accept-language", "")
        )
        ctx = Ctx(request, lang, now, sid, session, user, [])
        found = _ROUTES.get((request.method, request.path))
        if found is None:
            known = any(path == request.path for _m, path in _ROUTES)
            return self._error(ctx, 405 if known else 404)
        who, fn = found
        if who != "public" and session is None:
            if request.method == "GET" and request.path != "/events":
                return _redirect(f"/login?{urlencode({'next': request.path})}")
            return self._error(ctx, 403)
        if request.method == "POST":
            refusal = self._check_post(ctx, login_form=who == "public")
            if refusal is not None:
                return self._error(ctx, 403, refusal)
        if who == "operator" and (user is None or not user.operator):
            return self._error(ctx, 403)
        try:
            response = await fn(self, ctx)
        except Forbidden:
            return self._error(ctx, 403)
        except NotFound:
            return self._error(ctx, 404)
        for cookie in ctx.cookies or []:
            response.headers.append(("set-cookie", cookie))
        return response

    def _user_of(self, session: Session | None) -> WebUser | None:
        if session is None:
            return None
        try:
            return self.users.get(session.login)
        except WebUserError as exc:
            log.error("%s", exc)
            return None

    def _check_post(self, ctx: Ctx, *, login_form: bool) -> str | None:
        """Why a POST is refused before it is read: another site, or no (or a wrong) CSRF token."""
        headers = ctx.request.headers
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return "cross-site"
        origin = headers.get("origin")
        if origin is not None and origin != self._origin(ctx.request):
            return "cross-site"
        token = ctx.request.form().get("csrf")
        expected = (
            ctx.request.cookie(LOGIN_COOKIE)
            if login_form
            else (None if ctx.session is None else ctx.session.csrf)
        )
        if not same_token(token, expected):
            return "csrf"
        return None

    def _origin(self, request: Request) -> str:
        scheme = "https" if self.settings.secure else "http"
        host = request.headers.get("host", "")
        if self.settings.behind_proxy:
            host = request.headers.get("x-forwarded-host", host).split(",")[0].strip()
        return f"{scheme}://{host}"

    def _client(self, request: Request) -> str:
        if self.settings.behind_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[-1].strip()  # the address the proxy saw
        return request.client

    # -- rendering ------------------------------------------------------------------------------

    def _env(self, lang: str) -> jinja2.Environment:
        env = self._envs.get(lang)
        if env is None:
            env = jinja2.Environment(
                loader=self._loader,
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
                undefined=jinja2.StrictUndefined,
            )
            env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
            self._envs[lang] = env
        return env

    def render(self, ctx: Ctx, template: str, code: int = 200, **values: Any) -> Response:
        """A page from its template, with what every page shows (who, language, messages)."""
        money = self.port.money()
        flash = []
        if ctx.session is not None and ctx.request.headers.get("x-live") is None:
            flash, ctx.session.flash = ctx.session.flash, []
        page = self._env(ctx.lang).get_template(template)
        html = page.render(
            ctx=ctx,
            user=ctx.user,
            csrf="" if ctx.session is None else ctx.session.csrf,
            lang=ctx.lang,
            languages=i18n.LANGUAGES,
            currency=money.currency,
            amount=lambda minor, sign=False: format_amount(minor, money.scale, ctx.lang, sign=sign),
            when=_when,
            name_of=self.port.name_of,
            name_of_key=self._name_of_text,
            flash=flash,
            path=ctx.request.path,
            **values,
        )
        headers = [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]
        return Response(code, html.encode(), [*headers, *_SECURITY_HEADERS])

    def _name_of_text(self, text: str) -> str:
        try:
            return self.port.name_of(AgentKey.parse(text))
        except EncodingError:
            return "?"

    def _error(self, ctx: Ctx, status: int, why: str = "") -> Response:
        texts = {
            403: ctx.t("You may not see or do this."),
            404: ctx.t("There is no such page."),
            405: ctx.t("This page does not take that kind of request."),
        }
        if why == "csrf":
            texts[403] = ctx.t(
                "This form has expired or did not come from this page: load the page and try again."
            )
        elif why == "cross-site":
            texts[403] = ctx.t("A form from another site was refused.")
        return self.render(ctx, "error.html", status, status=status, message=texts.get(status, ""))

    def _static(self, name: str) -> Response:
        path = (STATIC_DIR / name).resolve()
        if STATIC_DIR.resolve() not in path.parents or not path.is_file():
            return Response(404, b"not found", [("content-type", "text/plain")])
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(
            200,
            path.read_bytes(),
            [("content-type", kind), ("cache-control", "max-age=3600"), *_SECURITY_HEADERS],
        )

    def _say(self, ctx: Ctx, kind: str, text: str) -> None:
        """A message shown once on the next page (``kind``: ok or error)."""
        if ctx.session is not None:
            ctx.session.flash.append((kind, text))

    # -- resolving what a member names ------------------------------------------------------------

    def _own(self, ctx: Ctx, text: str | None) -> AgentKey:
        """The login's agent named by ``text`` (default: its first); 403 for anyone else's."""
        if not ctx.agents:
            raise Forbidden
        if not text:
            return ctx.agents[0]
        try:
            key = AgentKey.parse(text)
        except EncodingError as exc:
            raise Forbidden from exc
        if key not in ctx.agents:
            raise Forbidden
        return key

    def _views(self, ctx: Ctx) -> list[AgentView]:
        return [self.port.agent(key) for key in ctx.agents]

    def _payee(self, text: str) -> AgentKey:
        """The agent a member picked from the directory: its label, its name, or its key."""
        text = text.strip()
        if text.startswith("agt_"):
            return AgentKey.parse(text)
        entries = self.port.directory()
        by_label = [e.key for e in entries if _label(e) == text]
        by_name = [e.key for e in entries if e.name.casefold() == text.casefold()]
        found = by_label or by_name
        if len(found) != 1:
            raise ValueError("none" if not found else "several")
        return found[0]

    # -- login ------------------------------------------------------------------------------------

    def _login_form(self, ctx: Ctx, status: int = 200, error: str = "") -> Response:
        token = ctx.request.cookie(LOGIN_COOKIE) or _token()
        ctx.cookies = [self._cookie(LOGIN_COOKIE, token, max_age=3600)]
        nxt = ctx.request.query.get("next") or ctx.request.form().get("next") or "/"
        return self.render(
            ctx, "login.html", status, login_csrf=token, error=error, next=_safe_next(nxt)
        )

    def _cookie(self, name: str, value: str, *, max_age: int | None = None) -> str:
        if self.settings.secure and name == SESSION_COOKIE:
            name = self.cookie_name
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.settings.secure:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)

    def _log_in(self, ctx: Ctx, user: WebUser, next_path: str) -> Response:
        self.sessions.end(ctx.sid)
        sid, session = self.sessions.start(user.login, ctx.now_us)
        ctx.session, ctx.user = session, user
        ctx.cookies = [self._cookie(SESSION_COOKIE, sid), self._cookie(LOGIN_COOKIE, "", max_age=0)]
        return _redirect(_safe_next(next_path))


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def _safe_next(path: str) -> str:
    """Only a path of this site (never ``//host`` or a URL) may follow a login."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _redirect(to: str) -> Response:
    return Response(303, b"", [("location", to), ("cache-control", "no-store")])


def _when(us: int | None, with_time: bool = True) -> str:
    if us is None:
        return ""
    moment = dt.datetime.fromtimestamp(us / 1e6, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def _label(entry: DirectoryEntry) -> str:
    """How an agent is shown in the payee list: its name, and its co-op's for a member."""
    return entry.name if entry.coop_name is None else f"{entry.name} ({entry.coop_name})"


# -- login and logout ---------------------------------------------------------------------------------


@route("GET", "/login", "public")
async def login_page(site: WebSite, ctx: Ctx) -> Response:
    if ctx.session is not None:
        return _redirect("/")
    return site._login_form(ctx)


@route("POST", "/login", "public")
async def login_post(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    login = form.get("login", "").strip()
    keys = (f"login:{login.casefold()}", f"client:{site._client(ctx.request)}")
    wait = site.limiter.wait_us(keys, ctx.now_us)
    if wait:
        minutes = max(1, -(-wait // 60_000_000))
        return site._login_form(
            ctx,
            429,
            ctx.t("Too many failed attempts: try again in %(minutes)s min.", minutes=minutes),
        )
    password = form.get("password", "")
    async with site._password_check:
        user = await trio.to_thread.run_sync(site.users.verify, login, password)
    if user is None:
        site.limiter.failed(keys, ctx.now_us)
        return site._login_form(ctx, 401, ctx.t("Wrong login or password."))
    site.limiter.succeeded(keys[0])
    return site._log_in(ctx, user, form.get("next", "/"))


@route("GET", "/login/link", "public")
async def login_link(site: WebSite, ctx: Ctx) -> Response:
    token = ctx.request.query.get("t", "")
    keys = (f"client:{site._client(ctx.request)}",)
    if site.limiter.wait_us(keys, ctx.now_us):
        return site._login_form(ctx, 429, ctx.t("Too many failed attempts: try again later."))
    user = None if not token else site.users.use_link(token, ctx.now_us)
    if user is None:
        site.limiter.failed(keys, ctx.now_us)
        return site._login_form(ctx, 401, ctx.t("This login link is used up or has expired."))
    return site._log_in(ctx, user, "/network" if user.operator and not user.agents else "/")


@route("POST", "/logout")
async def logout(site: WebSite, ctx: Ctx) -> Response:
    site.sessions.end(ctx.sid)
    ctx.cookies = [site._cookie(SESSION_COOKIE, "", max_age=0)]
    return _redirect("/login")


@route("POST", "/lang")
async def set_language(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    if ctx.session is not None and form.get("lang") in i18n.LANGUAGES:
        ctx.session.lang = form["lang"]
    return _redirect(_safe_next(form.get("next", "/")))


# -- home ------------------------------------------------------------------------------------------------


@route("GET", "/")
async def home(site: WebSite, ctx: Ctx) -> Response:
    port = site.port
    views = site._views(ctx)
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
    acting = site._own(ctx, query.get("as"))
    entries = [e for e in site.port.directory() if e.key != acting]
    payee = query.get("to", "")
    if payee.startswith("agt_"):
        payee = next((_label(e) for e in entries if str(e.key) == payee), payee)
    offer = query.get("offer", "")
    offered = site.port.offer(offer) if offer else None
    return site.render(
        ctx,
        "pay.html",
        views=site._views(ctx),
        acting=acting,
        directory=[_label(e) for e in entries],
        payee=payee,
        amount_text=query.get("amount", ""),
        memo=query.get("memo", ""),
        offer=offer if offered is not None else "",
        offered=offered,
    )


def _form_amount(site: WebSite, ctx: Ctx, text: str) -> int | None:
    try:
        return parse_amount(text, site.port.money().scale)
    except ValueError:
        site._say(ctx, "error", ctx.t("%(text)s is not an amount (like 12.50).", text=text or "''"))
        return None


def _form_payee(site: WebSite, ctx: Ctx, text: str) -> AgentKey | None:
    try:
        return site._payee(text)
    except (ValueError, EncodingError) as exc:
        if str(exc) == "several":
            site._say(
                ctx,
                "error",
                ctx.t("Several agents are named %(name)s: pick one from the list.", name=text),
            )
        else:
            site._say(ctx, "error", ctx.t("No agent named %(name)s is known here.", name=text))
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
    payer = site._own(ctx, form.get("as"))
    back = f"/pay?{urlencode({'as': str(payer)})}"
    amount = _form_amount(site, ctx, form.get("amount", ""))
    payee = _form_payee(site, ctx, form.get("to", ""))
    if amount is None or payee is None:
        return _redirect(back)
    offer = form.get("offer") or None
    try:
        outcome = await site.port.pay(payer, payee, amount, form.get("memo", "")[:280], offer)
    except (ConodeError, ValueError) as exc:
        outcome = PaymentOutcome(False, str(exc))
    kind, text = _outcome_text(site, ctx, outcome, amount, site.port.name_of(payee))
    site._say(ctx, kind, text)
    return _redirect(back)


@route("POST", "/bill")
async def bill(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    payee = site._own(ctx, form.get("as"))
    back = f"/pay?{urlencode({'as': str(payee)})}"
    amount = _form_amount(site, ctx, form.get("amount", ""))
    payer = _form_payee(site, ctx, form.get("to", ""))
    if amount is None or payer is None:
        return _redirect(back)
    try:
        await site.port.bill(payee, payer, amount, form.get("memo", "")[:280])
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", ctx.t("The bill was not sent: %(reason)s", reason=str(exc)))
    else:
        money = site.port.money()
        site._say(ctx, "ok", ctx.t(
            "Sent a bill of %(amount)s to %(payer)s.",
            amount=f"{format_amount(amount, money.scale, ctx.lang)} {money.currency}",
            payer=site.port.name_of(payer),
        ))  # fmt: skip
    return _redirect(back)


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
    site._say(ctx, kind, text)
    return _redirect("/")


@route("POST", "/bills/decline")
async def decline_bill(site: WebSite, ctx: Ctx) -> Response:
    bill_id = ctx.request.form().get("id", "")
    _own_bill(site, ctx, bill_id)
    try:
        await site.port.decline_bill(bill_id)
        site._say(ctx, "ok", ctx.t("The bill was declined."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect("/")


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


@route("GET", "/history")
async def history(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    agent = site._own(ctx, query.get("as"))
    rows = site.port.history(agent)
    shown = _filtered(rows, query)
    month = query.get("month", "")
    return site.render(
        ctx,
        "history.html",
        views=site._views(ctx),
        acting=agent,
        rows=list(reversed(shown[-HISTORY_ROWS:])),
        total=len(shown),
        query=query,
        statement=_statement(rows, month) if month else None,
        chart=_chart(shown if not query.get("q") and not query.get("direction") else rows),
        csv_link="/history.csv?" + urlencode({k: v for k, v in query.items() if v}),
    )


@route("GET", "/history.csv")
async def history_csv(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    agent = site._own(ctx, query.get("as"))
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
            _when(row["timestamp"]), row["direction"], row["counterparty_name"],
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
            *_SECURITY_HEADERS,
        ],
    )


def _csv_text(text: str) -> str:
    """A memo as a spreadsheet cell that is never run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# -- the exchange -------------------------------------------------------------------------------------------


@route("GET", "/exchange")
async def exchange(site: WebSite, ctx: Ctx) -> Response:
    query = ctx.request.query
    running = "exchange" in site.port.running_apps()
    acting = site._own(ctx, query.get("as")) if ctx.agents else None
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
    views = site._views(ctx)
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
    agent = site._own(ctx, form.get("as"))
    kind = form.get("kind", "")
    if kind not in ("offer", "want"):
        raise NotFound
    back = f"/exchange?{urlencode({'as': str(agent)})}"
    price = _form_amount(site, ctx, form.get("price", ""))
    if price is None:
        return _redirect(back)
    values = {
        "title": form.get("title", ""), "category": form.get("category", ""),
        "price": str(price), "unit": form.get("unit", ""), "quantity": form.get("quantity", ""),
        "description": form.get("description", ""), "days": form.get("days", "") or "30",
    }  # fmt: skip
    try:
        posted = await site.port.post_listing(agent, kind, values)
    except (ConodeError, ValueError, TypeError) as exc:
        site._say(ctx, "error", ctx.t("Not posted: %(reason)s", reason=str(exc)))
    else:
        site._say(ctx, "ok", ctx.t("Posted: %(title)s.", title=posted.get("title", "")))
    return _redirect(back)


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
    try:
        await site.port.renew_listing(kind, item, 30)
        site._say(ctx, "ok", ctx.t("Renewed for 30 days."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect(f"/exchange?{urlencode({'as': str(author)})}")


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
        views=site._views(ctx),
        commenting="foundation" in site.port.running_apps(),
    )


@route("POST", "/foundation/vote")
async def vote(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    voter = site._own(ctx, form.get("as"))
    proposal_id = form.get("id", "")
    choice = form.get("choice", "")
    try:
        await site.port.vote(voter, proposal_id, choice)
        site._say(ctx, "ok", ctx.t("Your vote (%(choice)s) is counted.", choice=ctx.t(choice)))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", ctx.t("The vote was refused: %(reason)s", reason=str(exc)))
    return _redirect(f"/foundation/proposal?{urlencode({'id': proposal_id})}")


@route("POST", "/foundation/comment")
async def comment_proposal(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site._own(ctx, form.get("as"))
    proposal_id = form.get("id", "")
    try:
        await site.port.comment_proposal(agent, proposal_id, form.get("text", ""))
        site._say(ctx, "ok", ctx.t("Comment posted."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect(f"/foundation/proposal?{urlencode({'id': proposal_id})}")


# -- the lookout ---------------------------------------------------------------------------------------------


@route("GET", "/lookout")
async def lookout(site: WebSite, ctx: Ctx) -> Response:
    return site.render(ctx, "lookout.html", board=site.port.board(), views=site._views(ctx))


@route("POST", "/lookout/signal")
async def lookout_signal(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site._own(ctx, form.get("as"))
    try:
        await site.port.post_signal(
            agent, form.get("title", ""), form.get("source", ""), form.get("text", ""),
            form.get("sectors", ""),
        )  # fmt: skip
        site._say(ctx, "ok", ctx.t("Signal posted."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect("/lookout")


@route("POST", "/lookout/comment")
async def lookout_comment(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site._own(ctx, form.get("as"))
    try:
        await site.port.comment_item(agent, form.get("id", ""), form.get("text", ""))
        site._say(ctx, "ok", ctx.t("Comment posted."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect("/lookout")


@route("POST", "/lookout/poll")
async def lookout_poll(site: WebSite, ctx: Ctx) -> Response:
    form = ctx.request.form()
    agent = site._own(ctx, form.get("as"))
    try:
        await site.port.poll_item(agent, form.get("id", ""), form.get("choice", ""))
        site._say(ctx, "ok", ctx.t("Your poll answer is counted."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect("/lookout")


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
        site._say(ctx, "ok", ctx.t("Approved: the app runs from the next start of the node."))
    except (ConodeError, ValueError) as exc:
        site._say(ctx, "error", str(exc))
    return _redirect("/network")


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

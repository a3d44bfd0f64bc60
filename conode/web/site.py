"""The members' web page as a whole: who may use which route, rendering, logins and sessions.

Every request goes through ``WebSite.handle``:

1. static files and the login pages are public; everything else needs a
   session (else: the login page, or 403 for ``/events`` and POSTs);
2. every POST is checked for its CSRF token and its origin before its form
   is read (``_check_post``);
3. a member acts only as the agents of its login: each route that names an
   agent, a bill, an offer or a want resolves it and refuses (403) one that
   is not the login's (``own_agent``); node pages need an operator login;
4. an action answers with a redirect to a page that shows its outcome in
   plain words (a message kept in the session, shown once).

The routes live in ``pages`` (the members' own: home, pay, history) and
``apppages`` (exchange, Foundation, lookout, network, live updates); the
page reaches the node only through ``NodePort``.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable
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
from conode.web.money import format_amount
from conode.web.port import AgentView, NodePort
from conode.web.routing import (
    LOGIN_COOKIE,
    ROUTES,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Ctx,
    Forbidden,
    NotFound,
    label,
    redirect,
    routes,
    safe_next,
    when,
)
from conode.web.users import UserFile, WebUser, WebUserError

__all__ = ["SiteSettings", "WebSite", "routes"]

log = logging.getLogger("conode.web")

HERE: Final = Path(__file__).parent
STATIC_DIR: Final = HERE / "static"


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """How the page is reached: over TLS (directly or through a proxy) or plain loopback HTTP."""

    secure: bool = False
    behind_proxy: bool = False


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
        self.password_check = trio.CapacityLimiter(1)  # 64 MiB each: one at a time
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
        found = ROUTES.get((request.method, request.path))
        if found is None:
            known = any(path == request.path for _m, path in ROUTES)
            return self._error(ctx, 405 if known else 404)
        who, fn = found
        if who != "public" and session is None:
            if request.method == "GET" and request.path != "/events":
                return redirect(f"/login?{urlencode({'next': request.path})}")
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

    def client_of(self, request: Request) -> str:
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
                auto_reload=False,  # the templates ship in the package: no stat per page
            )
            env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
            self._envs[lang] = env
        return env

    def render(self, ctx: Ctx, template: str, code: int = 200, **values: Any) -> Response:
        """A page from its template, with what every page shows (who, language, messages).

        Rendered at once: a page takes about 3 ms of CPU, and rendering it in slices with
        checkpoints between them made payments slower, not faster (``docs/performance.md``)."""
        html = self._template(ctx, template).render(self._context(ctx, values))
        return _html(code, html)

    def _template(self, ctx: Ctx, template: str) -> jinja2.Template:
        return self._env(ctx.lang).get_template(template)

    def _context(self, ctx: Ctx, values: dict[str, Any]) -> dict[str, Any]:
        money = self.port.money()
        flash = []
        if ctx.session is not None and ctx.request.headers.get("x-live") is None:
            flash, ctx.session.flash = ctx.session.flash, []
        return {
            "ctx": ctx,
            "user": ctx.user,
            "csrf": "" if ctx.session is None else ctx.session.csrf,
            "lang": ctx.lang,
            "languages": i18n.LANGUAGES,
            "currency": money.currency,
            "amount": lambda minor, sign=False: format_amount(
                minor, money.scale, ctx.lang, sign=sign
            ),
            "when": when,
            "name_of": self.port.name_of,
            "name_of_key": self._name_of_text,
            "flash": flash,
            "path": ctx.request.path,
            **values,
        }

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
            [("content-type", kind), ("cache-control", "max-age=3600"), *SECURITY_HEADERS],
        )

    async def attempt(self, ctx: Ctx, action: Awaitable[Any], done: str) -> bool:
        """Await what a form asked for; say ``done``, or why the node refused (one line)."""
        try:
            await action
        except (ConodeError, ValueError) as exc:
            self.say(ctx, "error", str(exc))
            return False
        self.say(ctx, "ok", done)
        return True

    def say(self, ctx: Ctx, kind: str, text: str) -> None:
        """A message shown once on the next page (``kind``: ok or error)."""
        if ctx.session is not None:
            ctx.session.flash.append((kind, text))

    # -- resolving what a member names ------------------------------------------------------------

    def own_agent(self, ctx: Ctx, text: str | None) -> AgentKey:
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

    def views(self, ctx: Ctx) -> list[AgentView]:
        return [self.port.agent(key) for key in ctx.agents]

    def payee(self, text: str) -> AgentKey:
        """The agent a member picked from the directory: its label, its name, or its key."""
        text = text.strip()
        if text.startswith("agt_"):
            return AgentKey.parse(text)
        entries = self.port.directory()
        by_label = [e.key for e in entries if label(e) == text]
        by_name = [e.key for e in entries if e.name.casefold() == text.casefold()]
        found = by_label or by_name
        if len(found) != 1:
            raise ValueError("none" if not found else "several")
        return found[0]

    # -- login ------------------------------------------------------------------------------------

    def login_form(self, ctx: Ctx, status: int = 200, error: str = "") -> Response:
        token = ctx.request.cookie(LOGIN_COOKIE) or _token()
        ctx.cookies = [self.cookie(LOGIN_COOKIE, token, max_age=3600)]
        nxt = ctx.request.query.get("next") or ctx.request.form().get("next") or "/"
        return self.render(
            ctx, "login.html", status, login_csrf=token, error=error, next=safe_next(nxt)
        )

    def cookie(self, name: str, value: str, *, max_age: int | None = None) -> str:
        if self.settings.secure and name == SESSION_COOKIE:
            name = self.cookie_name
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.settings.secure:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)

    def log_in(self, ctx: Ctx, user: WebUser, next_path: str) -> Response:
        self.sessions.end(ctx.sid)
        sid, session = self.sessions.start(user.login, ctx.now_us)
        ctx.session, ctx.user = session, user
        ctx.cookies = [self.cookie(SESSION_COOKIE, sid), self.cookie(LOGIN_COOKIE, "", max_age=0)]
        return redirect(safe_next(next_path))


def _html(code: int, html: str) -> Response:
    headers = [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]
    return Response(code, html.encode(), [*headers, *SECURITY_HEADERS])


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


# the routes register themselves when their modules are imported
from conode.web import apppages, pages  # noqa: E402

__all__ += ["apppages", "pages"]

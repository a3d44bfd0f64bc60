"""How the web page's routes are declared and what each one is given.

A route is ``async def fn(site, ctx) -> Response`` registered with
``@route(method, path, who)``; ``who`` says who may use it (``public``,
``member``: any login, ``operator``). ``WebSite.handle`` checks that before
the route runs; the route checks what it names (``WebSite.own_agent``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from conode.hashes import AgentKey
from conode.web import i18n
from conode.web.auth import Session
from conode.web.http import Request, Response
from conode.web.port import DirectoryEntry
from conode.web.users import WebUser

if TYPE_CHECKING:
    from conode.web.site import WebSite

SESSION_COOKIE: Final = "conode_session"
LOGIN_COOKIE: Final = "conode_login"
SECURITY_HEADERS: Final = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
]

__all__ = [
    "LOGIN_COOKIE",
    "ROUTES",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Ctx",
    "Forbidden",
    "NotFound",
    "Route",
    "label",
    "redirect",
    "route",
    "routes",
    "safe_next",
    "table",
    "when",
]


class Forbidden(Exception):
    """The login may not see or do this (403)."""


class NotFound(Exception):
    """No such page or item (404)."""


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
ROUTES: dict[tuple[str, str], tuple[str, Route]] = {}


def route(method: str, path: str, who: str = "member") -> Callable[[Route], Route]:
    """Register a route: ``who`` is ``public``, ``member`` (any login) or ``operator``."""

    def register(fn: Route) -> Route:
        ROUTES[(method, path)] = (who, fn)
        return fn

    return register


def routes() -> dict[tuple[str, str], str]:
    """Every route and who may use it (the security tests walk them all)."""
    return {key: who for key, (who, _fn) in ROUTES.items()}


def table() -> dict[tuple[str, str], tuple[str, Route]]:
    """Every route: (method, path) -> (who may use it, the function)."""
    return ROUTES


def safe_next(path: str) -> str:
    """Only a path of this site (never ``//host`` or a URL) may follow a login."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def redirect(to: str) -> Response:
    return Response(303, b"", [("location", to), ("cache-control", "no-store")])


def when(us: int | None, with_time: bool = True) -> str:
    if us is None:
        return ""
    moment = dt.datetime.fromtimestamp(us / 1e6, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def label(entry: DirectoryEntry) -> str:
    """How an agent is shown in the payee list: its name, and its co-op's for a member."""
    return entry.name if entry.coop_name is None else f"{entry.name} ({entry.coop_name})"

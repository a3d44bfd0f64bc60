"""The web page's service in the node's trio process: listen, serve the site, feed live updates.

``conode run`` starts it beside the node (``conode.daemon``) unless
``--no-web``. A page bound to anything but loopback must be reached over
TLS: either the node holds a certificate and key (``web_tls_cert``,
``web_tls_key``), or the operator says a TLS reverse proxy stands in front
(``--behind-proxy``, docs/operator.md has the recipe); ``check_exposure``
refuses anything else before the node starts.

The site (its routes, Jinja2, the templates) is loaded at the first request,
not at start: a node whose page nobody opens keeps its idle memory (about
4 MB less; docs/performance.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from conode.dht.transport import TaskStatus
from conode.errors import ConodeError
from conode.web.http import Request, Response, parse_listen, serve_http
from conode.web.port import NodePort

if TYPE_CHECKING:
    from conode.web.site import WebSite

__all__ = ["DEFAULT_WEB_LISTEN", "URL_FILE", "WebConfig", "WebServer", "check_exposure"]

log = logging.getLogger("conode.web")

DEFAULT_WEB_LISTEN: Final = "127.0.0.1:7448"
URL_FILE: Final = "web-url"
"""Written in the data dir while the page is served: its address (``conode web`` reads it)."""


class WebConfigError(ConodeError):
    """The web page's settings cannot be used (an exposed address without TLS, a bad certificate)."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Where and how the page is served; ``data_dir`` holds the users file and the URL file."""

    data_dir: Path
    listen: str = DEFAULT_WEB_LISTEN
    tls_cert: Path | None = None
    tls_key: Path | None = None
    behind_proxy: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(config: WebConfig) -> None:
    """``WebConfigError`` unless the page is on loopback, or has TLS, or is behind a TLS proxy."""
    try:
        host, _port = parse_listen(config.listen)
    except ValueError as exc:
        raise WebConfigError(f"web_listen: {exc}") from exc
    if (config.tls_cert is None) != (config.tls_key is None):
        raise WebConfigError("web_tls_cert and web_tls_key go together: set both or neither")
    if not _loopback(host) and not config.tls and not config.behind_proxy:
        raise WebConfigError(
            f"the web page would listen on {config.listen} without TLS: set web_tls_cert and "
            "web_tls_key in config.toml, or run behind a TLS reverse proxy with --behind-proxy "
            "(docs/operator.md, 'The web page')"
        )


class WebServer:
    """Serves ``WebSite`` over ``port`` at ``config.listen`` until cancelled."""

    def __init__(self, port: NodePort, config: WebConfig) -> None:
        check_exposure(config)
        self.port = port
        self.config = config
        self._site: WebSite | None = None
        self.url = ""

    @property
    def site(self) -> WebSite:
        """The site, loaded on first use."""
        if self._site is None:
            from conode.web.site import SiteSettings, WebSite
            from conode.web.users import UserFile

            secure = self.config.tls or self.config.behind_proxy
            self._site = WebSite(
                self.port,
                UserFile(self.config.data_dir),
                SiteSettings(secure=secure, behind_proxy=self.config.behind_proxy),
            )
        return self._site

    async def handle(self, request: Request) -> Response:
        """The HTTP server's handler: the site's."""
        return await self.site.handle(request)

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        assert self.config.tls_cert is not None and self.config.tls_key is not None
        try:
            context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"cannot load the web TLS certificate: {exc}") from exc
        return context

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        host, port = parse_listen(self.config.listen)
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.config.tls else "http"
        self.url = f"{scheme}://{shown}:{bound}/"
        served = (
            [trio.SSLListener(listener, self._ssl_context()) for listener in listeners]
            if self.config.tls
            else listeners
        )
        url_file = self.config.data_dir / URL_FILE
        written = url_file.with_name(URL_FILE + ".new")
        written.write_text(self.url + "\n")
        written.replace(url_file)  # whole or absent: `conode web` never reads half an address
        log.info("web page at %s", self.url)
        task_status.started()
        try:
            await serve_http(self.handle, served)
        finally:
            with contextlib.suppress(OSError):
                url_file.unlink()

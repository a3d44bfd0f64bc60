"""A web page over two real nodes on the in-memory network, driven through ``WebSite.handle``.

``site_net`` starts two nodes (co-ops ``coop0`` and ``coop1`` with two members
each, the Foundation hosted on node 0) running the exchange, lookout and
foundation apps, and serves node 0's page from its ``NodeAdapter``. Logins:
``ana`` acts as ``coop0-m0``, ``bea`` as ``coop0-m1``, ``coop`` as ``coop0``,
``op`` is the operator (no agent). ``Client`` plays a browser: it keeps
cookies, reads each page's CSRF token, follows nothing by itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import app as exchange_app
from conode.apps.foundation import app as foundation_app
from conode.apps.hosting import NodeApps
from conode.apps.lookout import app as lookout_app
from conode.testing.network import TestNetwork
from conode.web.adapter import NodeAdapter
from conode.web.http import Request, Response
from conode.web.site import WebSite
from conode.web.users import UserFile

RUNNING = {"exchange": exchange_app, "lookout": lookout_app, "foundation": foundation_app}
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Client:
    """A browser's view of the site: cookies kept, the last CSRF token seen."""

    site: WebSite
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    origin: str | None = "http://127.0.0.1:7448"

    async def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        base, _, query = path.partition("?")
        all_headers = {"host": "127.0.0.1:7448", "accept-language": "en"}
        if self.cookies:
            all_headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            all_headers["content-type"] = "application/x-www-form-urlencoded"
            if self.origin is not None:
                all_headers["origin"] = self.origin
        all_headers.update(headers or {})
        from urllib.parse import parse_qsl

        response = await self.site.handle(
            Request(method, base, dict(parse_qsl(query)), all_headers, body, "127.0.0.1")
        )
        for name, value in response.headers:
            if name == "set-cookie":
                key, _, rest = value.partition("=")
                cookie_value = rest.split(";")[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = cookie_value
        found = _CSRF.search(response.body.decode(errors="replace"))
        if found:
            self.csrf = found.group(1)
        return response

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, form: dict[str, str]) -> Response:
        return await self.request("POST", path, {"csrf": self.csrf, **form})

    async def login(self, login: str, password: str = PASSWORD) -> Response:
        await self.get("/login")
        return await self.post("/login", {"login": login, "password": password})

    def text(self, response: Response) -> str:
        return response.body.decode()


@dataclass
class SiteNet:
    net: TestNetwork
    adapter: NodeAdapter
    site: WebSite
    users: UserFile

    def key(self, name: str) -> str:
        return str(self.net.agents[name])

    def client(self) -> Client:
        return Client(self.site)

    async def logged_in(self, login: str) -> Client:
        client = self.client()
        response = await client.login(login)
        assert response.status == 303, client.text(response)
        return client


@pytest.fixture
async def site_net(tmp_path: Path) -> AsyncIterator[SiteNet]:
    async with TestNetwork.start(
        tmp_path, nodes=2, members=2, apps=tuple(RUNNING), foundation=True, seed="web"
    ) as net:
        # placed (a sharded node holds only its own agents' chains until then), then agreed:
        # node 0's directory and payments reach coop1's agents
        await net.converge()
        node = net.nodes[0]
        plan = AppPlan((), RUNNING, NodeApps(RUNNING))
        host = AppHost(node, AppCatalog(node.store, net.charter, {}), plan)
        adapter = NodeAdapter(node, host)
        users = UserFile(tmp_path / "web")
        users.add("ana", agents=(net.agents["coop0-m0"],), password=PASSWORD)
        users.add("bea", agents=(net.agents["coop0-m1"],), password=PASSWORD)
        users.add("coop", agents=(net.agents["coop0"],), password=PASSWORD)
        users.add("op", password=PASSWORD, operator=True)
        site = WebSite(adapter, users)
        yield SiteNet(net, adapter, site, users)


def form_of(value: Any) -> dict[str, str]:
    return {k: str(v) for k, v in value.items()}

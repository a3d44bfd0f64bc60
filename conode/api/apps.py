"""The API's app methods: call a running app's function; list, show, fetch, approve and withdraw
app bundles."""

from __future__ import annotations

from typing import Any

from conode.api import params as p
from conode.api.params import Method, Names
from conode.errors import AppError, EncodingError
from conode.hashes import BundleHash
from conode.node.apps import AppHost

__all__ = ["AppMethods"]


class AppMethods:
    """``app.call``, ``app.list``, ``app.show``, ``app.fetch``, ``app.approve``,
    ``app.withdraw`` (``AppError`` if the node has no app host)."""

    def __init__(self, apps: AppHost | None, names: Names) -> None:
        self.apps = apps
        self.names = names

    def methods(self) -> dict[str, Method]:
        """The methods by name."""
        return {
            "app.call": self.call,
            "app.list": self.list,
            "app.show": self.show,
            "app.fetch": self.fetch,
            "app.approve": self.approve,
            "app.withdraw": self.withdraw,
        }

    def _apps(self) -> AppHost:
        if self.apps is None:
            raise AppError("this node has no app host")
        return self.apps

    def _bundle(self, params: dict[str, Any]) -> BundleHash:
        """``hash``: a bundle hash, whole or a unique prefix of one this node knows."""
        try:
            return self._apps().catalog.resolve(p.text(params, "hash"))
        except EncodingError as exc:
            raise ValueError(f"hash: {exc}") from exc

    async def call(self, params: dict[str, Any]) -> Any:
        """Run a function of a running app: ``{app, fn, params?, agent?}``; its result."""
        args = params.get("params") or {}
        if not isinstance(args, dict):
            raise ValueError("params is an object of the function's parameters")
        agent = params.get("agent")
        if agent is not None and not isinstance(agent, str):
            raise ValueError("agent is a name or an agt_… key")
        return await self._apps().call(
            p.text(params, "app"),
            p.text(params, "fn"),
            args,
            agent=agent,
            resolve=lambda text, hosted: self.names.agent(text, hosted=hosted),
        )

    async def list(self, params: dict[str, Any]) -> Any:
        """Every pinned or installed app: running?, approved?, and why not."""
        return self._apps().statuses()

    async def show(self, params: dict[str, Any]) -> Any:
        """A bundle's files and their text (installed or fetched here)."""
        return self._apps().catalog.show(self._bundle(params))

    async def fetch(self, params: dict[str, Any]) -> Any:
        """Fetch a bundle from the peers; kept only if its bytes hash to the hash asked for."""
        return await self._apps().fetch(self._bundle(params))

    async def approve(self, params: dict[str, Any]) -> Any:
        """Approve a bundle: its app runs from the node's next start (if installed at that hash)."""
        return self._apps().catalog.approve(self._bundle(params))

    async def withdraw(self, params: dict[str, Any]) -> Any:
        """Withdraw an approval: the app stops at the node's next start."""
        return self._apps().catalog.withdraw(self._bundle(params))

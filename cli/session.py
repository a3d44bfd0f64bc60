"""One command's session with the data dir's running node: the API client, the charter (for
amounts), the local agent it acts as (``--as``) and an app's functions (``app.call``).

Every command that asks a running node opens one ``Session``: an initialised
data dir first (so "run `conode init`" comes before "no node is running").
"""

from __future__ import annotations

import argparse
from functools import cached_property
from pathlib import Path
from typing import Any

from cli.client import ApiClient
from cli.datadir import CommandError, DataDir, default_data_dir
from cli.money import format_amount, parse_amount
from conode.validation.charter import Charter

__all__ = ["Session", "add_as_arg", "initialised_data_dir", "label"]


def initialised_data_dir(args: argparse.Namespace) -> DataDir:
    """``--data-dir`` (or the default), checked to be initialised."""
    chosen: Path | None = getattr(args, "data_dir", None)
    data = DataDir(chosen if chosen is not None else default_data_dir())
    data.config()  # "run `conode init`" before anything else
    return data


def add_as_arg(sub: argparse.ArgumentParser, default: str = "the node's only one") -> None:
    """``--as AGENT``: the local agent a command acts as."""
    sub.add_argument(
        "--as", dest="agent", metavar="AGENT", help=f"a local agent (default: {default})"
    )


def label(name: str | None, key: str) -> str:
    """An agent as people read it: its name and the start of its key."""
    short = key[:13]
    return f"{name} ({short}…)" if name and name != "?" else f"{short}…"


class Session:
    """One command's view of the running node: ``data``, ``client``, ``charter``; ``app_id``
    names the app whose functions ``act`` and ``read`` run."""

    def __init__(self, args: argparse.Namespace, app: str | None = None) -> None:
        self.data = initialised_data_dir(args)
        self.client = ApiClient(self.data)
        self.app_id = app
        self.agent: str | None = getattr(args, "agent", None) if app is not None else None
        """``--as``, for app commands (the money commands name their agents themselves)."""

    @cached_property
    def charter(self) -> Charter:
        """The network's charter (its currency and scale)."""
        return self.data.charter()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One API call to the data dir's node."""
        return self.client.call(method, params)

    def money(self, minor: int) -> str:
        """Minor units as major-unit text with the currency."""
        return format_amount(minor, self.charter.scale, self.charter.currency)

    def amount(self, text: str) -> int:
        """Typed major units as minor units (exactly)."""
        return parse_amount(text, self.charter.scale, self.charter.currency)

    def local_agent(self, given: str | None, role: str, option: str) -> str:
        """``given``, or the node's only hosted agent; an error naming the choices otherwise."""
        if given is not None:
            return given
        agents = self.call("agents")
        if len(agents) == 1:
            return str(agents[0]["name"])
        names = ", ".join(a["name"] for a in agents) or "none"
        raise CommandError(
            f"this node hosts several agents ({names}): choose the {role} with {option}"
        )

    def act(self, fn: str, params: dict[str, Any], agent: str | None = None) -> Any:
        """Run a function of the app that acts, as ``agent`` (default ``--as``, else the node's
        only one)."""
        chosen = agent if agent is not None else self.agent
        return self.call(
            "app.call", {"app": self.app_id, "fn": fn, "params": params, "agent": chosen}
        )

    def read(self, fn: str, params: dict[str, Any]) -> Any:
        """Run a function of the app that acts as nobody."""
        return self.call("app.call", {"app": self.app_id, "fn": fn, "params": params})

"""What the app commands (``offer``, ``want``, ``grants``, ``foundation``, ``lookout``, ``app``) share.

An initialised data dir (so "run `conode init`" comes before "no node is
running"), the running node's API, ``--as AGENT``, and the app function
calls over ``app.call``. Money goes through the network's charter.
"""

from __future__ import annotations

import argparse
from functools import cached_property
from pathlib import Path
from typing import Any

from cli.client import ApiClient
from cli.datadir import DataDir, default_data_dir
from cli.money import format_amount, parse_amount
from conode.validation.charter import Charter

__all__ = ["AppSession", "add_as_arg", "initialised_data_dir"]


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


class AppSession:
    """One command's view of the running node, for the functions of ``app``."""

    def __init__(self, args: argparse.Namespace, app: str) -> None:
        self.app_id = app
        self.data = initialised_data_dir(args)
        self.client = ApiClient(self.data)
        self.agent: str | None = getattr(args, "agent", None)

    @cached_property
    def charter(self) -> Charter:
        return self.data.charter()

    def act(self, fn: str, params: dict[str, Any], agent: str | None = None) -> Any:
        """Run a function that acts, as ``agent`` (default ``--as``, else the node's only one)."""
        chosen = agent if agent is not None else self.agent
        return self.client.call(
            "app.call", {"app": self.app_id, "fn": fn, "params": params, "agent": chosen}
        )

    def read(self, fn: str, params: dict[str, Any]) -> Any:
        """Run a function that acts as nobody."""
        return self.client.call("app.call", {"app": self.app_id, "fn": fn, "params": params})

    def amount(self, text: str) -> int:
        """Typed major units as minor units, exactly."""
        return parse_amount(text, self.charter.scale, self.charter.currency)

    def money(self, minor: int) -> str:
        return format_amount(minor, self.charter.scale, self.charter.currency)

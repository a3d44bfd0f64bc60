"""``conode foundation host NAME``: the Foundation's genesis on this node, which becomes its steward.

Offline (the node stopped), like ``conode coop genesis``: the record goes
through ``conode.offline.commit_offline``, judged by the rules a running
node applies. Once the node runs with the Foundation's key, its governance
duty pays every ratified disbursement (``conode.node.governance``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cli import netcmds, network
from cli.passphrases import add_passphrase_options, source_of

__all__ = ["add_host"]

Handler = Callable[[argparse.Namespace], int]


def add_host(
    subs: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``foundation host`` to the ``foundation`` subcommands."""
    host = command(
        subs, "host", _host, "commit the Foundation's genesis here: this node becomes its steward"
    )
    host.add_argument("name", metavar="NAME", help="the local agent holding the Foundation's key")
    add_passphrase_options(host)
    json_flag(host)


def _host(args: argparse.Namespace) -> int:
    data = netcmds.data_dir(args)
    charter = data.charter()
    ref = network.member_ref(data, args.name)
    with netcmds.stopped(data, "conode foundation host"), data.open_node_store() as store:
        record = network.foundation_genesis(data, store, charter, ref, source_of(args))
    return netcmds.genesis_out(args, "the Foundation", ref.name or args.name, ref.agent, record)

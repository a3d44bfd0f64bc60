"""The parsers of the commands that talk to a running node (``status``, ``pay``, ``bills`` ...),
and ``audit``; their handlers live by job in ``cli.nodecmds``, ``cli.paycmds``, ``cli.auditcmds``.

Each is a thin client of the node's API (``cli.client``, ``docs/api.md``):
it converts what people type (major-unit amounts, days, names) into API
parameters, and the answer back into text or JSON. ``audit`` of export
files is the one command here that needs no node.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from cli import auditcmds, nodecmds, paycmds
from cli.money import whole_arg
from cli.passphrases import add_passphrase_options

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]
_MONTH: Final = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the API commands to the ``conode`` parser."""
    json_flag(command(commands, "status", nodecmds.status, "what the running node is doing"))
    peers = command(commands, "peers", nodecmds.peers, "the peers the running node is connected to")
    json_flag(peers)
    firewall = peers.add_subparsers(dest="peers_command", metavar="[COMMAND]", required=False)
    block = command(
        firewall, "block", nodecmds.block, "stop talking to peers (until unblocked or restart)"
    )
    block.add_argument("peer_ids", nargs="+", metavar="PEER_ID", help="12D3KooW… peer ids")
    json_flag(block)
    unblock = command(firewall, "unblock", nodecmds.unblock, "talk to blocked peers again")
    unblock.add_argument("peer_ids", nargs="*", metavar="PEER_ID", help="12D3KooW… peer ids")
    unblock.add_argument("--all", action="store_true", help="unblock every peer")
    json_flag(unblock)

    sessions = command(
        commands,
        "sessions",
        nodecmds.sessions,
        "payment sessions not finished here, and held chains",
    )
    json_flag(sessions)
    session_commands = sessions.add_subparsers(
        dest="sessions_command", metavar="[COMMAND]", required=False
    )
    release = command(
        session_commands, "release", nodecmds.release, "give up a session holding a chain (safely)"
    )
    release.add_argument("id", metavar="ID", help="the session's id (at least 8 hex digits)")
    release.add_argument(
        "--force",
        action="store_true",
        help="give up a payee's signed position although the payer's decision is unknown",
    )
    json_flag(release)

    balance = command(
        commands, "balance", paycmds.balance, "an agent's balance (default: every local one)"
    )
    balance.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    json_flag(balance)

    pay = command(commands, "pay", paycmds.pay, "pay an agent: a countersigned payment")
    pay.add_argument("to", metavar="AGENT", help="the payee: a name or agt_… key")
    pay.add_argument("amount", metavar="AMOUNT", help="in major units, e.g. 12.50")
    pay.add_argument("--from", dest="payer", metavar="AGENT", help="the local payer")
    pay.add_argument("--memo", default="", metavar="TEXT", help="a note for both parties")
    pay.add_argument(
        "--offer", metavar="OFFER_ID", help="the payee's exchange offer (act_…) this buys from"
    )
    pay.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="retry a payment whose answer was lost: the same KEY never pays twice "
        "(without it a new key is made and printed)",
    )
    json_flag(pay)

    bill = command(commands, "bill", paycmds.bill, "ask an agent to pay you")
    bill.add_argument("to", metavar="AGENT", help="who is asked to pay: a name or agt_… key")
    bill.add_argument("amount", metavar="AMOUNT", help="in major units, e.g. 12.50")
    bill.add_argument("--from", dest="payee", metavar="AGENT", help="the local agent to be paid")
    bill.add_argument("--memo", default="", metavar="TEXT", help="what the bill is for")
    bill.add_argument(
        "--expires", type=whole_arg(1), default=7, metavar="DAYS", help="days to pay (default 7)"
    )
    json_flag(bill)

    json_flag(command(commands, "bills", paycmds.bills, "bills to and from the local agents"))
    accept = command(commands, "accept", paycmds.accept, "pay a bill addressed to a local agent")
    accept.add_argument("id", metavar="ID", help="the bill's id (or a unique start of it)")
    json_flag(accept)
    decline = command(
        commands, "decline", paycmds.decline, "decline a bill addressed to a local agent"
    )
    decline.add_argument("id", metavar="ID", help="the bill's id (or a unique start of it)")
    json_flag(decline)

    history = command(commands, "history", paycmds.history, "an agent's payments, oldest first")
    history.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    history.add_argument("--csv", action="store_true", help="print CSV (for a spreadsheet)")
    json_flag(history)

    statement = command(
        commands, "statement", paycmds.statement, "an agent's statement for one month"
    )
    statement.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    statement.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    json_flag(statement)

    audit = command(
        commands,
        "audit",
        auditcmds.audit,
        "audit chains: export files offline, or agents through the running node",
    )
    audit.add_argument(
        "targets", nargs="+", metavar="TARGET", help="export files, or agent names or agt_… keys"
    )
    audit.add_argument(
        "--charter", type=Path, metavar="F", help="the charter (default: the data dir's)"
    )
    json_flag(audit)

    recover = command(
        commands,
        "recover",
        nodecmds.recover,
        "host an agent again from its key file; rebuild its chain",
    )
    recover.add_argument("--key", type=Path, required=True, metavar="FILE", help="the key file")
    add_passphrase_options(recover)
    json_flag(recover)


def _month(text: str) -> str:
    if _MONTH.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)")
    return text

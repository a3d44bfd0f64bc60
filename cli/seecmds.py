"""``conode warrants`` and ``conode directory``: seeing the network through the running node.

Both read the node's ``warrants`` and ``directory`` API methods
(``conode.seeing``); ``--json`` prints the answer as it came.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cli.output import EXIT_OK, print_json
from cli.render import minute_time, table
from cli.session import Session

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``warrants`` and ``directory`` to the ``conode`` parser."""
    json_flag(
        command(
            commands, "warrants", _warrants, "who is warranted, for what rule, and what it means"
        )
    )
    json_flag(
        command(
            commands,
            "directory",
            _directory,
            "every agent the node knows: name, key, role, co-op, host, revoked/warranted",
        )
    )


def _warrants(args: argparse.Namespace) -> int:
    rows = Session(args).call("warrants")
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no warrants: nobody this node knows has been caught breaking the rules")
        return EXIT_OK
    for row in rows:
        coop = f", of {row['coop']}" if row.get("coop") and row["coop"] != row["name"] else ""
        here = " (hosted on this node)" if row["hosted_here"] else ""
        print(f"{row['name']} ({row['offender']}){coop}{here}")
        print(f"  warranted {minute_time(row['issued_at'])} UTC: {row['rule']}: {row['reason']}")
        evidence = ", ".join(f"{e['record']} (seq {e['seq']})" for e in row["evidence"])
        print(f"  evidence: {evidence}")
        print(f"  what it means: {row['meaning']}")
    return EXIT_OK


def _directory(args: argparse.Namespace) -> int:
    rows = Session(args).call("directory")
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(
        table(
            ("NAME", "AGENT", "ROLE", "CO-OP", "HOSTED BY", "STANDING"),
            [
                (
                    r["name"],
                    r["agent"],
                    r["role"],
                    r["coop_name"] or "-",
                    r["hosted_by"] or "not known",
                    _standing(r),
                )
                for r in rows
            ],
        )
    )
    return EXIT_OK


def _standing(row: dict[str, Any]) -> str:
    marks = [m for m in ("revoked", "warranted") if row[m]]
    return ", ".join(marks) or "ok"

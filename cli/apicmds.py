"""The commands that talk to a running node (``status``, ``pay``, ``bills`` ...), and ``audit``.

Each is a thin client of the node's API (``cli.client``, ``docs/api.md``):
it converts what people type (major-unit amounts, days, names) into API
parameters, and the answer back into text or JSON. ``audit`` of export
files is the one command here that needs no node.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from cli.auditfiles import (
    FileAudit,
    audit_files,
    count_records,
    overdue_json,
    report_json,
    rings_json,
)
from cli.client import ApiClient, ApiError, NodeNotRunning
from cli.datadir import CommandError, DataDir, read_charter
from cli.money import format_amount, parse_amount, whole_arg
from cli.output import EXIT_FAILED, EXIT_OK, note, print_json
from cli.passphrases import add_passphrase_options, source_of
from cli.render import Progress, iso_time, minute_time, spreadsheet_text, table
from conode.apps.exchange import GRANT
from conode.apps.exchange.rings import RingSearch
from conode.hashes import AgentKey
from conode.keyfile import (
    KEY_FILE_SUFFIX,
    check_agent_name,
    load_key,
    read_key_info,
)
from conode.passphrase import PassphraseSource
from conode.validation.audit import AuditViolation
from conode.validation.charter import Charter

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]
_MONTH: Final = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_DAY_S: Final = 86_400


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the API commands to the ``conode`` parser."""
    json_flag(command(commands, "status", _status, "what the running node is doing"))
    peers = command(commands, "peers", _peers, "the peers the running node is connected to")
    json_flag(peers)
    firewall = peers.add_subparsers(dest="peers_command", metavar="[COMMAND]", required=False)
    block = command(firewall, "block", _block, "stop talking to peers (until unblocked or restart)")
    block.add_argument("peer_ids", nargs="+", metavar="PEER_ID", help="12D3KooW… peer ids")
    json_flag(block)
    unblock = command(firewall, "unblock", _unblock, "talk to blocked peers again")
    unblock.add_argument("peer_ids", nargs="*", metavar="PEER_ID", help="12D3KooW… peer ids")
    unblock.add_argument("--all", action="store_true", help="unblock every peer")
    json_flag(unblock)

    sessions = command(
        commands, "sessions", _sessions, "payment sessions not finished here, and held chains"
    )
    json_flag(sessions)
    session_commands = sessions.add_subparsers(
        dest="sessions_command", metavar="[COMMAND]", required=False
    )
    release = command(
        session_commands, "release", _release, "give up a session holding a chain (safely)"
    )
    release.add_argument("id", metavar="ID", help="the session's id (at least 8 hex digits)")
    release.add_argument(
        "--force",
        action="store_true",
        help="give up a payee's signed position although the payer's decision is unknown",
    )
    json_flag(release)

    balance = command(
        commands, "balance", _balance, "an agent's balance (default: every local one)"
    )
    balance.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    json_flag(balance)

    pay = command(commands, "pay", _pay, "pay an agent: a countersigned payment")
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

    bill = command(commands, "bill", _bill, "ask an agent to pay you")
    bill.add_argument("to", metavar="AGENT", help="who is asked to pay: a name or agt_… key")
    bill.add_argument("amount", metavar="AMOUNT", help="in major units, e.g. 12.50")
    bill.add_argument("--from", dest="payee", metavar="AGENT", help="the local agent to be paid")
    bill.add_argument("--memo", default="", metavar="TEXT", help="what the bill is for")
    bill.add_argument(
        "--expires", type=whole_arg(1), default=7, metavar="DAYS", help="days to pay (default 7)"
    )
    json_flag(bill)

    json_flag(command(commands, "bills", _bills, "bills to and from the local agents"))
    accept = command(commands, "accept", _accept, "pay a bill addressed to a local agent")
    accept.add_argument("id", metavar="ID", help="the bill's id (or a unique start of it)")
    json_flag(accept)
    decline = command(commands, "decline", _decline, "decline a bill addressed to a local agent")
    decline.add_argument("id", metavar="ID", help="the bill's id (or a unique start of it)")
    json_flag(decline)

    history = command(commands, "history", _history, "an agent's payments, oldest first")
    history.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    history.add_argument("--csv", action="store_true", help="print CSV (for a spreadsheet)")
    json_flag(history)

    statement = command(commands, "statement", _statement, "an agent's statement for one month")
    statement.add_argument("agent", nargs="?", metavar="AGENT", help="a name or agt_… key")
    statement.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    json_flag(statement)

    audit = command(
        commands,
        "audit",
        _audit,
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
        commands, "recover", _recover, "host an agent again from its key file; rebuild its chain"
    )
    recover.add_argument("--key", type=Path, required=True, metavar="FILE", help="the key file")
    add_passphrase_options(recover)
    json_flag(recover)


# -- helpers ------------------------------------------------------------------------------------


def _month(text: str) -> str:
    if _MONTH.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)")
    return text


def _data_dir(args: argparse.Namespace) -> DataDir:
    from cli.datadir import default_data_dir

    chosen: Path | None = getattr(args, "data_dir", None)
    return DataDir(chosen if chosen is not None else default_data_dir())


class _Session:
    """A data dir, its charter (for amounts) and a client of its node."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.data = _data_dir(args)
        self.data.config()  # "run `conode init`" before "no node is running"
        self.charter = self.data.charter()
        self.client = ApiClient(self.data)

    def money(self, minor: int) -> str:
        """Minor units as major-unit text with the currency."""
        return format_amount(minor, self.charter.scale, self.charter.currency)

    def amount(self, text: str) -> int:
        """Typed major units as minor units (exactly)."""
        return parse_amount(text, self.charter.scale, self.charter.currency)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One API call to the data dir's node."""
        return self.client.call(method, params)

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


def _label(name: str | None, key: str) -> str:
    short = key[:13]
    return f"{name} ({short}…)" if name and name != "?" else f"{short}…"


# -- status and peers ----------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    status = ApiClient(data).call("status")
    if args.json:
        print_json(status)
        return EXIT_OK
    agents = ", ".join(a["name"] for a in status.get("agents", [])) or "none"
    rows = [
        ("node", status.get("peer_id", "?")),
        ("network", status.get("network", "?")),
        ("advertises", " ".join(status.get("listen", [])) or "-"),  # where peers dial it
        ("peers", status.get("peers", 0)),
        ("agents", agents),
        ("chains", status.get("chains", 0)),
        ("pending", status.get("pending", 0)),
        ("publishing", status.get("publishing", 0)),
        (
            "sessions",
            f"{status.get('sessions', 0)} open, {status.get('locked_chains', 0)} chains held",
        ),
        ("warrants", status.get("warrants", 0)),
        ("heads", str(status.get("heads_digest", ""))[:16]),
        (
            "apps",
            ", ".join(
                a["id"] if a["running"] else f"{a['id']} (not running: {a['reason']})"
                for a in status.get("apps", [])
            )
            or "none",
        ),
    ]
    for key, value in rows:
        print(f"{key:<11}{value}")
    for warning in status.get("clock_warnings") or []:
        offset = warning["offset_s"]
        side = "ahead of" if offset > 0 else "behind"
        print(
            f"warning: the clock of peer {warning['peer_id']} is {abs(offset):.0f} s {side} this "
            "node's: set up NTP on both (payments fail past the network's clock tolerance)"
        )
    return EXIT_OK


def _peers(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    peers = ApiClient(data).call("peers")
    if args.json:
        print_json(peers)
    elif not peers:
        print("no peers connected")
    else:
        print(
            table(
                ("PEER", "AGENTS", "ADDRESS"),
                [
                    (
                        p["peer_id"],
                        ", ".join(p.get("agents") or []) or "-",
                        (p.get("addrs") or ["-"])[0],
                    )
                    for p in peers
                ],
            )
        )
    return EXIT_OK


def _sessions(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    rows = ApiClient(data).call("sessions")["sessions"]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no session is open and no chain is held")
    else:
        print(
            table(
                ("ID", "ROLE", "PHASE", "AGENT", "HOLDS CHAIN", "NOTE"),
                [
                    (
                        row["id"][:16],
                        row["role"] or "-",
                        row["phase"],
                        row["agent"][:16] + "…",
                        "yes" if row["holds_chain"] else "no",
                        _session_note(row),
                    )
                    for row in rows
                ],
            )
        )
    return EXIT_OK


def _session_note(row: dict[str, Any]) -> str:
    if row.get("owes_write"):
        return f"retrying its {row['owes_write']} write (is the disk full?)"
    if row.get("payer_committed"):
        return "the payer committed: waiting for its witnesses"
    if row["phase"] == "signed":
        return "waiting for the payer's decision"
    return ""


def _release(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    said = ApiClient(data).call("sessions.release", {"id": args.id, "force": args.force})
    if args.json:
        print_json(said)
    else:
        print(said["released"])
    return EXIT_OK


def _blocked_out(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        print_json(result)
    elif result["blocked"]:
        print("blocked: " + " ".join(result["blocked"]))
    else:
        print("no peer is blocked")
    return EXIT_OK


def _block(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    return _blocked_out(args, ApiClient(data).call("block", {"peers": args.peer_ids}))


def _unblock(args: argparse.Namespace) -> int:
    if args.all == bool(args.peer_ids):
        args.parser.error("peers unblock takes PEER_ID... or --all")
    data = _data_dir(args)
    data.config()
    params: dict[str, Any] = {"all": True} if args.all else {"peers": args.peer_ids}
    return _blocked_out(args, ApiClient(data).call("unblock", params))


# -- balances and payments ------------------------------------------------------------------------


def _balance(args: argparse.Namespace) -> int:
    session = _Session(args)
    if args.agent is None:
        agents = session.call("agents")
        if args.json:
            print_json([{**a, "balance_text": session.money(a["balance"])} for a in agents])
            return EXIT_OK
        print(
            table(
                ("NAME", "AGENT", "BALANCE"),
                [(a["name"], a["key"], session.money(a["balance"])) for a in agents],
            )
        )
        return EXIT_OK
    result = session.call("balance", {"agent": args.agent})
    if args.json:
        print_json({**result, "balance_text": session.money(result["balance"])})
    else:
        print(f"{_label(result.get('name'), result['agent'])}: {session.money(result['balance'])}")
    return EXIT_OK


def _payment_out(
    session: _Session, args: argparse.Namespace, result: dict[str, Any], what: str
) -> int:
    if args.json:
        print_json(result)
    elif result.get("committed"):
        print(f"{what} ({result.get('record')}, {result.get('elapsed_ms', 0):.0f} ms)")
    if not result.get("committed"):
        reason = str(result.get("reason") or "no reason given").removeprefix("refused: ")
        raise CommandError(f"payment refused: {reason}")
    return EXIT_OK


def _pay(args: argparse.Namespace) -> int:
    session = _Session(args)
    amount = session.amount(args.amount)
    payer = session.local_agent(args.payer, "payer", "--from")
    key = args.idempotency_key or secrets.token_hex(16)
    params = {
        "from": payer, "to": args.to, "amount": amount, "memo": args.memo, "idempotency_key": key
    }  # fmt: skip
    if args.offer is not None:
        params["offer"] = args.offer
    if not args.json:  # said before the node answers: a lost answer can be asked again with it
        print(f"idempotency key: {key} (to retry safely: --idempotency-key {key})", flush=True)
    result = session.call("pay", params)
    result = {**result, "from": payer, "to": args.to, "amount": amount}
    return _payment_out(
        session, args, result, f"paid {session.money(amount)} from {payer} to {args.to}"
    )


def _bill(args: argparse.Namespace) -> int:
    session = _Session(args)
    amount = session.amount(args.amount)
    payee = session.local_agent(args.payee, "payee", "--from")
    result = session.call(
        "bill",
        {
            "from": payee,
            "to": args.to,
            "amount": amount,
            "memo": args.memo,
            "expires_in_s": args.expires * _DAY_S,
        },
    )
    if args.json:
        print_json({**result, "from": payee, "to": args.to, "amount": amount})
    else:
        print(
            f"billed {args.to} {session.money(amount)} for {payee}; it expires in "
            f"{args.expires} days; id {result['id']}"
        )
    return EXIT_OK


def _bills(args: argparse.Namespace) -> int:
    session = _Session(args)
    bills = session.call("bills")
    if args.json:
        print_json(bills)
    elif not bills:
        print("no bills")
    else:
        print(
            table(
                ("ID", "FROM", "TO", "AMOUNT", "STATUS", "EXPIRES", "MEMO"),
                [
                    (
                        b["id"],
                        b.get("payee_name") or b["payee"][:13],
                        b.get("payer_name") or b["payer"][:13],
                        session.money(b["amount"]),
                        b["status"],
                        minute_time(b["expires_at"]),
                        b.get("memo") or "",
                    )
                    for b in bills
                ],
            )
        )
    return EXIT_OK


def _find_bill(session: _Session, text: str) -> dict[str, Any]:
    """The bill ``bills`` lists under an id or a unique start of one."""
    bills = session.call("bills")
    exact = [b for b in bills if b["id"] == text]
    matches = exact or [b for b in bills if b["id"].startswith(text)]
    if len(matches) == 1:
        return dict(matches[0])
    if not matches:
        raise CommandError(f"no bill {text!r} here (see `conode bills`)")
    raise CommandError(f"{text!r} starts several bills' ids: give more of it")


_SETTLED: Final = {
    # (what is asked, the bill's status): why not, as the activity rule `bill-settled` says
    ("accept", "paid"): "was already paid: a bill is paid once",
    ("accept", "declined"): "was declined: it cannot be paid",
    ("decline", "paid"): "was paid: it cannot be declined",
    ("decline", "declined"): "is already declined",
}


def _open_bill(session: _Session, text: str, action: str) -> str:
    """The id of the bill named by ``text``, refused if it is settled (paid or declined).

    The node's rules refuse it too (``bill-settled``, ``paid-once``); asking
    first names the reason rather than whatever check the node meets first.
    """
    bill = _find_bill(session, text)
    why = _SETTLED.get((action, bill["status"]))
    if why is not None:
        raise CommandError(f"bill {bill['id']} {why}")
    return str(bill["id"])


def _accept(args: argparse.Namespace) -> int:
    session = _Session(args)
    bill_id = _open_bill(session, args.id, "accept")
    result = {**session.call("accept", {"id": bill_id}), "bill": bill_id}
    return _payment_out(session, args, result, f"paid bill {bill_id}")


def _decline(args: argparse.Namespace) -> int:
    session = _Session(args)
    bill_id = _open_bill(session, args.id, "decline")
    result = session.call("decline", {"id": bill_id})
    if args.json:
        print_json({**result, "bill": bill_id})
    else:
        print(f"declined bill {bill_id} ({result['id']})")
    return EXIT_OK


# -- history and statements ---------------------------------------------------------------------------


def _history(args: argparse.Namespace) -> int:
    session = _Session(args)
    params = {} if args.agent is None else {"agent": args.agent}
    result = session.call("history", params)
    rows = result["payments"]
    if args.json:
        print_json(result)
    elif args.csv:
        _write_csv(session, rows)
    elif not rows:
        print(f"no payments yet for {_label(result.get('name'), result['agent'])}")
    else:
        print(f"payments of {_label(result.get('name'), result['agent'])}:")
        print(_payments_table(session, rows))
    return EXIT_OK


def _payments_table(session: _Session, rows: list[dict[str, Any]]) -> str:
    return table(
        ("TIME", "DIR", "COUNTERPARTY", "AMOUNT", "BALANCE", "MEMO"),
        [
            (
                iso_time(r["timestamp"])[:19].replace("T", " "),
                r["direction"],
                _label(r.get("counterparty_name"), r["counterparty"]),
                session.money(r["amount"]),
                session.money(r["balance_after"]),
                _what(r),
            )
            for r in rows
        ],
    )


def _what(row: dict[str, Any]) -> str:
    """The memo, and what was bought when the payment names an exchange offer."""
    memo = row.get("memo") or ""
    if row.get("offer") is None:
        return memo
    bought = row.get("offer_title") or f"offer {row['offer'][:16]}…"
    return f"{bought}: {memo}" if memo else str(bought)


def _write_csv(session: _Session, rows: list[dict[str, Any]]) -> None:
    scale = session.charter.scale
    # RFC 4180's CRLF line ends: a cell holding a CR or LF (a memo) is then quoted, as it must be
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(
        [
            "time",
            "direction",
            "counterparty_name",
            "counterparty",
            "amount",
            "balance_after",
            "currency",
            "memo",
            "bill",
            "offer",
            "offer_title",
            "record",
        ]
    )
    text = spreadsheet_text  # what people wrote; amounts are numbers we format ourselves
    for r in rows:
        writer.writerow(
            [
                iso_time(r["timestamp"]),
                r["direction"],
                text(r.get("counterparty_name") or ""),
                r["counterparty"],
                format_amount(r["amount"], scale),
                format_amount(r["balance_after"], scale),
                text(session.charter.currency),
                text(r.get("memo") or ""),
                r.get("ref") or "",
                r.get("offer") or "",
                text(r.get("offer_title") or ""),
                r["record"],
            ]
        )


def _statement(args: argparse.Namespace) -> int:
    session = _Session(args)
    params: dict[str, Any] = {"month": args.month}
    if args.agent is not None:
        params["agent"] = args.agent
    result = session.call("statement", params)
    if args.json:
        print_json(result)
        return EXIT_OK
    money = session.money
    print(f"statement of {_label(result.get('name'), result['agent'])} for {result['month']}")
    print(f"opening balance  {money(result['opening_balance'])}")
    print(f"paid in          {money(result['paid_in'])}")
    print(f"paid out         {money(result['paid_out'])}")
    print(f"closing balance  {money(result['closing_balance'])}")
    if result["payments"]:
        print(_payments_table(session, result["payments"]))
    else:
        print("no payments in this month")
    return EXIT_OK


# -- audit ------------------------------------------------------------------------------------------------


def _audit(args: argparse.Namespace) -> int:
    files = [Path(t) for t in args.targets if Path(t).is_file()]
    if files and len(files) != len(args.targets):
        missing = [t for t in args.targets if not Path(t).is_file()]
        raise CommandError(f"{missing[0]!r} is not a file: give export files only, or agents only")
    if files:
        return _audit_files(args, files)
    if args.charter is not None:
        raise CommandError("--charter is for auditing export files")
    return _audit_agents(args)


def _audit_charter(args: argparse.Namespace) -> Charter:
    if args.charter is not None:
        return read_charter(args.charter)
    data = _data_dir(args)
    if not data.has_charter():
        raise CommandError(
            "auditing export files needs the network's charter: "
            "give --charter F (or a --data-dir that has one)"
        )
    return data.charter()


def _audit_files(args: argparse.Namespace, files: list[Path]) -> int:
    charter = _audit_charter(args)
    total = count_records(files)
    progress = Progress.maybe(f"auditing {len(files)} chains", total)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done)

    try:
        result = audit_files(charter, files, tick)
    finally:
        if progress is not None:
            progress.close()
    report = result.report
    violations = result.violations
    names = report.names
    if args.json:
        print_json(
            {
                **report_json(report, violations, names),
                **rings_json(result.rings, names),
                **overdue_json(result, names),
                "apps_judged": result.apps_judged,
                "apps_unjudged": result.apps_unjudged,
                "files": result.files,
            }
        )
        return EXIT_OK if result.valid else EXIT_FAILED

    def money(minor: int) -> str:
        return format_amount(minor, charter.scale, charter.currency)

    print(
        f"audited {report.chains} chains, {report.records} records from {result.files} files "
        f"(network {charter.name}, {charter.network_id})"
    )
    if result.apps_judged or result.apps_unjudged:
        judged = ", ".join(result.apps_judged) or "none"
        print(f"apps judged with the pinned code: {judged}")
    if result.apps_unjudged:
        print(
            "apps NOT judged (not installed here, or not the pinned version; their records are "
            f"taken as valid): {', '.join(result.apps_unjudged)}"
        )
    _print_violations(violations, names)
    print("balances:")
    print(
        table(
            ("NAME", "AGENT", "BALANCE"),
            [
                (names.get(agent, "?"), str(agent), money(balance))
                for agent, balance in sorted(
                    report.balances.items(), key=lambda kv: names.get(kv[0], "")
                )
            ],
        )
    )
    if report.issuance:
        print(f"issuance account (what apps granted): {money(report.issuance)}")
    for item in report.unmatched:
        owner = names.get(item.agent, item.agent.short())
        what = "in flight (the other chain is not held that far)" if item.finding is None else (
            "named above"
        )
        print(
            f"not counted: {money(item.delta)} on {owner}'s chain at seq {item.seq}, a payment "
            f"the other party's chain does not hold ({what})"
        )
    if report.zero_sum:
        print(f"zero sum: yes (the balances and the issuance account total {money(0)})")
    else:
        why = (
            "the invalid records above are left out"
            if violations
            else "is every chain of the network in the files?"
        )
        print(
            f"zero sum: NO: the balances total {money(report.total + report.issuance)} ({why})"
        )
    _print_rings(result.rings, names, money)
    _print_overdue(result, names)
    print("result: VALID" if result.valid else "result: INVALID")
    return EXIT_OK if result.valid else EXIT_FAILED


def _print_rings(
    rings: RingSearch, names: dict[AgentKey, str], money: Callable[[int], str]
) -> None:
    """Trade rings: co-ops buying each other's offers in a circle in one month (not violations)."""
    heading = "trade rings (co-ops that bought each other's offers in a circle in one month)"
    if not rings.rings:
        print(f"{heading}: none")
    else:
        print(f"{heading}, worth a look: grants count these sales:")
        for ring in rings.rings:
            legs = [
                f"{names.get(coop, coop.short())} -{money(amount)}->"
                for coop, amount in zip(ring.coops, ring.amounts, strict=True)
            ]
            print(f"  {ring.month}: {' '.join(legs)} {names.get(ring.coops[0], '?')}")
    if not rings.complete:
        print("  (the search stopped at its bounds: there may be more)")


def _print_overdue(result: FileAudit, names: dict[AgentKey, str]) -> None:
    """Chains owing an entry as of the newest record: a co-op's grant line owed its re-estimate."""
    found = overdue_json(result, names)
    heading = f"overdue as of {found['overdue_as_of']} (the newest record)"
    if not found["overdue"]:
        print(f"{heading}: none")
        return
    print(f"{heading}: these may not pay until they commit what they owe:")
    for row in found["overdue"]:
        what = "grant line owes its re-estimate" if row["entry_type"] == GRANT else row["entry_type"]
        print(f"  {row['name']} ({row['agent'][:16]}…): {what}, due {row['due']}")


def _print_violations(violations: list[AuditViolation], names: dict[AgentKey, str]) -> None:
    if not violations:
        print("violations: none")
        return
    print(f"violations ({len(violations)}):")
    print(
        table(
            ("AGENT", "NAME", "SEQ", "RULE", "REASON"),
            [
                (v.agent.short(), names.get(v.agent, "?"), v.seq, v.rule, v.reason)
                for v in violations
            ],
        )
    )


def _audit_agents(args: argparse.Namespace) -> int:
    session = _Session(args)
    reports = []
    for target in args.targets:
        key = target if target.startswith("agt_") else None
        report = session.call("audit", {"agent": target})
        if key is None:
            key = next(iter(report.get("balances") or {}), target)
        reports.append({"target": target, "agent": key, **report})
    valid = all(r["valid"] for r in reports)
    if args.json:
        print_json(reports if len(reports) > 1 else reports[0])
        return EXIT_OK if valid else EXIT_FAILED
    for r in reports:
        name = (r.get("names") or {}).get(r["agent"], r["target"])
        balance = (r.get("balances") or {}).get(r["agent"])
        shown = "-" if balance is None else session.money(balance)
        verdict = "valid" if r["valid"] else "INVALID"
        print(f"{_label(name, r['agent'])}: {r['records']} records, {verdict}, balance {shown}")
        for v in r["violations"]:
            print(f"  seq {v['seq']}: {v['rule']}: {v['reason']}")
    return EXIT_OK if valid else EXIT_FAILED


# -- recover ----------------------------------------------------------------------------------------------


def _recover(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    data.config()
    info = read_key_info(args.key)
    check_agent_name(info.name)
    if not info.encrypted:
        load_key(args.key)  # checks the file's mode and that it holds the agent it names
    dest = data.keys_dir / f"{info.name}{KEY_FILE_SUFFIX}"
    copied = _install_key(args.key, dest, info.agent)
    client = ApiClient(data)
    # a passphrase from recover's own options goes with the request; else the node's sources
    given = source_of(args).find(info.name) if info.encrypted else None
    try:
        try:
            result = client.call("recover", _recover_params(dest, given))
        except ApiError as exc:
            asked = str(exc).startswith("no passphrase for agent")
            if given is not None or not asked or not sys.stdin.isatty():
                raise  # the node's error names the places it looked in
            given = PassphraseSource(environ={}).passphrase(info.name)  # ask on the terminal
            result = client.call("recover", _recover_params(dest, given))
    except NodeNotRunning as exc:
        where = f"copied the key to {dest}, but " if copied else ""
        raise CommandError(
            f"{where}no node is running for {data.root}: start it with `conode run`, "
            f"then run `conode recover --key {args.key}` again"
        ) from exc
    if args.json:
        print_json({**result, "key_file": str(dest), "copied": copied})
    else:
        print(
            f"recovered {_label(result.get('name'), result['agent'])}: this node hosts it again "
            f"({result['records']} records of its chain fetched from peers)"
        )
    if given is not None:
        note(
            f"at its next start the node needs {info.name}'s passphrase from its own sources "
            f"(its passphrase dir, a systemd credential passphrase_{info.name}, or --passphrase-file)"
        )
    return EXIT_OK


def _recover_params(key_file: Path, passphrase: bytes | None) -> dict[str, str]:
    params = {"key_file": str(key_file)}
    if passphrase is not None:
        params["passphrase_b64"] = base64.b64encode(passphrase).decode("ascii")
    return params


def _install_key(source: Path, dest: Path, agent: AgentKey) -> bool:
    """Copy a key file into keys/ (mode 0600); False if the same agent's key is already there."""
    if dest.exists():
        held = read_key_info(dest)
        if held.agent != agent:
            raise CommandError(
                f"{dest} holds another agent's key ({held.agent.short()}…); "
                "it is never overwritten: rename one of them"
            )
        return False
    payload = source.read_bytes()
    tmp = dest.with_name(f".{dest.name}.recover.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, dest)
    except FileExistsError as exc:
        raise CommandError(f"{dest} appeared while copying; try again") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return True

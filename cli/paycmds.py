"""The money commands: ``balance``, ``pay``, ``bill``, ``bills``, ``accept``, ``decline``,
``history`` (and its CSV), ``statement``. Thin clients of the node's API: amounts typed in
major units, answers shown in the network's currency."""

from __future__ import annotations

import argparse
import csv
import secrets
import sys
from typing import Any, Final

from cli.datadir import CommandError
from cli.money import format_amount
from cli.output import EXIT_OK, print_json
from cli.render import iso_time, minute_time, spreadsheet_text, table
from cli.session import Session, label

__all__ = [
    "DAY_S", "accept", "balance", "bill", "bills", "decline", "history", "pay", "statement",
]  # fmt: skip

DAY_S: Final = 86_400


# -- balances and payments ------------------------------------------------------------------------


def balance(args: argparse.Namespace) -> int:
    session = Session(args)
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
        print(f"{label(result.get('name'), result['agent'])}: {session.money(result['balance'])}")
    return EXIT_OK


def _payment_out(
    session: Session, args: argparse.Namespace, result: dict[str, Any], what: str
) -> int:
    if args.json:
        print_json(result)
    elif result.get("committed"):
        print(f"{what} ({result.get('record')}, {result.get('elapsed_ms', 0):.0f} ms)")
    if not result.get("committed"):
        reason = str(result.get("reason") or "no reason given").removeprefix("refused: ")
        raise CommandError(f"payment refused: {reason}")
    return EXIT_OK


def pay(args: argparse.Namespace) -> int:
    session = Session(args)
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


def bill(args: argparse.Namespace) -> int:
    session = Session(args)
    amount = session.amount(args.amount)
    payee = session.local_agent(args.payee, "payee", "--from")
    result = session.call(
        "bill",
        {
            "from": payee,
            "to": args.to,
            "amount": amount,
            "memo": args.memo,
            "expires_in_s": args.expires * DAY_S,
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


def bills(args: argparse.Namespace) -> int:
    session = Session(args)
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


def _find_bill(session: Session, text: str) -> dict[str, Any]:
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


def _open_bill(session: Session, text: str, action: str) -> str:
    """The id of the bill named by ``text``, refused if it is settled (paid or declined).

    The node's rules refuse it too (``bill-settled``, ``paid-once``); asking
    first names the reason rather than whatever check the node meets first.
    """
    bill = _find_bill(session, text)
    why = _SETTLED.get((action, bill["status"]))
    if why is not None:
        raise CommandError(f"bill {bill['id']} {why}")
    return str(bill["id"])


def accept(args: argparse.Namespace) -> int:
    session = Session(args)
    bill_id = _open_bill(session, args.id, "accept")
    result = {**session.call("accept", {"id": bill_id}), "bill": bill_id}
    return _payment_out(session, args, result, f"paid bill {bill_id}")


def decline(args: argparse.Namespace) -> int:
    session = Session(args)
    bill_id = _open_bill(session, args.id, "decline")
    result = session.call("decline", {"id": bill_id})
    if args.json:
        print_json({**result, "bill": bill_id})
    else:
        print(f"declined bill {bill_id} ({result['id']})")
    return EXIT_OK


# -- history and statements ---------------------------------------------------------------------------


def history(args: argparse.Namespace) -> int:
    session = Session(args)
    params = {} if args.agent is None else {"agent": args.agent}
    result = session.call("history", params)
    rows = result["payments"]
    if args.json:
        print_json(result)
    elif args.csv:
        _write_csv(session, rows)
    elif not rows:
        print(f"no payments yet for {label(result.get('name'), result['agent'])}")
    else:
        print(f"payments of {label(result.get('name'), result['agent'])}:")
        print(_payments_table(session, rows))
    return EXIT_OK


def _payments_table(session: Session, rows: list[dict[str, Any]]) -> str:
    return table(
        ("TIME", "DIR", "COUNTERPARTY", "AMOUNT", "BALANCE", "MEMO"),
        [
            (
                iso_time(r["timestamp"])[:19].replace("T", " "),
                r["direction"],
                label(r.get("counterparty_name"), r["counterparty"]),
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


def _write_csv(session: Session, rows: list[dict[str, Any]]) -> None:
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


def statement(args: argparse.Namespace) -> int:
    session = Session(args)
    params: dict[str, Any] = {"month": args.month}
    if args.agent is not None:
        params["agent"] = args.agent
    result = session.call("statement", params)
    if args.json:
        print_json(result)
        return EXIT_OK
    money = session.money
    print(f"statement of {label(result.get('name'), result['agent'])} for {result['month']}")
    print(f"opening balance  {money(result['opening_balance'])}")
    print(f"paid in          {money(result['paid_in'])}")
    print(f"paid out         {money(result['paid_out'])}")
    print(f"closing balance  {money(result['closing_balance'])}")
    if result["payments"]:
        print(_payments_table(session, result["payments"]))
    else:
        print("no payments in this month")
    return EXIT_OK

"""``conode offer|want|grants ...``: the exchange app's functions, through a running node.

Each command is a thin client of the node's ``app.call`` method (JSON-RPC,
``docs/api.md``) with ``{"app": "exchange", "fn": ..., "params": {...},
"agent": ...}``: it turns what people type (prices in major units as
``conode pay`` takes them, locations in decimal degrees, days) into the
function's parameters and its answer into a table or, with ``--json``, the
answer as it came. ``--as AGENT`` (a local name or ``agt_…`` key) says who
posts; without it the node's only agent does.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final

from cli.datadir import CommandError
from cli.money import decimal_arg, whole_arg
from cli.output import EXIT_OK, print_json
from cli.render import iso_time, table
from cli.session import Session, add_as_arg
from conode.numerals import parse_decimal

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]
APP: Final = "exchange"
DEFAULT_DAYS: Final = 30
GRANT_ACTIONS: Final = ("list", "reestimate", "collect")
FOLLOW_INTERVAL: Final = 1.0
"""Seconds between two looks at the inbox while ``want notices --follow`` waits."""


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``offer``, ``want`` (with their subcommands) and ``grants`` to the ``conode`` parser."""
    offer = commands.add_parser("offer", help="offers of goods and services (co-ops)")
    offers = offer.add_subparsers(dest="offer_command", metavar="COMMAND", required=True)
    add = command(offers, "add", _offer_add, "offer something: a co-op's goods or services")
    _listing_args(add, "price per unit, in major units (e.g. 3.50; 0 for free)")
    json_flag(add)
    listing = command(offers, "list", _offer_list, "this node's offers, with renewal reminders")
    add_as_arg(listing)
    json_flag(listing)
    find = command(offers, "search", _offer_search, "search open offers")
    _search_args(find)
    json_flag(find)
    renew = command(offers, "renew", _offer_renew, "renew an offer (also after it expired)")
    renew.add_argument("item", metavar="OFFER", help="the offer's act_… hash")
    _days_arg(renew)
    renew.add_argument("--quantity", type=whole_arg(), metavar="N", help="a new quantity per month")
    renew.add_argument("--price", metavar="AMOUNT", help="a new price per unit (major units)")
    json_flag(renew)
    withdraw = command(offers, "withdraw", _offer_withdraw, "withdraw an offer for good")
    withdraw.add_argument("item", metavar="OFFER", help="the offer's act_… hash")
    json_flag(withdraw)

    want = commands.add_parser("want", help="wants: what co-ops and members are looking for")
    wants = want.add_subparsers(dest="want_command", metavar="COMMAND", required=True)
    add = command(wants, "add", _want_add, "say what you are looking for (the Wanted section)")
    _listing_args(add, "the most you would pay per unit, in major units (e.g. 3.50)")
    add.add_argument("--radius", type=whole_arg(), metavar="KM", help="only offers within KM of --location")
    json_flag(add)
    listing = command(wants, "list", _want_list, "this node's wants")
    add_as_arg(listing)
    json_flag(listing)
    find = command(wants, "search", _want_search, "search the open wants (the Wanted section)")
    _search_args(find)
    json_flag(find)
    renew = command(wants, "renew", _want_renew, "renew a want")
    renew.add_argument("item", metavar="WANT", help="the want's act_… hash")
    _days_arg(renew)
    json_flag(renew)
    close = command(wants, "close", _want_close, "close a want: met, or withdrawn")
    close.add_argument("item", metavar="WANT", help="the want's act_… hash")
    close.add_argument(
        "--reason", choices=("met", "withdrawn"), default="met", help="why (default: met)"
    )
    json_flag(close)
    told = command(
        wants, "notices", _want_notices, "your inbox: new offers that matched your open wants"
    )
    add_as_arg(told)
    told.add_argument("--unread", action="store_true", help="only the notices not read yet")
    told.add_argument(
        "--mark-read", action="store_true", help="mark the notices shown as read"
    )
    told.add_argument(
        "--follow", action="store_true",
        help="then wait, and print each new notice as it arrives (until Ctrl-C)",
    )  # fmt: skip
    json_flag(told)

    grants = command(
        commands, "grants", _grants, "credit granted for offers: list, re-estimate, collect shares"
    )
    grants.add_argument(
        "action", nargs="?", choices=GRANT_ACTIONS, default="list",
        help="list the co-ops' grant lines (default); reestimate this node's co-ops' lines from "
        "last month's sales (owed each month before they pay), and expire those due; collect "
        "the Foundation's shares (on the node hosting it)",
    )  # fmt: skip
    grants.add_argument(
        "--offer", metavar="OFFER", help="list: only the line of this offer's co-op (act_…)"
    )
    grants.add_argument(
        "--coop", metavar="AGENT", help="list: only this co-op's line; reestimate: only this one"
    )
    json_flag(grants)


def _days_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--days", type=whole_arg(), default=DEFAULT_DAYS, metavar="N",
        help=f"runs N days from now (default {DEFAULT_DAYS})",
    )  # fmt: skip


def _listing_args(sub: argparse.ArgumentParser, price_help: str) -> None:
    sub.add_argument("title", metavar="TITLE", help="a short title")
    sub.add_argument("--category", required=True, metavar="PATH", help="e.g. food/bakery")
    sub.add_argument("--price", required=True, metavar="AMOUNT", help=price_help)
    sub.add_argument("--unit", required=True, metavar="UNIT", help="what a price is for: kg, hour…")
    sub.add_argument("--quantity", required=True, type=whole_arg(), metavar="N", help="units per month")
    sub.add_argument("--description", default="", metavar="TEXT", help="the details")
    sub.add_argument("--location", metavar="LAT,LON", help="decimal degrees, e.g. 51.5074,-0.1278")
    sub.add_argument("--region", metavar="NAME", help="a region or place name")
    _days_arg(sub)
    add_as_arg(sub)


def _search_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("text", nargs="?", default="", metavar="WORDS", help="words to look for")
    sub.add_argument("--category", metavar="PATH", help="only this category and those below it")
    sub.add_argument("--near", metavar="LAT,LON", help="sort by distance from here")
    sub.add_argument("--within", type=decimal_arg, metavar="KM", help="only within KM of --near")
    sub.add_argument("--region", metavar="NAME", help="only this region")
    sub.add_argument("--limit", type=whole_arg(1), default=50, metavar="N", help="at most N (default 50)")
    sub.add_argument(
        "--local", action="store_true",
        help="search only what this node holds (skip the network's category indexes)",
    )  # fmt: skip


# -- the session -----------------------------------------------------------------------------------


class _Exchange(Session):
    """The node's exchange functions, and prices in the network's currency."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, APP)

    def price(self, text: str) -> int:
        """Typed major units as minor units (exactly); ``0`` is free."""
        with contextlib.suppress(ValueError):  # parse_amount says what is wrong with it
            if parse_decimal(text) == 0:
                return 0
        return self.amount(text)


def _listing_params(ex: _Exchange, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {
        "title": args.title,
        "category": args.category,
        "price": ex.price(args.price),
        "unit": args.unit,
        "quantity": args.quantity,
        "description": args.description,
        "days": args.days,
    }
    if args.location is not None:
        params["location"] = args.location
    if args.region is not None:
        params["region"] = args.region
    return params


def _search_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.within is not None and args.near is None:
        raise CommandError("--within needs --near LAT,LON to measure from")
    params: dict[str, Any] = {"text": args.text, "limit": args.limit}
    if args.local:
        params["local"] = True
    for name in ("category", "near", "region"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.within is not None:
        params["within_km"] = float(args.within)
    return params


# -- output ---------------------------------------------------------------------------------------------


def _where(item: dict[str, Any]) -> str:
    if item.get("distance_km") is not None:
        return f"{item['distance_km']:.1f} km"
    if item.get("region"):
        return str(item["region"])
    location = item.get("location")
    if location:
        return f"{location['lat'] / 1e6:.4f},{location['lon'] / 1e6:.4f}"
    return "-"


def _rows(ex: _Exchange, items: list[dict[str, Any]]) -> str:
    rows = [
        (
            item["hash"][:16] + "…",
            item.get("author_name") or item["author"][:12] + "…",
            item["title"][:40],
            item["category"],
            f"{ex.money(item['price'])}/{item['unit']}",
            item["quantity"],
            _where(item),
            item["status"],
            iso_time(item["expires"])[:10],
        )
        for item in items
    ]
    return table(
        ("ITEM", "BY", "TITLE", "CATEGORY", "PRICE", "QTY", "WHERE", "STATUS", "EXPIRES"), rows
    )


def _show_list(
    ex: _Exchange, args: argparse.Namespace, items: Any, kind: str, reminders: bool = False
) -> int:
    if args.json:
        print_json(items)
        return EXIT_OK
    if not items:
        print(f"no {kind}s")
        return EXIT_OK
    print(_rows(ex, items))
    for item in items if reminders else ():
        if item.get("reminder"):
            print(f"{item['hash']}: {item['reminder']}")
    return EXIT_OK


def _standing(item: dict[str, Any]) -> str:
    if item["status"] == "open":
        return f"open until {iso_time(item['expires'])}"
    if item["status"] == "expired":
        return f"expired on {iso_time(item['expires'])}"
    return str(item["status"])


def _show_one(ex: _Exchange, args: argparse.Namespace, item: dict[str, Any], what: str) -> int:
    if args.json:
        print_json(item)
        return EXIT_OK
    print(f"{what} {item['kind']} {item['hash']}: {item['title']!r}")
    print(
        f"  {item['category']}, {ex.money(item['price'])} per {item['unit']}, "
        f"{item['quantity']} a month, {_standing(item)}"
    )
    if item.get("reminder"):
        print(f"  {item['reminder']}")
    granted = item.get("grant")
    if granted is not None:
        print(f"  {_grant_text(ex, granted)}")
    return EXIT_OK


def _grant_text(ex: _Exchange, result: dict[str, Any]) -> str:
    """What posting or renewing an offer granted its co-op, or why nothing."""
    got = result.get("grant")
    if got is None:
        return f"no grant: {result.get('skipped') or result.get('refused')}"
    share = f", {ex.money(got['share'])} of it the Foundation's share" if got["share"] else ""
    return (
        f"granted {ex.money(got['gross'])} ({got['basis']}{share}): the co-op's offers are worth "
        f"{ex.money(got['offered'])} a month, its line stands at {ex.money(got['granted'])}"
    )


# -- commands ---------------------------------------------------------------------------------------------


def _offer_add(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_one(ex, args, ex.act("offer-add", _listing_params(ex, args)), "posted")


def _offer_list(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_list(ex, args, ex.act("offer-list", {}), "offer", reminders=True)


def _offer_search(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_list(ex, args, ex.act("offer-search", _search_params(args)), "matching offer")


def _offer_renew(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    params: dict[str, Any] = {"offer": args.item, "days": args.days}
    if args.quantity is not None:
        params["quantity"] = args.quantity
    if args.price is not None:
        params["price"] = ex.price(args.price)
    return _show_one(ex, args, ex.act("offer-renew", params), "renewed")


def _offer_withdraw(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_one(ex, args, ex.act("offer-withdraw", {"offer": args.item}), "withdrew")


def _want_add(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    params = _listing_params(ex, args)
    if args.radius is not None:
        if args.location is None:
            raise CommandError("--radius needs --location LAT,LON to be around")
        params["radius_km"] = args.radius
    return _show_one(ex, args, ex.act("want-add", params), "posted")


def _want_list(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_list(ex, args, ex.act("want-list", {}), "want", reminders=True)


def _want_search(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    return _show_list(ex, args, ex.act("want-search", _search_params(args)), "matching want")


def _want_renew(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    result = ex.act("want-renew", {"want": args.item, "days": args.days})
    return _show_one(ex, args, result, "renewed")


def _want_close(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    result = ex.act("want-close", {"want": args.item, "reason": args.reason})
    return _show_one(ex, args, result, "closed")


def _want_notices(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    params = {"unread": args.unread, "mark_read": args.mark_read}
    told = ex.act("inbox", params)
    if args.follow:
        return _follow_notices(ex, args, params, told)
    if args.json:
        print_json(told)
        return EXIT_OK
    if not told:
        print("no unread notices" if args.unread else "no notices: no new offer matched your wants")
        return EXIT_OK
    for notice in told:
        _print_notice(ex, notice)
    return EXIT_OK


def _follow_notices(
    ex: _Exchange, args: argparse.Namespace, params: dict[str, Any], told: list[dict[str, Any]]
) -> int:
    """Print the inbox oldest first, then each notice the node keeps from now on, until Ctrl-C.

    The node pushes notices into the inbox as offers arrive; this asks its
    local API for the inbox every ``FOLLOW_INTERVAL`` seconds (a Unix socket
    on the same machine) and prints what it has not printed yet.
    """
    printed: set[tuple[str, str]] = set()
    try:
        while True:
            for notice in reversed(told):
                seen = (notice["want"], notice["offer"]["hash"])
                if seen not in printed:
                    printed.add(seen)
                    if args.json:
                        print_json(notice)
                    else:
                        _print_notice(ex, notice)
            time.sleep(FOLLOW_INTERVAL)
            told = ex.act("inbox", params)
    except KeyboardInterrupt:  # Ctrl-C is how a follow ends: a clean exit
        return EXIT_OK


def _print_notice(ex: _Exchange, notice: dict[str, Any]) -> None:
    """One line; ``*`` marks a notice not read yet."""
    item = notice["offer"]
    far = "" if notice["distance_km"] is None else f", {notice['distance_km']:.1f} km away"
    print(
        f"{' ' if notice['read'] else '*'} {iso_time(notice['noticed'])[:16].replace('T', ' ')} "
        f"for your want {notice['want_title']!r}: {item['title']!r} "
        f"at {ex.money(item['price'])}/{item['unit']}{far}, {item['status']} ({item['hash']})",
        flush=True,
    )


# -- grants ------------------------------------------------------------------------------------------------


def _grants(args: argparse.Namespace) -> int:
    ex = _Exchange(args)
    given = [flag for flag, value in (("--coop", args.coop), ("--offer", args.offer)) if value]
    allowed = {"list": ("--coop", "--offer"), "reestimate": ("--coop",), "collect": ()}
    wrong = [flag for flag in given if flag not in allowed[args.action]]
    if wrong:
        raise CommandError(f"grants {args.action} takes no {' or '.join(wrong)}")
    params = {name: getattr(args, name) for name in ("coop", "offer") if getattr(args, name)}
    if args.action == "collect":
        return _grants_collect(ex, args, ex.act("share-collect", {}))
    if args.action == "reestimate":
        return _grants_reestimate(ex, args, ex.act("grants-reestimate", params))
    return _grants_list(ex, args, ex.act("grants", params))


def _grants_list(ex: _Exchange, args: argparse.Namespace, lines: Any) -> int:
    if args.json:
        print_json(lines)
        return EXIT_OK
    if not lines:
        print("no grants held here")
        return EXIT_OK
    rows = [
        (
            (line["name"] or line["coop"][:16] + "…")[:28],
            ex.money(line["granted"]),
            ex.money(line["offered"]),
            ex.money(line["high"]),
            f"{line['basis']} {line['period']}",
            _due_text(line),
            f"{ex.money(line['collected'])} of {ex.money(line['shares'])}",
            _expiry_text(line),
        )
        for line in lines
    ]
    heads = (
        "CO-OP", "GRANTED", "ON OFFER", "HIGH-WATER", "LAST", "RE-ESTIMATE DUE", "FOUNDATION",
        "EXPIRES",
    )  # fmt: skip
    print(table(heads, rows))
    for line in lines:
        offers = [
            f"{o['title'] or '?'} {ex.money(o['value'])}"
            + ("" if o["counted"] else " (the same offer again: not counted)")
            for o in line["offers"]
        ]
        if offers:
            more = f", and {len(offers) - 5} more" if len(offers) > 5 else ""
            print(f"{line['name'] or line['coop']} has on offer: {'; '.join(offers[:5])}{more}")
    return EXIT_OK


def _due_text(line: Any) -> str:
    """When the line's next re-estimate is owed: ``-`` (nothing owed), a date, or overdue."""
    if line.get("due") is None:
        return "-"
    return f"OVERDUE since {line['due']}" if line.get("overdue") else line["due"]


def _expiry_text(line: Any) -> str:
    """When a grant line may expire: ``never``, or a month; and when it last did."""
    text = line.get("expires") or "never"
    if line.get("last_expiry"):
        text += f" (expired {line['last_expiry']})"
    return text


def _grants_reestimate(ex: _Exchange, args: argparse.Namespace, rows: Any) -> int:
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no grant lines of this node's co-ops")
        return EXIT_OK
    for row in rows:
        name = f"{row['name'] or '?'} ({row['coop'][:16]}…)"
        got = row.get("grant")
        if got is not None and got["basis"] == "pause":
            print(f"{name}: paused (grants are off): it owes no re-estimate until they are on")
        elif got is not None:
            sales = got["sales"]
            change = ex.money(got["gross"]) if got["gross"] < 0 else "+" + ex.money(got["gross"])
            kept = (
                f"; kept {ex.money(got['advance'])} granted for last month's new offers"
                if got["advance"] and got["advance"] > sales["new"]
                else ""
            )
            print(
                f"{name}: {change}, now {ex.money(got['granted'])}, from {sales['count']} sales "
                f"of {ex.money(sales['total'])} in the month before {got['period']}"
                + (f" ({ex.money(sales['excluded'])} not counted)" if sales["excluded"] else "")
                + kept
            )
        else:
            print(f"{name}: {row.get('skipped') or 'refused: ' + str(row.get('refused'))}")
        expiry = row.get("expiry")
        if expiry is not None:
            cut = expiry.get("grant")
            if cut is not None:
                print(
                    f"{name}: expired, {ex.money(-cut['gross'])} of unspent grant recovered, "
                    f"the line now stands at {ex.money(cut['granted'])}"
                )
            else:
                why = expiry.get("skipped") or "refused: " + str(expiry.get("refused"))
                print(f"{name}: expiry {why}")
    return EXIT_OK


def _grants_collect(ex: _Exchange, args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print_json(result)
        return EXIT_OK
    if not result["steward"]:
        print("this node does not host the Foundation: nothing to collect here")
        return EXIT_OK
    done = [c for c in result["collected"] if "record" in c]
    total = sum(c["share"] for c in done)
    print(f"collected {len(done)} share{'s' if len(done) != 1 else ''}: {ex.money(total)}")
    for refused in (c for c in result["collected"] if "refused" in c):
        print(f"  grant {refused['grant']}: refused: {refused['refused']}")
    return EXIT_OK

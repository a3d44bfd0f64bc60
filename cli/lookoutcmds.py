"""``conode lookout ...``: the horizon-scanning board (the lookout app's functions), through a running node.

Signal -> Sign -> Significance: ``signal`` reports what was seen, ``sign``
names the wider change that signals point to, ``significance`` says what a
sign means for sectors or a co-op; ``comment``, ``poll`` (the sense-check:
should an item move on to its next stage?) and ``respond`` (link a
significance to an exchange want or a proposal) act on items; ``board``,
``feed`` and ``thread`` read them.

Each command is a thin client of the node's ``app.call`` method (JSON-RPC,
``docs/api.md``) with ``{"app": "lookout", "fn": ..., "params": {...},
"agent": ...}``. An item may be named by its whole ``act_…`` hash or by the
start of it, as the tables print it (``act_xs47q4o4t3t…``): the command finds
it on this node's board, so an item the node does not hold is one clear
line. ``--as AGENT`` (a local name or ``agt_…`` key) says who posts; without
it the node's only agent does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final

from cli.client import ApiError
from cli.datadir import CommandError
from cli.output import EXIT_OK, print_json
from cli.render import iso_time, table
from cli.session import Session, add_as_arg

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]
APP: Final = "lookout"
STAGES: Final = (("signals", "signal"), ("signs", "sign"), ("significances", "significance"))
"""The board's lists, in the order of the pattern: (key of the board, stage of an item)."""
SHORT: Final = 16
"""Characters of an item's hash a table prints (then ``…``); any unique start names the item."""


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``lookout`` and its subcommands to the ``conode`` parser."""
    lookout = commands.add_parser(
        "lookout", help="horizon scanning: signals, signs and their significance, by sector"
    )
    subs = lookout.add_subparsers(dest="lookout_command", metavar="COMMAND", required=True)

    signal = command(
        subs, "signal", _signal, "report a signal: something seen that points to a change"
    )
    signal.add_argument("title", metavar="TITLE", help="what was seen, in a line")
    signal.add_argument(
        "--source", required=True, metavar="S", help="where: a report, a link, a law…"
    )
    _sector_arg(signal, "--sector", "X", "a sector it concerns (repeat for more), e.g. food")
    signal.add_argument("--location", metavar="PLACE", help="where it was seen")
    _text_arg(signal)

    sign = command(subs, "sign", _sign, "name a sign: the wider change that signals point to")
    sign.add_argument("title", metavar="TITLE", help="the change, in a line")
    _cites_arg(sign, "SIGNAL")
    _text_arg(sign)

    meaning = command(
        subs, "significance", _significance, "say what a sign means for sectors or a co-op"
    )
    meaning.add_argument("title", metavar="TITLE", help="what it means, in a line")
    _cites_arg(meaning, "SIGN")
    _sector_arg(
        meaning, "--for", "SECTOR|COOP", "a sector, or a co-op's agt_… key (repeat for more)"
    )
    meaning.add_argument(
        "--suggest",
        "--respond",
        dest="suggested",
        action="append",
        default=[],
        metavar="TEXT",
        help="a suggested response (repeat for more)",
    )
    _text_arg(meaning)

    remark = command(subs, "comment", _comment, "comment on a signal, sign or significance")
    _item_arg(remark)
    remark.add_argument("text", metavar="TEXT", help="the comment")
    add_as_arg(remark)
    json_flag(remark)

    poll = command(subs, "poll", _poll, "sense-check: should an item move on to its next stage?")
    _item_arg(poll)
    poll.add_argument(
        "choice", choices=("advance", "hold"), metavar="CHOICE", help="advance or hold"
    )
    add_as_arg(poll)
    json_flag(poll)

    respond = command(
        subs,
        "respond",
        _respond,
        "link a significance to a response: an exchange want or a proposal",
    )
    _item_arg(respond, "SIGNIFICANCE")
    respond.add_argument("target", metavar="TARGET", help="the want's or proposal's act_… hash")
    respond.add_argument(
        "--kind",
        choices=("want", "proposal"),
        default="want",
        help="what TARGET is (default: want)",
    )
    respond.add_argument("--note", metavar="TEXT", help="a note on the response")
    add_as_arg(respond)
    json_flag(respond)

    for posting in (signal, sign, meaning):
        add_as_arg(posting)
        json_flag(posting)

    board = command(subs, "board", _board, "the board: every item by stage, newest first")
    board.add_argument("--sector", metavar="X", help="only the items of this sector")
    json_flag(board)
    feed = command(subs, "feed", _feed, "the items of one sector, newest first")
    feed.add_argument("sector", metavar="SECTOR", help="a sector, e.g. food")
    json_flag(feed)
    thread = command(
        subs, "thread", _thread, "an item, what it cites and what cites it, with the discussion"
    )
    _item_arg(thread)
    json_flag(thread)


def _text_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--text", default="", metavar="TEXT", help="the details")


def _sector_arg(sub: argparse.ArgumentParser, flag: str, metavar: str, text: str) -> None:
    sub.add_argument(flag, dest="sectors", action="append", default=[], metavar=metavar, help=text)


def _cites_arg(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--cites",
        required=True,
        nargs="+",
        action="extend",
        metavar=what,
        help=f"the {what.lower()}s it points to: act_… hashes, or their start",
    )


def _item_arg(sub: argparse.ArgumentParser, what: str = "ITEM") -> None:
    sub.add_argument("item", metavar=what, help="an item's act_… hash, or its start")


# -- the session -----------------------------------------------------------------------------------


class _Lookout(Session):
    """The node's lookout functions; the board read at most once."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, APP)
        self._board: dict[str, Any] | None = None

    def post(self, fn: str, params: dict[str, Any]) -> str:
        """Run a posting function as ``--as AGENT`` (or the only agent); the new record's hash."""
        return str(self.act(fn, params))

    def board(self) -> dict[str, Any]:
        if self._board is None:
            self._board = self.read("board", {})
        return self._board

    def item(self, text: str) -> str:
        """The whole hash of the board item ``text`` names (its hash, or the start of it)."""
        start = text.strip().rstrip("…")
        if len(start) > len("act_"):
            items = [i for key, _stage in STAGES for i in self.board()[key]]
            found = [str(i["hash"]) for i in items if i["hash"].startswith(start)]
            if len(found) == 1:
                return found[0]
            if found:
                raise CommandError(f"{text} is the start of {len(found)} items: give more of it")
        raise CommandError(
            f"no lookout item {text} on this node's board (not posted, or not here yet; "
            "see `conode lookout board`)"
        )


def _posted(args: argparse.Namespace, hash_: str, entry_type: str, line: str) -> int:
    if args.json:
        print_json({"hash": hash_, "type": f"{APP}/{entry_type}"})
    else:
        print(line)
    return EXIT_OK


def _split_audience(values: list[str]) -> tuple[list[str], str | None]:
    """``--for`` values: sectors, and at most one co-op (an ``agt_…`` key)."""
    coops = [v for v in values if v.startswith("agt_")]
    if len(coops) > 1:
        raise CommandError("a significance is for at most one co-op: give one agt_… key")
    sectors = [v for v in values if not v.startswith("agt_")]
    if not sectors and not coops:
        raise CommandError("say who it matters to: --for SECTOR (repeatable) or --for COOP_KEY")
    return sectors, coops[0] if coops else None


# -- output -------------------------------------------------------------------------------------------


def _short(hash_: str) -> str:
    return hash_[:SHORT] + "…"


def _sense_check(item: dict[str, Any]) -> str:
    """The sense-check, e.g. ``advance 2-1``: the leaning (``hold`` on a tie) and the votes."""
    advance, hold = item["polls"]["advance"], item["polls"]["hold"]
    if advance + hold == 0:
        return "-"
    return f"{'advance' if advance > hold else 'hold'} {advance}-{hold}"


def _who(value: dict[str, Any], field: str = "author") -> str:
    """A person as `Name (agt_xxxxxxxx…)`: the name the node read from their genesis, if held."""
    key = str(value[field])
    name = value.get(f"{field}_name")
    return f"{name} ({_short(key)})" if name and name != "?" else key


def _audience(item: dict[str, Any]) -> str:
    parts = list(item["sectors"])
    if item.get("coop"):
        parts.append("co-op " + _who(item, "coop"))
    return ", ".join(parts) or "-"


def _rows(items: list[dict[str, Any]]) -> str:
    rows = [
        (
            _short(i["hash"]),
            i["stage"],
            i["title"][:40],
            i.get("author_name") or "?",
            _audience(i),
            len(i["cites"]) or "-",
            len(i["cited_by"]) or "-",
            _sense_check(i),
            i["comments"],
            len(i["responses"]) if i["stage"] == "significance" else "-",
            iso_time(i["timestamp"])[:10],
        )
        for i in items
    ]
    return table(
        (
            "ITEM", "STAGE", "TITLE", "BY", "SECTORS", "CITES", "CITED BY", "POLL", "COMMENTS",
            "RESPONSES", "POSTED",
        ),
        rows,
    )  # fmt: skip


def _show_board(board: dict[str, Any], empty: str) -> None:
    if not any(board[key] for key, _stage in STAGES):
        print(empty)
        return
    counts = ", ".join(f"{key}: {len(board[key])}" for key, _stage in STAGES)
    print(f"{counts} (newest first in each stage)")
    print(_rows([i for key, _stage in STAGES for i in board[key]]))


def _show_item(item: dict[str, Any]) -> None:
    print(f"{item['stage']} {item['hash']}: {item['title']!r}")
    print(f"  by {_who(item)} at {iso_time(item['timestamp'])}; for: {_audience(item)}")
    if item["text"]:
        print(f"  {item['text']}")
    if item["stage"] == "signal":
        where = f", at {item['location']}" if item.get("location") else ""
        print(f"  source: {item['source']}{where}")
    for suggestion in item.get("suggested", []):
        print(f"  suggested: {suggestion}")
    for cited in item["cites"]:
        print(f"  cites {cited}")
    for citing in item["cited_by"]:
        print(f"  cited by {citing}")
    polls = item["polls"]
    print(f"  sense-check: {polls['advance']} advance, {polls['hold']} hold")
    for response in item["responses"]:
        print(f"  response: {response['kind']} {response['response']} (by {_who(response)})")
    for remark in item.get("discussion", []):
        print(f"  comment by {_who(remark)} at {iso_time(remark['timestamp'])}:")
        print(f"    {remark['text']}")


# -- commands -------------------------------------------------------------------------------------------


def _signal(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    params: dict[str, Any] = {
        "title": args.title,
        "source": args.source,
        "text": args.text,
        "sectors": args.sectors,
    }
    if args.location is not None:
        params["location"] = args.location
    posted = look.post("signal", params)
    where = f" ({', '.join(args.sectors)})" if args.sectors else ""
    return _posted(args, posted, "signal", f"posted signal {posted}: {args.title!r}{where}")


def _sign(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    signals = [look.item(text) for text in args.cites]
    posted = look.post("sign", {"title": args.title, "text": args.text, "signals": signals})
    line = f"posted sign {posted}: {args.title!r}, citing {len(signals)} signal(s)"
    return _posted(args, posted, "sign", line)


def _significance(args: argparse.Namespace) -> int:
    sectors, coop = _split_audience(args.sectors)
    look = _Lookout(args)
    signs = [look.item(text) for text in args.cites]
    params: dict[str, Any] = {
        "title": args.title,
        "text": args.text,
        "signs": signs,
        "sectors": sectors,
        "suggested": args.suggested,
    }
    if coop is not None:
        params["coop"] = coop
    posted = look.post("significance", params)
    audience = ", ".join([*sectors, *([f"co-op {coop}"] if coop else [])])
    line = (
        f"posted significance {posted}: {args.title!r}, for {audience}, citing {len(signs)} sign(s)"
    )
    return _posted(args, posted, "significance", line)


def _comment(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    item = look.item(args.item)
    posted = look.post("comment", {"item": item, "text": args.text})
    return _posted(args, posted, "comment", f"commented on {item}: {posted}")


def _poll(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    item = look.item(args.item)
    posted = look.post("poll", {"item": item, "choice": args.choice})
    return _posted(args, posted, "poll", f"voted {args.choice} on {item}: {posted}")


def _respond(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    significance = look.item(args.item)
    params: dict[str, Any] = {
        "significance": significance,
        "response": args.target,
        "kind": args.kind,
    }
    if args.note is not None:
        params["note"] = args.note
    try:
        posted = look.post("respond", params)
    except ApiError as exc:
        if str(exc).startswith("missing:"):  # the node does not hold the want or proposal
            raise CommandError(
                f"this node does not hold the {args.kind} {args.target} (not posted, or not here yet)"
            ) from None
        raise
    line = f"linked significance {significance} to the {args.kind} {args.target}: {posted}"
    return _posted(args, posted, "respond", line)


def _board(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    if args.sector is None:
        board = look.board()
    else:  # the sector's feed, by stage
        items = look.read("feed", {"sector": args.sector})
        board = {key: [i for i in items if i["stage"] == stage] for key, stage in STAGES}
    if args.json:
        print_json(board)
        return EXIT_OK
    where = "" if args.sector is None else f" in sector {args.sector!r}"
    _show_board(board, f"no signals, signs or significances{where} yet")
    return EXIT_OK


def _feed(args: argparse.Namespace) -> int:
    items = _Lookout(args).read("feed", {"sector": args.sector})
    if args.json:
        print_json(items)
    elif not items:
        print(f"nothing in sector {args.sector!r} yet")
    else:
        print(_rows(items))
    return EXIT_OK


def _thread(args: argparse.Namespace) -> int:
    look = _Lookout(args)
    item = look.item(args.item)
    items = look.read("thread", {"item": item})
    if args.json:
        print_json(items)
        return EXIT_OK
    order = {stage: n for n, (_key, stage) in enumerate(STAGES)}
    for n, shown in enumerate(sorted(items, key=lambda i: (order[i["stage"]], -i["timestamp"]))):
        if n:
            print()
        _show_item(shown)
    return EXIT_OK

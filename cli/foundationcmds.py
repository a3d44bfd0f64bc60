"""``conode foundation ...``: proposals, votes, tallies, ratifications, comments, reports, the fund.

Governance is built in, so ``propose``, ``proposals``, ``show``, ``vote``,
``tally``, ``ratify`` and ``balance`` call the node's ``gov.*`` methods
(JSON-RPC, ``docs/api.md``) and work whether or not the node runs the
foundation app; ``comment`` and ``report`` commit the foundation app's
entries through ``app.call``. Amounts are typed in major units (as ``conode
pay`` takes them) and shown with the network's currency. ``--as AGENT`` says
which local co-op (or member: for a comment, or a vote where the rules let
members vote) acts; without it, the node's only co-op. Every command has
``--json``: the node's answer as it came.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Final

from cli import hostcmds
from cli.datadir import CommandError
from cli.output import EXIT_OK, print_json
from cli.render import days_text, iso_time, minute_time, percent_text, table
from cli.session import Session, add_as_arg

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]
APP: Final = "foundation"
CHOICES: Final = ("yes", "no", "abstain")
STATUSES: Final = ("open", "passed", "failed", "ratified", "unknown")


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``foundation`` and its subcommands to the ``conode`` parser."""
    group = commands.add_parser(
        "foundation", help="governance and the Foundation: propose, vote, ratify, report"
    )
    subs = group.add_subparsers(dest="foundation_command", metavar="COMMAND", required=True)

    propose = command(subs, "propose", _propose, "propose: a disbursement, amendment, admission…")
    what = propose.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--disburse", nargs=2, metavar=("COOP", "AMOUNT"),
        help="the Foundation pays co-op COOP AMOUNT (major units); needs --purpose",
    )  # fmt: skip
    what.add_argument(
        "--amend", nargs=2, metavar=("PARAM", "VALUE"),
        help='set parameter PARAM to VALUE (JSON, e.g. \'{"credit": 2000, "cap": 100000}\')',
    )  # fmt: skip
    what.add_argument(
        "--admit", nargs=3, metavar=("AGENT", "LEGAL_NAME", "REGISTRATION"),
        help="register a new co-op (its agt_… key, legal name, registration number)",
    )  # fmt: skip
    what.add_argument("--revoke", metavar="AGENT", help="revoke a co-op or member; needs --reason")
    what.add_argument(
        "--app", nargs=3, metavar=("ID", "VERSION", "HASH"),
        help="run an app: its id, version and bundle hash (app_…)",
    )  # fmt: skip
    propose.add_argument("--purpose", metavar="TEXT", help="what a disbursement is for")
    propose.add_argument("--reason", metavar="TEXT", help="why a revocation")
    propose.add_argument("--title", metavar="TEXT", help="a short title (default: from the kind)")
    add_as_arg(propose, "the node's only co-op")
    json_flag(propose)

    hostcmds.add_host(subs, command, json_flag)
    listing = command(subs, "proposals", _proposals, "every proposal held, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only those in this status")
    json_flag(listing)
    show = command(subs, "show", _show, "one proposal: votes, tally, payment, comments, reports")
    _id_arg(show)
    json_flag(show)
    vote = command(
        subs, "vote", _vote,
        "vote on a proposal (co-ops; members too where the rules set members_vote; once, by the deadline)",
    )  # fmt: skip
    _id_arg(vote)
    vote.add_argument("choice", choices=CHOICES, help="yes, no or abstain")
    add_as_arg(vote, "the node's only co-op; a member where members vote")
    json_flag(vote)
    count = command(subs, "tally", _tally, "count the votes held on a proposal")
    _id_arg(count)
    json_flag(count)
    ratify = command(subs, "ratify", _ratify, "ratify a proposal that passed (after its deadline)")
    _id_arg(ratify)
    add_as_arg(ratify, "the node's only co-op")
    json_flag(ratify)
    comment = command(subs, "comment", _comment, "comment on a proposal (co-ops and members)")
    _id_arg(comment)
    comment.add_argument("text", metavar="TEXT", help="the comment")
    add_as_arg(comment, "the node's only co-op")
    json_flag(comment)
    report = command(subs, "report", _report, "report on a Foundation payment your co-op received")
    report.add_argument("payment", metavar="PAYMENT", help="the payment record's act_… hash")
    report.add_argument("text", metavar="TEXT", help="what was done with it")
    report.add_argument("--used", metavar="AMOUNT", help="how much of it was used (major units)")
    add_as_arg(report, "the node's only co-op")
    json_flag(report)
    balance = command(subs, "balance", _balance, "the Foundation's balance and what it owes")
    json_flag(balance)


def _id_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("id", metavar="ID", help="the proposal's act_… hash")


# -- the session ---------------------------------------------------------------------------------


class _Foundation(Session):
    """The node's governance methods and Foundation functions; money in the network's currency."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, APP)
        self.json: bool = bool(getattr(args, "json", False))

    def gov(self, method: str, params: dict[str, Any]) -> Any:
        """One ``gov.*`` method of the node, acting as ``--as`` where it acts."""
        if self.agent is not None:
            params = {**params, "as": self.agent}
        return self.client.call(f"gov.{method}", params)

    def app(self, fn: str, params: dict[str, Any]) -> Any:
        """One foundation app function on the node, as ``--as`` or the node's only co-op."""
        return self.act(fn, params, self.agent or self.client.call("gov.coop", {})["agent"])

    def emit(self, answer: Any, text: Callable[[Any], str]) -> int:
        if self.json:
            print_json(answer)
        else:
            print(text(answer))
        return EXIT_OK


# -- commands ------------------------------------------------------------------------------------


def _propose(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    params: dict[str, Any] = {"title": args.title} if args.title else {}
    if args.disburse is not None:
        if not args.purpose:
            raise CommandError("--disburse needs --purpose TEXT: what the money is for")
        coop, amount = args.disburse
        params.update(kind="disburse", coop=coop, amount=s.amount(amount), purpose=args.purpose)
    elif args.amend is not None:
        param, value = args.amend
        try:
            parsed = json.loads(value)
        except ValueError:
            raise CommandError(
                f"--amend {param}: the value is JSON (e.g. 1209600000000 or "
                '\'{"credit": 2000, "cap": 100000}\'), not ' + repr(value)
            ) from None
        params.update(kind="amend", param=param, value=parsed)
    elif args.admit is not None:
        agent, legal_name, registration = args.admit
        params.update(kind="admit", agent=agent, legal_name=legal_name, registration=registration)
    elif args.revoke is not None:
        if not args.reason:
            raise CommandError("--revoke needs --reason TEXT")
        params.update(kind="revoke", agent=args.revoke, reason=args.reason)
    else:
        app_id, version, bundle = args.app
        params.update(kind="app", id=app_id, version=version, hash=bundle)
    answer = s.gov("propose", params)
    return s.emit(
        answer,
        lambda p: (
            f"proposed {p['id']}: {p['title']}\n"
            f"  {_summary(s, p)}; voting closes {iso_time(p['deadline'])}"
        ),
    )


def _proposals(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    params = {} if args.status is None else {"status": args.status}
    answer = s.client.call("gov.proposals", params)

    def text(views: list[dict[str, Any]]) -> str:
        if not views:
            return "no proposals" + ("" if args.status is None else f" {args.status}")
        rows = [
            [
                p["id"],
                p["kind"],
                _status(p),
                _counts(p),
                minute_time(p["deadline"]),
                p["title"],
            ]
            for p in views
        ]
        return table(["ID", "KIND", "STATUS", "YES/NO/ABST", "DEADLINE (UTC)", "TITLE"], rows)

    return s.emit(answer, text)


def _show(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    answer = s.client.call("gov.proposal", {"id": args.id})
    return s.emit(answer, lambda p: _details(s, p))


def _vote(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    answer = s.gov("vote", {"id": args.id, "choice": args.choice})
    return s.emit(answer, lambda p: f"voted {args.choice} ({p['vote']})\n  {_tally_line(p)}")


def _tally(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    proposal = s.client.call("gov.proposal", {"id": args.id})
    answer = {
        "id": proposal["id"],
        "status": proposal["status"],
        "deadline": proposal["deadline"],
        "tally": proposal["tally"],
        "votes": proposal["votes"],
    }
    return s.emit(answer, lambda p: _tally_line(p))


def _ratify(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    answer = s.gov("ratify", {"id": args.id})
    return s.emit(
        answer, lambda p: f"ratified {p['id']} as {p['ratification']}\n  {_tally_line(p)}"
    )


def _comment(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    answer = s.app("comment", {"proposal": args.id, "text": args.text})
    return s.emit({"id": answer}, lambda p: f"commented: {p['id']}")


def _report(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    params: dict[str, Any] = {"payment": args.payment, "text": args.text}
    if args.used is not None:
        params["used"] = s.amount(args.used)
    answer = s.app("report", params)
    return s.emit({"id": answer}, lambda p: f"reported: {p['id']}")


def _balance(args: argparse.Namespace) -> int:
    s = _Foundation(args)
    answer = s.client.call("gov.foundation", {})

    def text(f: dict[str, Any]) -> str:
        where = "this node (the steward)" if f["steward"] else "another node"
        held = "" if f["held"] else " (its chain is not held here: 0 until it is)"
        return "\n".join(
            [
                f"The Foundation {f['agent']}, hosted on {where}",
                f"  balance    {s.money(f['balance'])}{held}",
                f"  disbursed  {s.money(f['disbursed'])}",
                f"  owed       {s.money(f['owed'])} ({len(f['unpaid'])} ratified, not yet paid)",
            ]
        )

    return s.emit(answer, text)


# -- text -----------------------------------------------------------------------------------------


def _status(p: dict[str, Any]) -> str:
    if p["status"] == "ratified":
        return "executed" if p["executed"] else "ratified"
    return str(p["status"])


def _counts(p: dict[str, Any]) -> str:
    t = p.get("tally")
    return "-" if t is None else f"{t['yes']}/{t['no']}/{t['abstain']} of {t['electorate']}"


def _tally_line(p: dict[str, Any]) -> str:
    t = p.get("tally")
    if t is None:
        return f"{p['status']}: the rules it was made under are not known here (no tally)"
    outcome = "passes" if t["passes"] else "does not pass"
    when = "so far" if p["status"] == "open" else "at the deadline"
    members = t.get("member_votes", 0)
    by_members = f" ({members} by members, {t['took_part']} co-ops took part)" if members else ""
    return (
        f"{t['yes']} yes, {t['no']} no, {t['abstain']} abstain{by_members} "
        f"of {t['electorate']} co-ops {when}: {outcome}; status {_status(p)}"
    )


def _member_note(vote: dict[str, Any]) -> str:
    """`` (member of agt_…)`` for a member's vote; nothing for a co-op's."""
    if not vote.get("member"):
        return ""
    return f" (member of {vote['member_of']})" if vote.get("member_of") else " (member)"


def _summary(s: _Foundation, p: dict[str, Any]) -> str:
    d = p.get("disbursement")
    if d is not None:
        return f"the Foundation pays {d['coop']} {s.money(d['amount'])} for {d['purpose']}"
    if p.get("kind") == "amend":
        body = p.get("body") or {}
        shown = _parameter_text(s, body.get("param"), body.get("value"))
        if shown is not None:
            return f"set {body['param']} to {shown}"
    return str(p["summary"])


def _parameter_text(s: _Foundation, param: Any, value: Any) -> str | None:
    """An amended parameter's value as people read it (major units, days, percent), if known."""
    if param in ("coop_limits", "member_limits") and isinstance(value, dict):
        credit, cap = value.get("credit"), value.get("cap")
        if type(credit) is int and type(cap) is int:
            return f"credit limit {s.money(credit)}, balance cap {s.money(cap)}"
    if param in ("voting_period_us", "rules_grace_us") and type(value) is int:
        return f"{days_text(value)} days"
    if param in ("foundation_share_bp", "quorum_bp", "threshold_bp") and type(value) is int:
        return f"{percent_text(value)} %"
    return None


def _who(item: dict[str, Any], field: str) -> str:
    """A person as `Name (agt_xxxxxxxx…)`: the name the node read from their genesis, if any."""
    key = str(item[field])
    name = item.get(f"{field}_name")
    return f"{name} ({key[:12]}…)" if name and name != "?" else key


def _details(s: _Foundation, p: dict[str, Any]) -> str:
    lines = [
        f"{p['id']}  {p['kind']}  {_status(p)}",
        f"  {p['title']}",
        f"  {_summary(s, p)}",
        f"  proposed by {_who(p, 'author')} at {iso_time(p['timestamp'])}; "
        f"voting closes {iso_time(p['deadline'])}",
        f"  {_tally_line(p)}",
    ]
    if p["ratification"]:
        lines.append(f"  ratified by {p['ratification']}")
    d = p.get("disbursement")
    if d is not None and p["status"] == "ratified":
        lines.append(f"  paid by {d['paid_by']}" if d["paid_by"] else "  not paid yet")
    for v in p["votes"]:
        why = "" if v["counted"] else f"  (not counted: {v['why_not']})"
        member = _member_note(v)
        lines.append(
            f"  vote {v['choice']:<7} {_who(v, 'voter')}{member} at {iso_time(v['timestamp'])}{why}"
        )
    for c in p["comments"]:
        lines.append(f"  comment by {_who(c, 'author')} at {iso_time(c['timestamp'])}: {c['text']}")
    for r in p["reports"]:
        used = "" if r["used"] is None else f" (used {s.money(r['used'])})"
        lines.append(
            f"  report by {_who(r, 'author')} at {iso_time(r['timestamp'])}{used}: {r['text']}"
        )
    return "\n".join(lines)

"""``conode web``: the members' web page's address and logins (``DIR/web-users.json``).

These commands work on the data dir, whether or not the node runs: the
running node reads the users file again whenever it changes.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import ops
from cli.datadir import CommandError, DataDir, default_data_dir
from cli.output import EXIT_OK, note, print_json, warn
from conode.hashes import AgentKey

__all__ = ["OPERATOR_LOGIN", "add_commands"]

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[Any, str, Handler, str], argparse.ArgumentParser]
JsonFlag = Callable[[argparse.ArgumentParser], None]

OPERATOR_LOGIN = "operator"
"""The login ``conode web`` makes a one-time link for (created without a password if missing)."""


def add_commands(commands: Any, command: Command, json_flag: JsonFlag) -> None:
    """``web``, ``web link``, ``web user add/list/remove``."""
    web = command(
        commands, "web", _web, "the web page's address and a one-time login link for the operator"
    )
    json_flag(web)
    subs = web.add_subparsers(dest="web_command", metavar="COMMAND")
    link = command(subs, "link", _link, "a one-time login link for a web login (15 minutes)")
    link.add_argument("login", metavar="LOGIN")
    json_flag(link)
    user = subs.add_parser("user", help="web logins")
    users = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    add = command(users, "add", _user_add, "let a login act as a hosted agent on the web page")
    add.add_argument("agent", nargs="?", metavar="AGENT", help="a local agent's name or key")
    add.add_argument("--login", metavar="NAME", help="the login name (default: the agent's name)")
    add.add_argument(
        "--password-file", type=Path, metavar="F", help="read the password from F (else a prompt)"
    )
    add.add_argument("--no-password", action="store_true", help="log in by one-time links only")
    add.add_argument("--operator", action="store_true", help="may also see the node's pages")
    json_flag(add)
    json_flag(command(users, "list", _user_list, "every web login and its agents"))
    remove = command(users, "remove", _user_remove, "remove a web login (its sessions end)")
    remove.add_argument("login", metavar="LOGIN")
    json_flag(remove)


def _data_dir(args: argparse.Namespace) -> DataDir:
    chosen: Path | None = getattr(args, "data_dir", None)
    data = DataDir(chosen if chosen is not None else default_data_dir())
    data.config()  # the data dir must be initialised
    return data


def _users(data: DataDir) -> Any:
    from conode.web.users import UserFile

    return UserFile(data.root)


def _now() -> int:
    return ops.now_us()


def _address(data: DataDir) -> tuple[str, bool]:
    """The page's address: the running node's, else the configured one (and whether it runs)."""
    from conode.web.server import URL_FILE

    try:
        return (data.root / URL_FILE).read_text().strip(), True
    except OSError:
        listen = data.config().web_listen
        scheme = "https" if data.config().web_tls_cert else "http"
        return f"{scheme}://{listen}/", False


def _link_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/login/link?t={token}"


def _web(args: argparse.Namespace) -> int:
    if args.web_command is not None:  # a subcommand without a handler of its own
        args.parser.error("see `conode web --help`")
    data = _data_dir(args)
    users = _users(data)
    if users.get(OPERATOR_LOGIN) is None:
        users.add(OPERATOR_LOGIN, operator=True)
    token = users.new_link(OPERATOR_LOGIN, _now())
    address, running = _address(data)
    link = _link_url(address, token)
    if args.json:
        print_json({"url": address, "running": running, "login_link": link, "expires_in_s": 900})
        return EXIT_OK
    if not running:
        warn(f"the node does not serve the web page now (start it with `conode run`): {address}")
    print(f"web page: {address}")
    print(f"one-time operator login (15 minutes): {link}")
    return EXIT_OK


def _link(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    token = _users(data).new_link(args.login, _now())
    address, _running = _address(data)
    link = _link_url(address, token)
    if args.json:
        print_json({"login": args.login, "login_link": link, "expires_in_s": 900})
    else:
        print(f"one-time login for {args.login} (15 minutes): {link}")
    return EXIT_OK


def _read_password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return None
    if args.password_file is not None:
        try:
            text: str = args.password_file.read_text()
            return text.rstrip("\r\n")
        except OSError as exc:
            raise CommandError(f"cannot read {args.password_file}: {exc.strerror or exc}") from exc
    if not sys.stdin.isatty():
        raise CommandError("no password: use --password-file F or --no-password (or a terminal)")
    first = getpass.getpass("web password: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def _user_add(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    if args.agent is None and not args.operator:
        args.parser.error("name an AGENT, or give --operator")
    agents: tuple[AgentKey, ...] = ()
    login = args.login
    if args.agent is not None:
        ref = ops.resolve_agent(data, args.agent)
        agents = (ref.agent,)
        login = login or ref.name
    if not login:
        args.parser.error("give --login NAME")
    password = _read_password(args)
    user = _users(data).add(login, agents=agents, password=password, operator=args.operator)
    row = _user_json(user)
    if args.json:
        print_json(row)
    else:
        print(f"web login {user.login}: acts as {len(user.agents)} agent(s)"
              f"{', operator' if user.operator else ''}")  # fmt: skip
        if user.password is None:
            note(f"no password: log in with `conode web link {user.login}`")
    return EXIT_OK


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "login": user.login,
        "agents": [str(a) for a in user.agents],
        "operator": user.operator,
        "password": user.password is not None,
    }


def _user_list(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    rows = [_user_json(u) for u in _users(data).users()]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no web logins (add one with `conode web user add AGENT`)")
    else:
        for row in rows:
            extra = ", operator" if row["operator"] else ""
            print(f"{row['login']}: {len(row['agents'])} agent(s){extra}")
    return EXIT_OK


def _user_remove(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    _users(data).remove(args.login)
    if args.json:
        print_json({"removed": args.login})
    else:
        print(f"removed web login {args.login}")
    return EXIT_OK

"""``conode call APP FN [KEY=VALUE ...]`` and ``conode app list|show|fetch|approve|withdraw``.

``call`` and ``fetch`` ask the running node (``app.call``, ``app.fetch`` in
``docs/api.md``). ``list``, ``show``, ``approve`` and ``withdraw`` ask the
running node too, or, when none runs, read and write the data dir's store
themselves (``conode.apphost.AppCatalog``), so an operator can read and
approve an app's code before the node's first start.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.client import ApiClient, node_running
from cli.datadir import CommandError, DataDir, default_data_dir
from cli.output import EXIT_OK, note, print_json, warn
from cli.render import table
from cli.session import initialised_data_dir
from conode.apps.hosting import plan_apps
from conode.errors import AppError, EncodingError
from conode.hashes import BundleHash, resolve

if TYPE_CHECKING:
    from conode.apphost import AppCatalog
    from conode.apps.loader import InstalledApp

__all__ = ["add_commands", "parse_params"]

Handler = Callable[[argparse.Namespace], int]


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``call`` and ``app`` to the ``conode`` parser."""
    call = command(commands, "call", _call, "run a function of an app on the running node")
    call.add_argument("app", metavar="APP", help="the app's id, e.g. lookout")
    call.add_argument("fn", metavar="FN", help="the function, e.g. board or signal")
    call.add_argument(
        "params",
        nargs="*",
        metavar="KEY=VALUE",
        help="the function's parameters as text (a key given twice makes a list)",
    )
    call.add_argument(
        "--as",
        dest="agent",
        metavar="AGENT",
        help="the local agent the function acts as (default: the only one)",
    )
    json_flag(call)

    app = commands.add_parser(
        "app",
        help="the network's apps on this node: list, read, fetch and approve their code",
        description="An app runs on this node only if the network's rules pin its bundle hash, "
        "its code is installed here at that hash, and the operator approved that hash.",
    )
    apps = app.add_subparsers(dest="app_command", metavar="COMMAND", required=True)
    json_flag(
        command(apps, "list", _list, "each pinned or installed app: approved? running? why not?")
    )
    show = command(apps, "show", _show, "print the code of a bundle (installed or fetched)")
    _hash_arg(show)
    show.add_argument("--files", action="store_true", help="list the files only, not their text")
    json_flag(show)
    fetch = command(apps, "fetch", _fetch, "fetch a bundle from the peers by its hash")
    _hash_arg(fetch)
    json_flag(fetch)
    approve = command(
        apps, "approve", _approve, "approve a bundle's code: it runs from the node's next start"
    )
    _hash_arg(approve)
    json_flag(approve)
    withdraw = command(
        apps, "withdraw", _withdraw, "withdraw an approval: the app stops at the next start"
    )
    _hash_arg(withdraw)
    json_flag(withdraw)


def _hash_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "hash",
        type=_bundle_hash,
        metavar="HASH",
        help="the bundle hash (app_…), or a unique prefix of 8+ characters",
    )


def _bundle_hash(text: str) -> str:
    """``text`` if it is a bundle hash or could be a prefix of one (a usage error otherwise);
    which bundle a prefix names is the node's to say."""
    try:  # a prefix's own range holds its lowest completion: the syntax is all that is checked
        resolve(BundleHash, text, lambda lo, _hi: [lo])
    except EncodingError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bundle hash: {exc}") from None
    return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` texts as a map; a key given twice makes a list; ``-`` in keys reads as ``_``."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CommandError(f"{item!r} is not KEY=VALUE")
        if key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params


# -- call -------------------------------------------------------------------------------------------


def _call(args: argparse.Namespace) -> int:
    params = parse_params(args.params)
    request: dict[str, Any] = {"app": args.app, "fn": args.fn, "params": params}
    if args.agent is not None:
        request["agent"] = args.agent
    result = ApiClient(initialised_data_dir(args)).call("app.call", request)
    if args.json:
        print_json(result)
    elif isinstance(result, str):
        print(result)
    elif result is not None:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


# -- app ----------------------------------------------------------------------------------------------


@contextmanager
def _offline(
    data: DataDir, installed: dict[str, InstalledApp] | None = None
) -> Iterator[AppCatalog]:
    """The data dir's ``AppCatalog`` when no node runs (the store opened here)."""
    from conode.apphost import AppCatalog  # only the offline commands need the node's modules

    with data.open_node_store() as store:
        yield AppCatalog(store, data.charter(), _installed() if installed is None else installed)


def _list(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    installed = _installed()
    if data.exists() and node_running(data):
        rows = ApiClient(data).call("app.list")
    elif data.exists() and data.has_charter():
        with _offline(data, installed) as catalog:
            rows = []
            for status in catalog.statuses():
                row = status.to_json()
                row["running"] = None  # no node runs: what its next start would do is the reason
                if status.running:
                    row["reason"] = f"{status.app_id}: runs when the node starts"
                rows.append(row)
    else:
        rows = _without_charter(data, installed)
    for row in rows:
        code = installed.get(row["id"])
        row["pinned"] = row["hash"] is not None
        row["installed_version"] = None if code is None else code.version
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no app is pinned by the network's rules or installed here")
        return EXIT_OK
    print(
        table(
            ("APP", "VERSION", "HASH", "PINNED", "INSTALLED", "APPROVED", "RUNNING"),
            [
                (
                    r["id"],
                    (r["version"] if r["pinned"] else r["installed_version"]) or "-",
                    (r["hash"] if r["pinned"] else r["local_hash"]) or "-",
                    _yes(r["pinned"]),
                    _yes(r["installed"]),
                    _yes(r["approved"]),
                    "-" if r["running"] is None else _yes(r["running"]),
                )
                for r in rows
            ],
        )
    )
    for r in rows:
        if r["reason"]:
            print(_advice(r))  # every reason starts with the app's id
    return EXIT_OK


def _data_dir(args: argparse.Namespace) -> DataDir:
    chosen: Path | None = getattr(args, "data_dir", None)
    return DataDir(chosen if chosen is not None else default_data_dir())


def _installed() -> dict[str, InstalledApp]:
    """The apps installed here, by id (a broken one is a warning, not an error)."""
    from conode.apps.loader import installed_apps

    broken: list[str] = []
    installed = installed_apps(broken=broken)
    for error in broken:
        warn(error)
    return installed


def _without_charter(data: DataDir, installed: dict[str, InstalledApp]) -> list[dict[str, Any]]:
    """Each installed app when no charter pins any yet: what a charter's ``[[apps]]`` would name.

    The hash is the installed code's bundle hash; approvals are read from the
    store if the data dir has one.
    """
    approved: frozenset[BundleHash] = frozenset()
    if data.exists():
        with data.open_node_store() as store:
            approved = frozenset(store.approved_bundles())
    hashes = {app_id: _local_hash(app) for app_id, app in installed.items()}
    rows = []
    for status in plan_apps((), hashes, approved):
        row = status.to_json()
        row["running"] = None
        row["reason"] = (
            f"{status.app_id}: no charter here pins it yet: to run it, pin it in the charter "
            "TOML's [[apps]] (id, version, code_hash as listed)"
        )
        rows.append(row)
    return rows


def _local_hash(app: InstalledApp) -> BundleHash | None:
    try:
        return app.bundle_hash()
    except AppError as exc:
        warn(str(exc))
        return None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _advice(row: dict[str, Any]) -> str:
    """The reason, and the next step the operator can take."""
    reason = str(row["reason"])
    if row["hash"] and not row["approved"]:
        return (
            f"{reason}; read it with `conode app show {row['hash']}`, "
            f"then `conode app approve {row['hash']}`"
        )
    if row["hash"] and not row["installed"]:
        return f"{reason}; install the package of this app at that hash, then restart the node"
    return reason


def _show(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    if node_running(data):
        shown = ApiClient(data).call("app.show", {"hash": args.hash})
    else:
        with _offline(data) as catalog:
            shown = catalog.show(_resolved(catalog, args.hash))
    if args.files:
        shown = {**shown, "files": [{k: f[k] for k in ("path", "bytes")} for f in shown["files"]]}
    if args.json:
        print_json(shown)
        return EXIT_OK
    what = f"{shown['id'] or '?'} {shown['version'] or ''}".strip()
    print(
        f"bundle {shown['hash']}: {what}, {len(shown['files'])} files, {shown['bytes']} bytes "
        f"({shown['source']}); pinned: {_yes(shown['pinned'])}, approved: {_yes(shown['approved'])}"
    )
    for item in shown["files"]:
        if args.files:
            print(f"{item['bytes']:>9}  {item['path']}")
        else:
            print(f"\n==> {item['path']} ({item['bytes']} bytes) <==")
            print(item["text"], end="" if item["text"].endswith("\n") else "\n")
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    result = ApiClient(initialised_data_dir(args)).call("app.fetch", {"hash": args.hash})
    if args.json:
        print_json(result)
        return EXIT_OK
    how = "fetched" if result["fetched"] else "already kept"
    print(
        f"{how}: bundle {result['hash']} ({len(result['files'])} files, {result['bytes']} bytes); "
        f"read it with `conode app show {result['hash']}`"
    )
    return EXIT_OK


def _approve(args: argparse.Namespace) -> int:
    result = _change(args, "app.approve", "approve")
    if args.json:
        print_json(result)
        return EXIT_OK
    what = f"{result['id'] or '?'} {result['version'] or ''}".strip()
    print(f"approved bundle {result['hash']} ({what}): it runs from the node's next start")
    if not result["installed"]:
        note("its code is not installed here: install the app's package at that hash too")
    return EXIT_OK


def _withdraw(args: argparse.Namespace) -> int:
    result = _change(args, "app.withdraw", "withdraw")
    if args.json:
        print_json(result)
        return EXIT_OK
    what = f"{result['id'] or '?'} {result['version'] or ''}".strip()
    print(f"withdrew the approval of bundle {result['hash']} ({what}): it stops at the next start")
    return EXIT_OK


def _change(args: argparse.Namespace, method: str, action: str) -> dict[str, Any]:
    data = initialised_data_dir(args)
    if node_running(data):
        result: dict[str, Any] = ApiClient(data).call(method, {"hash": args.hash})
        return result
    with _offline(data) as catalog:
        bundle = _resolved(catalog, args.hash)
        return catalog.approve(bundle) if action == "approve" else catalog.withdraw(bundle)


def _resolved(catalog: AppCatalog, text: str) -> BundleHash:
    """A typed bundle hash or prefix, as the node would resolve it (one line if it cannot)."""
    try:
        return catalog.resolve(text)
    except EncodingError as exc:
        raise CommandError(f"{text!r} is not a bundle hash here: {exc}") from None

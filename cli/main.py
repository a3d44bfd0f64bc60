"""``conode [--data-dir DIR] COMMAND ...``: parse, call ``cli.ops`` (or the node's API), print.

Exit codes: 0 done (or chain valid), 1 an error, an invalid chain or audit,
a refused payment, 2 a usage error, 130 interrupted. Every error is one line
on stderr, ``conode: error: ...``; a ``ConodeError`` never shows a traceback.
The network commands live in ``cli.netcmds`` (set-up, ``run``, ``devnet``)
and ``cli.apicmds`` (the parsers of everything that asks a running node; their
handlers in ``cli.nodecmds``, ``cli.paycmds``, ``cli.auditcmds``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from cli import (
    apicmds,
    appcmds,
    backupcmds,
    exchangecmds,
    foundationcmds,
    guard,
    keycmds,
    lookoutcmds,
    netcmds,
    ops,
    seecmds,
    webcmds,
)
from cli.datadir import CommandError, DataDir, default_data_dir
from cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from cli.output import error as _error
from cli.output import print_json as _print_json
from cli.passphrases import add_passphrase_options, source_of
from cli.render import Progress, iso_time, jsonish, record_json, table, violation_json
from conode import __version__
from conode.errors import ConodeError
from conode.exportfile import ChainFile
from conode.hashes import AgentKey

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"conode: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the node's data directory (default: $CONODE_DATA_DIR or the user data dir)",
    )
    parser = _Parser(
        prog="conode",
        description="A peer-to-peer mutual-credit node for co-operatives.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"conode {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: Any, name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[common], help=text, description=text
        )
        sub.set_defaults(handler=handler, parser=sub)
        return sub

    def json_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")

    netcmds.add_init(commands, command, json_flag)

    agent = commands.add_parser("agent", help="local agents and their keys")
    agents = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)
    netcmds.add_agent_commands(agents, command, json_flag)
    keycmds.add_commands(agents, command, json_flag)
    json_flag(command(agents, "list", _agent_list, "list local agents"))

    chain = commands.add_parser("chain", help="source chains")
    chains = chain.add_subparsers(dest="chain_command", metavar="COMMAND", required=True)
    show = command(chains, "show", _chain_show, "show every action of a chain")
    _agent_arg(show)
    json_flag(show)
    add = command(chains, "add", _chain_add, "commit an entry to a local agent's chain")
    add.add_argument("agent", metavar="AGENT", help="a local agent's name or key")
    add.add_argument("--type", required=True, dest="entry_type", help="the entry type")
    add.add_argument("--data", required=True, help="the entry: a JSON object (integers only)")
    add_passphrase_options(add)
    json_flag(add)
    check = command(chains, "verify", _chain_verify, "re-check a chain with every chain rule")
    _agent_arg(check)
    check.add_argument("--file", type=Path, metavar="F", help="verify an export file instead")
    json_flag(check)
    export = command(chains, "export", _chain_export, "write a chain to a portable file")
    _agent_arg(export)
    export.add_argument("--out", type=Path, required=True, metavar="F", help="the file to write")
    json_flag(export)
    imp = command(chains, "import", _chain_import, "verify and store a chain from an export file")
    imp.add_argument("file", type=Path, metavar="F", help="the export file")
    json_flag(imp)

    netcmds.add_commands(commands, command, json_flag)
    apicmds.add_commands(commands, command, json_flag)
    seecmds.add_commands(commands, command, json_flag)
    appcmds.add_commands(commands, command, json_flag)
    backupcmds.add_commands(commands, command, json_flag)
    exchangecmds.add_commands(commands, command, json_flag)
    lookoutcmds.add_commands(commands, command, json_flag)
    foundationcmds.add_commands(commands, command, json_flag)
    webcmds.add_commands(commands, command, json_flag)

    demo = command(commands, "demo", _demo, "run the in-process demonstration of chains")
    demo.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it")
    json_flag(demo)
    return parser


def _agent_arg(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "agent", nargs="?", metavar="AGENT", help="a name or agt_… key (default: the only agent)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``conode`` command; its exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConodeError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("\nconode: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`conode chain show | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


# -- output helpers -----------------------------------------------------------------------


def _data_dir(args: argparse.Namespace) -> DataDir:
    chosen: Path | None = getattr(args, "data_dir", None)
    return DataDir(chosen if chosen is not None else default_data_dir())


# -- commands -----------------------------------------------------------------------------


def _agent_list(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    rows: list[dict[str, Any]] = []
    with data.open_store() as store:
        for _path, info in ops.local_agents(data):
            head = store.head(info.agent)
            rows.append(
                {
                    "name": info.name,
                    "agent": str(info.agent),
                    "records": store.count(info.agent),
                    "head_seq": None if head is None else head.seq,
                    "encrypted": info.encrypted,
                }
            )
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no local agents (create one with `conode agent new NAME`)")
    else:
        print(
            table(
                ("NAME", "AGENT", "RECORDS", "HEAD", "ENCRYPTED"),
                [
                    (
                        r["name"],
                        r["agent"],
                        r["records"],
                        "-" if r["head_seq"] is None else r["head_seq"],
                        "yes" if r["encrypted"] else "NO",
                    )
                    for r in rows
                ],
            )
        )
    return EXIT_OK


def _chain_show(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    with data.open_store() as store:
        ref = ops.resolve_agent(data, args.agent)
        if store.count(ref.agent) == 0:
            raise CommandError(f"this store holds no chain for {ref.label()}")
        records = list(store.records(ref.agent))
    if args.json:
        _print_json(
            {
                "agent": str(ref.agent),
                "name": ref.name,
                "records": len(records),
                "actions": [record_json(record) for record in records],
            }
        )
        return EXIT_OK
    print(f"chain of {ref.name or ref.agent} ({ref.agent}): {len(records)} records")
    rows = [
        (
            record.action.seq,
            record.action.kind.name.lower(),
            iso_time(record.action.timestamp),
            record.action.entry_type or "-",
            record.hash.short(),
            "-" if record.entry is None else jsonish(record.entry_value()),
        )
        for record in records
    ]
    print(table(("SEQ", "KIND", "TIME", "TYPE", "ACTION", "ENTRY"), rows))
    return EXIT_OK


def _chain_add(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    entry = ops.parse_entry_json(args.data)
    if data.has_charter():  # a network's chain: judged by its rules before it is committed
        ref, record = guard.add_entry(data, args.agent, args.entry_type, entry, source_of(args))
    else:
        with data.open_store() as store:
            ref = ops.resolve_agent(data, args.agent)
            signer = ops.load_signer(data, ref, source_of(args))
            record = ops.commit_entry(
                store, signer, entry_type=args.entry_type, entry=entry, timestamp=ops.now_us()
            )
    if args.json:
        _print_json(record_json(record))
    else:
        print(f"committed seq {record.action.seq} ({record.hash}) to the chain of {ref.label()}")
    return EXIT_OK


def _chain_verify(args: argparse.Namespace) -> int:
    if args.file is not None and args.agent is not None:
        args.parser.error("chain verify takes an AGENT or --file F, not both")
    if args.file is not None:
        with ChainFile(args.file) as chain_file:
            total = chain_file.header.count
        progress = Progress.maybe(f"verifying {args.file}", total)
        try:
            verdict = ops.verify_file(args.file, progress)
        finally:
            if progress is not None:
                progress.close()
        what = f"{args.file} (chain of {verdict.agent})"
        networked = False
    else:
        data = _data_dir(args)
        with data.open_store() as store:
            ref = ops.resolve_agent(data, args.agent)
            progress = Progress.maybe(f"verifying {ref.label()}", store.count(ref.agent))
            try:
                verdict = ops.verify_stored(store, ref.agent, progress)
            finally:
                if progress is not None:
                    progress.close()
        networked = data.has_charter()
        if verdict.valid and networked:  # a network's chain: judged by its rules too
            verdict = guard.judge_chain(data, verdict)
        what = f"the chain of {ref.label()}"
    if args.json:
        _print_json(
            {
                "valid": verdict.valid,
                "agent": str(verdict.agent),
                "records": verdict.records,
                "violation": violation_json(verdict.violation),
            }
        )
    elif verdict.violation is None:
        rules = "every rule of the network holds" if networked else "every chain rule holds"
        print(f"valid: {what}: {verdict.records} records, {rules}")
    else:
        print(f"INVALID: {what}: {verdict.violation}")
    return EXIT_OK if verdict.valid else EXIT_FAILED


def _chain_export(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    with data.open_store() as store:
        ref = ops.resolve_agent(data, args.agent)
        records, size = ops.export_chain(store, ref.agent, args.out)
    if args.json:
        _print_json(
            {"agent": str(ref.agent), "records": records, "bytes": size, "file": str(args.out)}
        )
    else:
        print(f"exported {records} records of {ref.label()} to {args.out} ({size} bytes)")
    return EXIT_OK


def _chain_import(args: argparse.Namespace) -> int:
    data = _data_dir(args)
    if data.has_charter():  # a network's chain: every record judged by its rules
        author, count, added, head_seq = guard.import_chain(data, args.file)
        return _imported(args, author, count, added, head_seq)
    with data.open_store() as store:
        with ChainFile(args.file) as chain_file:
            total = chain_file.header.count
        progress = Progress.maybe(f"importing {args.file}", total)
        try:
            header, imported = ops.import_chain_file(store, args.file, progress)
        finally:
            if progress is not None:
                progress.close()
    return _imported(args, header.author, header.count, imported.added, imported.head.seq)


def _imported(
    args: argparse.Namespace, author: AgentKey, count: int, added: int, head_seq: int | None
) -> int:
    if args.json:
        _print_json({"agent": str(author), "records": count, "added": added, "head_seq": head_seq})
    elif added:
        rules = (
            "every rule of the network holds"
            if _data_dir(args).has_charter()
            else ("every chain rule holds")
        )
        print(
            f"imported the chain of {author}: {added} new records "
            f"of {count} (head seq {head_seq}), {rules}"
        )
    else:
        print(f"already held: the chain of {author} ({count} records); nothing added")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo  # only the demo needs it

    result = run_demo(args.keep, out=sys.stdout)
    if args.json:
        _print_json(result.as_json())
    return EXIT_OK if result.verified and result.tamper_detected else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())

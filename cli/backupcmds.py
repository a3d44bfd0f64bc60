"""``conode backup FILE`` and ``conode restore FILE`` (the work is ``cli.backup``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import ops
from cli.backup import restore, write_backup
from cli.datadir import DataDir, default_data_dir
from cli.output import EXIT_OK, note, print_json, warn
from cli.session import initialised_data_dir

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]


def add_commands(
    commands: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``backup`` and ``restore``."""
    backup = command(
        commands, "backup", _backup, "copy the store, keys and config to one file (node may run)"
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup file to write")
    json_flag(backup)
    back = command(commands, "restore", _restore, "make the data dir from a backup file")
    back.add_argument("file", type=Path, metavar="FILE", help="a file written by `conode backup`")
    back.add_argument(
        "--force",
        action="store_true",
        help="restore over a data dir that is not empty (it is kept, renamed)",
    )
    json_flag(back)


def _backup(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    backup = write_backup(data, args.file, now_us=ops.now_us())
    manifest = backup.manifest
    if args.json:
        print_json(backup.as_json())
        return EXIT_OK
    agents = manifest["agents"]
    plain = [a["name"] for a in agents if not a["encrypted"]]
    charter = "the charter, " if manifest["network"] is not None else ""
    print(
        f"wrote {args.file} ({backup.path.stat().st_size} bytes): the store as of "
        f"{manifest['created']} ({manifest['store']['records']} records), the config, "
        f"{charter}the node key and {_keys(len(agents))}"
    )
    note(
        "encrypted keys stay encrypted (their passphrases are not in the file); the node key "
        "is not encrypted: keep the file as private as the data dir"
    )
    if plain:
        warn(f"these agent keys are UNENCRYPTED in the backup: {', '.join(plain)}")
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    chosen: Path | None = getattr(args, "data_dir", None)
    data = DataDir(chosen if chosen is not None else default_data_dir())
    backup, replaced = restore(args.file, data, force=args.force)
    manifest = backup.manifest
    if args.json:
        print_json(
            {
                **backup.as_json(),
                "data_dir": str(data.root),
                "replaced_dir_kept_at": None if replaced is None else str(replaced),
            }
        )
        return EXIT_OK
    print(
        f"restored {data.root} from {args.file} (taken {manifest['created']}): "
        f"{_keys(len(manifest['agents']))}, {manifest['store']['records']} records, "
        f"node {manifest['peer_id']}"
    )
    if replaced is not None:
        note(f"the data dir that was there is kept at {replaced}")
    note(
        "start the node (`conode run`): it first fetches its agents' chains from its peers, "
        "then hosts them; never run the old node as well"
    )
    return EXIT_OK


def _keys(count: int) -> str:
    return f"{count} agent key{'' if count == 1 else 's'}"

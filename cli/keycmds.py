"""``conode agent passphrase NAME``: change one key's passphrase (and bring its KDF up to date).

Works whether or not the node runs: a running node holds the key already;
it needs the new passphrase at its next start, which the command says.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.datadir import CommandError
from cli.output import EXIT_OK, note, print_json, warn
from cli.passphrases import add_passphrase_options, source_of
from cli.session import initialised_data_dir
from conode.keyfile import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    change_passphrase,
    check_agent_name,
    key_path,
    read_key_info,
)
from conode.passphrase import (
    CREDENTIAL_PREFIX,
    PassphraseSource,
    check_new_passphrase,
    read_passphrase_file,
)

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace], int]


def add_commands(
    agents: Any,
    command: Callable[[Any, str, Handler, str], argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``agent passphrase`` under the ``agent`` group."""
    change = command(
        agents, "passphrase", _agent_passphrase, "change the passphrase of a local agent's key"
    )
    change.add_argument("name", metavar="NAME", help="the local agent")
    add_passphrase_options(change)
    new = change.add_mutually_exclusive_group()
    new.add_argument(
        "--new-passphrase-file", type=Path, metavar="F", help="read the new passphrase from F"
    )
    new.add_argument(
        "--no-passphrase", action="store_true", help="store the key UNENCRYPTED (not advised)"
    )
    json_flag(change)


def _agent_passphrase(args: argparse.Namespace) -> int:
    data = initialised_data_dir(args)
    name = check_agent_name(args.name)
    path = key_path(data.keys_dir, name)
    if not path.exists():
        raise CommandError(f"no local agent named {name!r} ({path} does not exist)")
    before = read_key_info(path)

    def new_passphrase() -> bytes | None:
        if args.no_passphrase:
            return None
        if args.new_passphrase_file is not None:
            return check_new_passphrase(read_passphrase_file(args.new_passphrase_file))
        ask = PassphraseSource(environ={})
        return check_new_passphrase(ask.passphrase(name, confirm=True, new=True))

    info = change_passphrase(path, source_of(args), new_passphrase)
    if not info.encrypted:
        warn(f"the key of agent {name} is stored UNENCRYPTED in {path}")
    if args.json:
        print_json(
            {
                "name": name,
                "agent": str(info.agent),
                "key_file": str(path),
                "was_encrypted": before.encrypted,
                "encrypted": info.encrypted,
                "kdf": {
                    "name": "argon2id",
                    "opslimit": DEFAULT_OPSLIMIT,
                    "memlimit": DEFAULT_MEMLIMIT,
                }
                if info.encrypted
                else None,
            }
        )
    else:
        level = f"Argon2id, {DEFAULT_OPSLIMIT} passes over {DEFAULT_MEMLIMIT >> 20} MiB"
        what = f"a new passphrase ({level})" if info.encrypted else "no passphrase"
        print(f"the key of agent {name} ({info.agent.short()}…) now has {what}: {path}")
        note(
            f"a node that hosts {name} needs the new passphrase at its next start: "
            f"update its passphrase dir ({name}), its systemd credential "
            f"({CREDENTIAL_PREFIX}{name}) or its --passphrase-file"
        )
    return EXIT_OK

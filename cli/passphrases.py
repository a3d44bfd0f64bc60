"""The passphrase options every command that opens or makes a key shares.

``--passphrase-file F`` (one passphrase for every key) and ``--passphrase-dir
DIR`` (``DIR/NAME`` holds agent NAME's); systemd credentials, the
environment and the terminal are looked at by ``conode.passphrase``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from conode.passphrase import PASSPHRASE_DIR_ENV, PassphraseSource

__all__ = ["add_passphrase_dir", "add_passphrase_file", "add_passphrase_options", "source_of"]


def add_passphrase_file(group: Any, text: str = "read the key's passphrase from F") -> None:
    """``--passphrase-file F`` (into ``group``: a parser, or a mutually exclusive group)."""
    group.add_argument("--passphrase-file", type=Path, metavar="F", help=text)


def add_passphrase_dir(parser: argparse.ArgumentParser) -> None:
    """``--passphrase-dir DIR``."""
    parser.add_argument(
        "--passphrase-dir",
        type=Path,
        metavar="DIR",
        help=f"DIR/NAME holds agent NAME's passphrase (default ${PASSPHRASE_DIR_ENV})",
    )


def add_passphrase_options(parser: argparse.ArgumentParser) -> None:
    """Both options, for a command that opens keys."""
    add_passphrase_file(parser)
    add_passphrase_dir(parser)


def source_of(
    args: argparse.Namespace, *, file_option: str = "passphrase_file", interactive: bool = True
) -> PassphraseSource:
    """The passphrase source the options of ``args`` describe (the file from ``file_option``)."""
    return PassphraseSource(
        file=getattr(args, file_option, None),
        directory=getattr(args, "passphrase_dir", None),
        interactive=interactive,
    )

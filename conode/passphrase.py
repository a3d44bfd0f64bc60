"""Where an agent key's passphrase comes from, one agent at a time.

A shell (files, the environment, the terminal). For agent ``NAME`` the most
specific source wins:

1. ``value`` (in-process callers: tests, the demo);
2. a file named for the agent: ``DIR/NAME`` in the passphrase directory
   (``--passphrase-dir DIR``, else ``$CONODE_PASSPHRASE_DIR``), then
   ``$CREDENTIALS_DIRECTORY/passphrase_NAME`` (systemd's ``LoadCredential=``;
   ``LoadCredential=passphrase:/etc/conode/passphrases`` loads a whole
   directory of them under exactly these names);
3. one passphrase for every key: ``--passphrase-file F``, then
   ``$CONODE_PASSPHRASE``;
4. the terminal, when ``interactive`` and stdin is one.

A passphrase file is a secret like a key file: a regular file that its
group or others may read or write is refused, with the ``chmod`` that fixes
it. One trailing newline is dropped. New passphrases (a key created, or its
passphrase changed) are at least ``MIN_PASSPHRASE_CHARS`` characters.
Every failure is a ``KeyFileError`` with one readable line.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from conode.errors import KeyFileError

__all__ = [
    "CREDENTIALS_ENV",
    "CREDENTIAL_PREFIX",
    "MIN_PASSPHRASE_CHARS",
    "PASSPHRASE_DIR_ENV",
    "PASSPHRASE_ENV",
    "PassphraseSource",
    "check_new_passphrase",
    "read_passphrase_file",
]

PASSPHRASE_ENV: Final = "CONODE_PASSPHRASE"
"""One passphrase for every key, when no file names one."""
PASSPHRASE_DIR_ENV: Final = "CONODE_PASSPHRASE_DIR"
"""The passphrase directory when ``--passphrase-dir`` is not given."""
CREDENTIALS_ENV: Final = "CREDENTIALS_DIRECTORY"
"""Set by systemd for a unit with ``LoadCredential=``."""
CREDENTIAL_PREFIX: Final = "passphrase_"
"""A systemd credential ``passphrase_NAME`` is agent NAME's passphrase."""
MIN_PASSPHRASE_CHARS: Final = 12
"""The shortest passphrase a new key file is written with (characters, or bytes if not UTF-8)."""
_MAX_FILE_SIZE: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class PassphraseSource:
    """The places a passphrase is looked for, in the order of the module docstring."""

    value: bytes | None = None
    file: Path | None = None
    directory: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    interactive: bool = True

    def passphrase(self, name: str, *, confirm: bool = False, new: bool = False) -> bytes:
        """The passphrase for agent ``name`` (asked twice on a terminal when ``confirm``).

        ``new``: a new passphrase for a key that has one already: only the
        terminal is asked ("New passphrase for agent NAME"), never a source
        that holds the old one.
        """
        found = None if new else self.find(name)
        if found is not None:
            return found
        if not self.interactive or not _stdin_is_terminal():
            if new:
                raise KeyFileError(
                    f"no new passphrase for agent {name}: "
                    "give --new-passphrase-file F (or run in a terminal)"
                )
            looked = "; ".join(self.places(name))
            raise KeyFileError(
                f"no passphrase for agent {name}: looked in {looked}; "
                "give --passphrase-dir, --passphrase-file or run in a terminal"
            )
        label = "New passphrase" if new else "Passphrase"
        first = _prompt(f"{label} for agent {name}: ")
        if confirm:
            check_new_passphrase(first.encode())
            if _prompt(f"{label} for agent {name} (again): ") != first:
                raise KeyFileError("the two passphrases do not match")
        return _non_empty(first.encode(), "the passphrase")

    def find(self, name: str) -> bytes | None:
        """The passphrase for ``name`` from every source but the terminal; None if none has one."""
        if self.value is not None:
            return _non_empty(self.value, "the given passphrase")
        for path in self._named_files(name):
            if path.exists():
                return _non_empty(read_passphrase_file(path), f"passphrase file {path}")
        if self.file is not None:
            return _non_empty(read_passphrase_file(self.file), f"passphrase file {self.file}")
        from_env = self.environ.get(PASSPHRASE_ENV)
        if from_env is not None:
            return _non_empty(from_env.encode(), f"${PASSPHRASE_ENV}")
        return None

    def places(self, name: str) -> list[str]:
        """Where ``find`` looks for ``name``'s passphrase, for error messages."""
        places = [str(path) for path in self._named_files(name)]
        if self.file is not None:
            places.append(str(self.file))
        places.append(f"${PASSPHRASE_ENV}")
        return places

    def _named_files(self, name: str) -> list[Path]:
        files = []
        directory = self.directory or _env_path(self.environ, PASSPHRASE_DIR_ENV)
        if directory is not None:
            files.append(directory / name)
        credentials = _env_path(self.environ, CREDENTIALS_ENV)
        if credentials is not None:
            files.append(credentials / f"{CREDENTIAL_PREFIX}{name}")
        return files


def check_new_passphrase(passphrase: bytes) -> bytes:
    """``passphrase`` if it is long enough for a new key file, else ``KeyFileError``."""
    _non_empty(passphrase, "the passphrase")
    try:
        length = len(passphrase.decode("utf-8"))
    except UnicodeDecodeError:
        length = len(passphrase)
    if length < MIN_PASSPHRASE_CHARS:
        raise KeyFileError(
            f"a new passphrase must be at least {MIN_PASSPHRASE_CHARS} characters "
            f"(this one has {length}): a few ordinary words are easy to type and hard to guess"
        )
    return passphrase


def read_passphrase_file(path: Path) -> bytes:
    """A passphrase file's content less one trailing newline; refused if others may use it."""
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if os.name != "nt" and stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
                raise KeyFileError(
                    f"passphrase file {path} is open to group or others "
                    f"(mode {stat.S_IMODE(mode):04o}); fix it with: chmod 600 {path}"
                )
            data = file.read(_MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read passphrase file {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_FILE_SIZE:
        raise KeyFileError(f"passphrase file {path} is too large")
    # one trailing newline is how editors and `echo` end a file, not part of the passphrase
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _non_empty(passphrase: bytes, where: str) -> bytes:
    if type(passphrase) is not bytes:
        raise TypeError("a passphrase is bytes")
    if not passphrase:
        raise KeyFileError(
            f"{where} is empty; use --no-passphrase if you really want an unencrypted key"
        )
    return passphrase


def _env_path(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name)
    return Path(value) if value else None


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def _prompt(text: str) -> str:
    try:
        return getpass.getpass(text)
    except (EOFError, OSError) as exc:
        raise KeyFileError("could not read a passphrase from the terminal") from exc

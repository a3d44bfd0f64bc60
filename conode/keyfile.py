"""Agent secret keys at rest: one small JSON file per agent, encrypted with a passphrase.

A shell (file I/O). The file is::

    {
      "format": "conode-key", "version": 1,
      "agent": "agt_...", "name": "alice", "encrypted": true,
      "kdf": {"name": "argon2id", "opslimit": 3, "memlimit": 134217728, "salt": "<base64>"},
      "cipher": "xsalsa20-poly1305",
      "box": "<base64 of nonce + ciphertext of the 32-byte Ed25519 seed>"
    }

The key that opens the box is Argon2id(passphrase, salt, opslimit, memlimit).
New files use ``DEFAULT_OPSLIMIT``/``DEFAULT_MEMLIMIT`` (3 passes over
128 MiB; files written before 2026-12 say 2 and 64 MiB, libsodium's
INTERACTIVE level, and stay readable). A file may ask for at most
``MAX_OPSLIMIT`` passes and ``MAX_MEMLIMIT`` bytes (four times the default's
work): a key file is input, and it must not make a node derive for minutes
or allocate what a Raspberry Pi does not have. ``bench/kdf.py`` measures
each level. An unencrypted file (only on request) has ``"encrypted": false``,
``kdf`` and ``cipher`` null, the seed in ``"seed"`` and a ``"warning"``.

A file is written atomically (temporary file, fsync, rename) and is mode 0600
from the moment it exists; changing a passphrase replaces the file the same
way, so the old file stands until the new one is complete and opens. Reading
the secret refuses a file that group or others may read. Where passphrases
come from is ``conode.passphrase``. Every failure is a ``KeyFileError`` with
one readable line: no nacl or OS exception leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from conode import boundedjson
from conode.atomicfile import CannotCreate, fsync_directory, write_atomically
from conode.crypto import SEED_SIZE, Signer
from conode.errors import EncodingError, KeyFileError
from conode.hashes import AgentKey
from conode.passphrase import PASSPHRASE_ENV, PassphraseSource, check_new_passphrase

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "KEY_FILE_FORMAT",
    "KEY_FILE_SUFFIX",
    "KEY_FILE_VERSION",
    "MAX_MEMLIMIT",
    "MAX_OPSLIMIT",
    "PASSPHRASE_ENV",
    "KeyInfo",
    "PassphraseSource",
    "change_passphrase",
    "check_agent_name",
    "key_path",
    "list_keys",
    "load_key",
    "read_key_info",
    "save_key",
]

KEY_FILE_FORMAT: Final = "conode-key"
KEY_FILE_VERSION: Final = 1
KEY_FILE_SUFFIX: Final = ".key"
DEFAULT_OPSLIMIT: Final = 3
"""Argon2id passes for new key files (libsodium's INTERACTIVE level, the old default, is 2)."""
DEFAULT_MEMLIMIT: Final = 128 * 1024 * 1024
"""Argon2id memory for new key files, in bytes (INTERACTIVE is 64 MiB)."""
MAX_OPSLIMIT: Final = 2 * DEFAULT_OPSLIMIT
"""The most passes a key file may ask for."""
MAX_MEMLIMIT: Final = 2 * DEFAULT_MEMLIMIT
"""The most memory a key file may ask for (256 MiB: libsodium's MODERATE level fits)."""

_KDF: Final = "argon2id"
_CIPHER: Final = "xsalsa20-poly1305"
_MAX_FILE_SIZE: Final = 64 * 1024
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_UNENCRYPTED_WARNING: Final = "UNENCRYPTED: anyone who can read this file can sign as this agent"

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a key file says about itself, readable without its passphrase."""

    agent: AgentKey
    name: str
    encrypted: bool


def check_agent_name(name: str) -> str:
    """``name`` if it is a valid local agent name (it names a file), else ``KeyFileError``."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise KeyFileError(
            f"{name!r} is not a valid agent name "
            "(1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit)"
        )
    return name


def key_path(keys_dir: Path, name: str) -> Path:
    """The key file of agent ``name`` in ``keys_dir``."""
    return keys_dir / f"{check_agent_name(name)}{KEY_FILE_SUFFIX}"


def list_keys(keys_dir: Path) -> list[tuple[Path, KeyInfo]]:
    """Every key file in ``keys_dir`` with what it says about itself, sorted by name."""
    try:
        paths = sorted(p for p in keys_dir.iterdir() if p.suffix == KEY_FILE_SUFFIX)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeyFileError(f"cannot list key files in {keys_dir}: {_os_reason(exc)}") from exc
    keys = [(path, read_key_info(path)) for path in paths]
    return sorted(keys, key=lambda item: item[1].name)


def save_key(
    path: Path,
    signer: Signer,
    name: str,
    passphrase: bytes | None,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
    overwrite: bool = False,
) -> KeyInfo:
    """Write ``signer``'s key to ``path`` (``passphrase=None``: unencrypted), atomically, mode 0600.

    Refuses to replace an existing file unless ``overwrite``: losing a key
    loses the agent. A passphrase shorter than ``MIN_PASSPHRASE_CHARS`` is
    refused (``conode.passphrase``).
    """
    check_agent_name(name)
    path = Path(path)
    data = _document_bytes(signer, name, passphrase, opslimit, memlimit)
    if not overwrite and path.exists():
        raise KeyFileError(f"key file {path} already exists")
    _write_atomically(path, data)
    return KeyInfo(AgentKey(signer.public_key), name, passphrase is not None)


def change_passphrase(
    path: Path,
    old: PassphraseSource,
    new: bytes | Callable[[], bytes | None] | None,
    *,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> KeyInfo:
    """Re-encrypt the key file at ``path`` under ``new`` (None: unencrypted) and today's KDF level.

    The old file is opened with ``old`` first (``new`` may be a function,
    asked only then, so a terminal asks the old passphrase before the new
    one); the new file is written beside it, fsynced and opened again with
    ``new`` before it replaces the old one (one rename), so a crash or a
    full disk leaves the old file whole.
    """
    path = Path(path)
    signer = load_key(path, old)
    info = read_key_info(path)
    if callable(new):
        new = new()
    data = _document_bytes(signer, info.name, new, opslimit, memlimit)
    again = PassphraseSource(value=new, environ={}, interactive=False)

    def opens(tmp: Path) -> None:
        if load_key(tmp, again).seed != signer.seed:
            raise KeyFileError(f"the new key file for {info.name} did not open: nothing changed")

    _write_atomically(path, data, check=opens)
    return KeyInfo(info.agent, info.name, new is not None)


def read_key_info(path: Path) -> KeyInfo:
    """The agent, name and encryption of a key file, without its passphrase."""
    document = _read_document(Path(path))
    return _info(Path(path), document)


def load_key(path: Path, passphrase_source: PassphraseSource | None = None) -> Signer:
    """The agent's ``Signer`` from its key file; asks ``passphrase_source`` only if encrypted.

    The KDF parameters are checked against ``MAX_OPSLIMIT``/``MAX_MEMLIMIT``
    before any passphrase is asked for or any work is done.
    """
    path = Path(path)
    _check_mode(path)
    document = _read_document(path)
    info = _info(path, document)
    if info.encrypted:
        kdf = _field(path, document, "kdf", dict)
        if kdf.get("name") != _KDF or document.get("cipher") != _CIPHER:
            raise KeyFileError(f"key file {path} uses an unknown kdf or cipher")
        opslimit = _field(path, kdf, "opslimit", int)
        memlimit = _field(path, kdf, "memlimit", int)
        _check_kdf(opslimit, memlimit, f"key file {path}")
        salt = _unb64(path, _field(path, kdf, "salt", str), "salt")
        if len(salt) != argon2id.SALTBYTES:
            raise KeyFileError(f"key file {path} is damaged: the salt is the wrong size")
        sealed = _unb64(path, _field(path, document, "box", str), "box")
        source = passphrase_source if passphrase_source is not None else PassphraseSource()
        passphrase = source.passphrase(info.name)
        box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
        try:
            seed = box.decrypt(sealed)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            # a wrong passphrase and a damaged box look the same to an AEAD
            raise KeyFileError(f"wrong passphrase for agent {info.name}") from exc
    else:
        seed = _unb64(path, _field(path, document, "seed", str), "seed")
    if len(seed) != SEED_SIZE:
        raise KeyFileError(f"key file {path} is damaged: the secret key is the wrong size")
    signer = Signer(bytes(seed))
    if AgentKey(signer.public_key) != info.agent:
        raise KeyFileError(f"key file {path} is damaged: its secret key is not agent {info.agent}")
    return signer


def _document_bytes(
    signer: Signer, name: str, passphrase: bytes | None, opslimit: int, memlimit: int
) -> bytes:
    """The JSON of a key file for ``signer`` (a fresh salt and nonce each time)."""
    document: dict[str, Any] = {
        "format": KEY_FILE_FORMAT,
        "version": KEY_FILE_VERSION,
        "agent": str(AgentKey(signer.public_key)),
        "name": check_agent_name(name),
    }
    if passphrase is None:
        document |= {
            "encrypted": False,
            "warning": _UNENCRYPTED_WARNING,
            "kdf": None,
            "cipher": None,
            "seed": _b64(signer.seed),
        }
    else:
        check_new_passphrase(passphrase)
        _check_kdf(opslimit, memlimit, "the requested key derivation")
        salt = nacl.utils.random(argon2id.SALTBYTES)
        box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
        try:
            sealed = bytes(box.encrypt(signer.seed))  # a fresh random nonce, then the ciphertext
        except nacl.exceptions.CryptoError as exc:
            raise KeyFileError(f"cannot encrypt the key: {exc}") from exc
        document |= {
            "encrypted": True,
            "kdf": {"name": _KDF, "opslimit": opslimit, "memlimit": memlimit, "salt": _b64(salt)},
            "cipher": _CIPHER,
            "box": _b64(sealed),
        }
    return (json.dumps(document, indent=2) + "\n").encode()


def _check_kdf(opslimit: int, memlimit: int, what: str) -> None:
    """Refuse KDF parameters libsodium cannot run, or more work than a node will do."""
    if not argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT:
        raise KeyFileError(
            f"{what} asks for opslimit {opslimit}: this conode accepts "
            f"{argon2id.OPSLIMIT_MIN} to {MAX_OPSLIMIT}"
        )
    if not argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT:
        raise KeyFileError(
            f"{what} asks for memlimit {memlimit} bytes: this conode accepts "
            f"{argon2id.MEMLIMIT_MIN} to {MAX_MEMLIMIT} ({MAX_MEMLIMIT >> 20} MiB)"
        )


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    try:
        key: bytes = argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError, MemoryError) as exc:
        raise KeyFileError(f"cannot derive the key from the passphrase: {exc}") from exc
    return key


def _write_atomically(path: Path, data: bytes, check: Callable[[Path], None] | None = None) -> None:
    """Write ``data`` beside ``path`` (0600), fsync, ``check`` the new file, then rename it over
    ``path`` (``conode.atomicfile``)."""
    directory = path.parent
    try:
        write_atomically(path, data, mode=0o600, check=check)
    except CannotCreate as exc:
        raise KeyFileError(f"cannot create key file in {directory}: {_os_reason(exc)}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {_os_reason(exc)}") from exc
    fsync_directory(directory)


def _check_mode(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean little there; the user profile's ACLs protect it
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file {path}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {_os_reason(exc)}") from exc
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by group or others (mode {mode:04o}); "
            f"fix it with: chmod 600 {path}"
        )


def _read_document(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_FILE_SIZE + 1)
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file {path}") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {_os_reason(exc)}") from exc
    if len(data) > _MAX_FILE_SIZE:
        raise KeyFileError(f"{path} is too large to be a key file")
    try:
        document = boundedjson.loads(data)  # nesting bounded: never RecursionError
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path} is not a key file (not JSON)") from exc
    if type(document) is not dict or document.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(f"{path} is not a conode key file")
    version = document.get("version")
    if version != KEY_FILE_VERSION or type(version) is not int:
        raise KeyFileError(f"key file {path} has unsupported version {version!r}")
    return document


def _info(path: Path, document: dict[str, Any]) -> KeyInfo:
    try:
        agent = AgentKey.parse(_field(path, document, "agent", str))
    except EncodingError as exc:
        raise KeyFileError(f"key file {path} is damaged: {exc}") from exc
    name = _field(path, document, "name", str)
    encrypted = _field(path, document, "encrypted", bool)
    return KeyInfo(agent, name, encrypted)


def _field(path: Path, document: dict[str, Any], key: str, kind: type[_T]) -> _T:
    value = document.get(key)
    if type(value) is not kind:
        raise KeyFileError(f"key file {path} is damaged: {key!r} is missing or not {kind.__name__}")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(path: Path, text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"key file {path} is damaged: the {what} is not base64") from exc


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)

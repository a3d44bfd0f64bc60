"""The data directory: where it is, its layout, and its small config file.

Layout (paths in the config are relative to the data dir)::

    DIR/config.toml   written by ``conode init``; read with tomllib
    DIR/conode.db     the store
    DIR/keys/         one key file per local agent (mode 0700)

The directory is ``--data-dir``, else ``$CONODE_DATA_DIR``, else the
platform's user data dir (``platformdirs.user_data_dir("conode")``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import platformdirs

from conode.errors import ConodeError
from conode.store import Store

__all__ = [
    "CONFIG_VERSION",
    "DATA_DIR_ENV",
    "CommandError",
    "Config",
    "DataDir",
    "default_data_dir",
    "dump_toml",
]

DATA_DIR_ENV: Final = "CONODE_DATA_DIR"
CONFIG_VERSION: Final = 1
_CONFIG_NAME: Final = "config.toml"
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


class CommandError(ConodeError):
    """A command cannot do what was asked (no such agent, not initialised, bad input)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The settings in ``config.toml``; paths relative to the data dir."""

    store: str = "conode.db"
    keys_dir: str = "keys"

    def as_toml_values(self) -> dict[str, str | int | bool]:
        """The keys and values ``dump_toml`` writes."""
        return {"config_version": CONFIG_VERSION, "store": self.store, "keys_dir": self.keys_dir}


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$CONODE_DATA_DIR`` if set, else the platform's user data dir for conode."""
    env = os.environ if environ is None else environ
    chosen = env.get(DATA_DIR_ENV)
    return Path(chosen) if chosen else Path(platformdirs.user_data_dir("conode"))


@dataclass(frozen=True, slots=True)
class DataDir:
    """One node's data directory."""

    root: Path

    @property
    def config_path(self) -> Path:
        """``DIR/config.toml``."""
        return self.root / _CONFIG_NAME

    def exists(self) -> bool:
        """True once ``conode init`` has written the config."""
        return self.config_path.is_file()

    def config(self) -> Config:
        """The config; ``CommandError`` if the dir is not initialised or the file is bad."""
        if not self.exists():
            raise CommandError(
                f"no conode data dir at {self.root}: run `conode init` (or pass --data-dir)"
            )
        try:
            with open(self.config_path, "rb") as file:
                values = tomllib.load(file)
        except tomllib.TOMLDecodeError as exc:
            raise CommandError(f"{self.config_path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {self.config_path}: {exc.strerror or exc}") from exc
        version = values.get("config_version")
        if version != CONFIG_VERSION:
            raise CommandError(f"{self.config_path}: unsupported config_version {version!r}")
        defaults = Config()
        store = values.get("store", defaults.store)
        keys_dir = values.get("keys_dir", defaults.keys_dir)
        if type(store) is not str or type(keys_dir) is not str:
            raise CommandError(f"{self.config_path}: store and keys_dir must be strings")
        return Config(store=store, keys_dir=keys_dir)

    @property
    def store_path(self) -> Path:
        """The store file named by the config."""
        return self.root / self.config().store

    @property
    def keys_dir(self) -> Path:
        """The key directory named by the config."""
        return self.root / self.config().keys_dir

    def open_store(self) -> Store:
        """Open the store (the data dir must be initialised)."""
        return Store.open(self.store_path)

    def init(self) -> bool:
        """Create the dir, config, keys dir and store, keeping what exists; True if newly made."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create {self.root}: {exc.strerror or exc}") from exc
        created = not self.exists()
        if created:
            _write_text_atomically(self.config_path, _config_text(Config()))
        config = self.config()
        keys_dir = self.root / config.keys_dir
        try:
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create {keys_dir}: {exc.strerror or exc}") from exc
        Store.open(self.root / config.store).close()
        return created

    def keys_dir_warning(self) -> str | None:
        """A warning if others may list or open the key directory."""
        if os.name == "nt":
            return None
        try:
            mode = stat.S_IMODE(self.keys_dir.stat().st_mode)
        except OSError:
            return None
        if mode & 0o077:
            return (
                f"the key directory {self.keys_dir} is open to group or others "
                f"(mode {mode:04o}); fix it with: chmod 700 {self.keys_dir}"
            )
        return None


def dump_toml(values: Mapping[str, str | int | bool], comment: str = "") -> str:
    """A flat TOML document of bare keys and string/int/bool values (all our config needs)."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    for key, value in values.items():
        if _BARE_KEY.fullmatch(key) is None:
            raise ValueError(f"{key!r} is not a bare TOML key")
        if type(value) is bool:
            text = "true" if value else "false"
        elif type(value) is int:
            text = str(value)
        elif type(value) is str:
            text = json.dumps(value)  # a JSON string (ASCII, \uXXXX escapes) is a TOML basic string
        else:
            raise TypeError(f"cannot write {type(value).__name__} to TOML")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _config_text(config: Config) -> str:
    return dump_toml(
        config.as_toml_values(),
        comment="conode configuration, written by `conode init`.\n"
        "Paths are relative to this directory.",
    )


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc

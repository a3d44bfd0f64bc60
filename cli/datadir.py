"""The data directory: where it is, its layout, and its small config file.

Layout (paths in the config are relative to the data dir)::

    DIR/config.toml   written by ``conode init``; read with tomllib
    DIR/conode.db     the store
    DIR/keys/         one key file per local agent (mode 0700)
    DIR/charter.cbor  the network's charter (canonical bytes), from ``conode init --charter``
    DIR/node.key      the node's own 32-byte secret seed (its libp2p identity), mode 0600
    DIR/conode.sock   the running node's API socket (``conode run``)
    DIR/ready         written by a running node once it listens: its addresses, one a line
    DIR/lock          held (flock) by the one process that owns the dir (``cli.dirlock``)
    DIR/restored      left by ``conode restore``: the next start catches up before hosting

The directory is ``--data-dir``, else ``$CONODE_DATA_DIR``, else the
platform's user data dir (``platformdirs.user_data_dir("conode")``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import platformdirs

from cli.dirlock import DataDirLock
from conode.atomicfile import write_atomically
from conode.crypto import SEED_SIZE
from conode.dht.addresses import announce_error
from conode.errors import ConodeError, EncodingError
from conode.store import NodeStore, Store
from conode.validation.charter import Charter

__all__ = [
    "CONFIG_VERSION",
    "DATA_DIR_ENV",
    "DEFAULT_LISTEN",
    "DEFAULT_WEB_LISTEN",
    "CommandError",
    "Config",
    "DataDir",
    "decode_charter",
    "default_data_dir",
    "dump_toml",
    "make_empty_dir",
    "read_charter",
    "read_toml",
    "write_bytes_atomically",
]

DATA_DIR_ENV: Final = "CONODE_DATA_DIR"
CONFIG_VERSION: Final = 1
_CONFIG_NAME: Final = "config.toml"
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
DEFAULT_LISTEN: Final = "/ip4/0.0.0.0/tcp/7447"
"""Where a node listens unless told otherwise: every IPv4 interface, TCP port 7447."""
DEFAULT_WEB_LISTEN: Final = "127.0.0.1:7448"
"""Where the members' web page listens unless told otherwise: loopback only."""
_WEB_STRINGS: Final = ("web_listen", "web_tls_cert", "web_tls_key")
_SOCKET_NAME: Final = "conode.sock"
_READY_NAME: Final = "ready"
_RESTORED_NAME: Final = "restored"
_TIMINGS: Final = (
    "gossip_interval_ms", "publish_interval_ms", "hello_interval_ms", "links_fresh_ms",
    "reconcile_interval_ms", "clock_offset_ms",
)  # fmt: skip


class CommandError(ConodeError):
    """A command cannot do what was asked (no such agent, not initialised, bad input)."""


TomlValue = str | int | bool | list[str]


@dataclass(frozen=True, slots=True)
class Config:
    """The settings in ``config.toml``; paths relative to the data dir.

    ``listen`` and ``bootstrap`` are libp2p multiaddrs (``conode init``
    ``--listen``/``--bootstrap``); ``announce`` (``--announce``), if set, the
    addresses the node advertises instead of its interfaces' (a public
    address, a port forward); the ``*_interval_ms`` timings are optional
    (0: the node's default) and exist mostly for test networks.
    ``links_fresh_ms`` is how long a link index (an exchange category, say)
    that a peer answered for is not asked about again (default 30 s): longer
    saves requests, shorter shows offers posted elsewhere sooner.
    ``memory_mb`` is the node's memory budget (0: none; ``conode.memguard``).
    ``clock_offset_ms`` is for test networks only: the node's clock runs that
    far ahead of the machine's (``conode devnet --scenario full`` uses it to
    reach the end of a month, for the exchange's monthly re-estimation).
    ``reconcile_interval_ms`` is how often the node reconciles its arc with
    its neighbours' (default 60 s); ``full_arc`` makes it hold everything (an
    auditor's node, ``conode run --full-arc``).
    """

    store: str = "conode.db"
    keys_dir: str = "keys"
    charter: str = "charter.cbor"
    node_key: str = "node.key"
    listen: str = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    announce: tuple[str, ...] = ()
    gossip_interval_ms: int = 0
    publish_interval_ms: int = 0
    hello_interval_ms: int = 0
    links_fresh_ms: int = 0
    reconcile_interval_ms: int = 0
    clock_offset_ms: int = 0
    memory_mb: int = 0
    web_listen: str = DEFAULT_WEB_LISTEN
    """The members' web page: ``HOST:PORT`` (``conode run --no-web`` turns it off)."""
    web_tls_cert: str = ""
    web_tls_key: str = ""
    """PEM files (relative to the data dir) to serve the page over TLS; empty: plain HTTP."""
    full_arc: bool = False

    def as_toml_values(self) -> dict[str, TomlValue]:
        """The keys and values ``dump_toml`` writes."""
        values: dict[str, TomlValue] = {
            "config_version": CONFIG_VERSION,
            "store": self.store,
            "keys_dir": self.keys_dir,
            "charter": self.charter,
            "node_key": self.node_key,
            "listen": self.listen,
            "bootstrap": list(self.bootstrap),
        }
        if self.announce:
            values["announce"] = list(self.announce)
        for name in _TIMINGS:
            if getattr(self, name):
                values[name] = getattr(self, name)
        if self.memory_mb:
            values["memory_mb"] = self.memory_mb
        if self.web_listen != DEFAULT_WEB_LISTEN:
            values["web_listen"] = self.web_listen
        for name in ("web_tls_cert", "web_tls_key"):
            if getattr(self, name):
                values[name] = getattr(self, name)
        if self.full_arc:
            values["full_arc"] = True
        return values


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
        values = read_toml(self.config_path)
        version = values.get("config_version")
        if version != CONFIG_VERSION:
            raise CommandError(f"{self.config_path}: unsupported config_version {version!r}")
        defaults = Config()
        strings = {}
        for name in ("store", "keys_dir", "charter", "node_key", "listen"):
            value = values.get(name, getattr(defaults, name))
            if type(value) is not str or not value:
                raise CommandError(f"{self.config_path}: {name} must be a non-empty string")
            strings[name] = value
        bootstrap = values.get("bootstrap", [])
        if type(bootstrap) is not list or any(type(a) is not str for a in bootstrap):
            raise CommandError(f"{self.config_path}: bootstrap must be a list of multiaddrs")
        web = {}
        for name in _WEB_STRINGS:
            value = values.get(name, getattr(defaults, name))
            if type(value) is not str or (name == "web_listen" and not value):
                raise CommandError(f"{self.config_path}: {name} must be a string")
            web[name] = value
        announce = values.get("announce", [])
        if type(announce) is not list or any(type(a) is not str for a in announce):
            raise CommandError(f"{self.config_path}: announce must be a list of multiaddrs")
        for addr in announce:
            error = announce_error(addr)
            if error is not None:
                raise CommandError(f"{self.config_path}: announce: {error}")
        full_arc = values.get("full_arc", False)
        if type(full_arc) is not bool:
            raise CommandError(f"{self.config_path}: full_arc must be true or false")
        timings = {}
        for name in _TIMINGS:
            value = values.get(name, 0)
            if type(value) is not int or value < 0:
                raise CommandError(f"{self.config_path}: {name} must be a whole number of ms")
            timings[name] = value
        memory_mb = values.get("memory_mb", 0)
        if type(memory_mb) is not int or memory_mb < 0:
            raise CommandError(f"{self.config_path}: memory_mb must be a whole number of MB")
        return Config(
            store=strings["store"],
            keys_dir=strings["keys_dir"],
            charter=strings["charter"],
            node_key=strings["node_key"],
            listen=strings["listen"],
            bootstrap=tuple(bootstrap),
            announce=tuple(announce),
            gossip_interval_ms=timings["gossip_interval_ms"],
            publish_interval_ms=timings["publish_interval_ms"],
            hello_interval_ms=timings["hello_interval_ms"],
            links_fresh_ms=timings["links_fresh_ms"],
            reconcile_interval_ms=timings["reconcile_interval_ms"],
            clock_offset_ms=timings["clock_offset_ms"],
            memory_mb=memory_mb,
            web_listen=web["web_listen"],
            web_tls_cert=web["web_tls_cert"],
            web_tls_key=web["web_tls_key"],
            full_arc=full_arc,
        )

    def write_config(self, config: Config) -> None:
        """Replace ``config.toml`` (atomically)."""
        _write_text_atomically(self.config_path, _config_text(config))

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

    def open_node_store(self) -> NodeStore:
        """Open the store as the node sees it (a validation context, with the DHT tables)."""
        return NodeStore.open(self.store_path)

    # -- the network: charter, node key, socket -------------------------------------------

    @property
    def charter_path(self) -> Path:
        """``DIR/charter.cbor`` (as named by the config)."""
        return self.root / self.config().charter

    def has_charter(self) -> bool:
        """True once ``conode init --charter`` copied a charter here."""
        return self.exists() and self.charter_path.is_file()

    def charter(self) -> Charter:
        """The network's charter; ``CommandError`` if there is none or it is damaged."""
        if not self.has_charter():
            raise CommandError(
                f"the data dir {self.root} has no charter: run `conode init --charter FILE`"
            )
        return read_charter(self.charter_path)

    def install_charter(self, data: bytes) -> bool:
        """Copy a charter's bytes here; True if new, False if the same one was already here."""
        charter = decode_charter(data, "the charter")
        path = self.charter_path
        if path.exists():
            held = read_charter(path)
            if held.to_bytes() == charter.to_bytes():
                return False
            raise CommandError(
                f"{self.root} already belongs to network {held.network_id} ({held.name}); "
                "a data dir serves one network: use another --data-dir"
            )
        write_bytes_atomically(path, charter.to_bytes())
        return True

    @property
    def node_key_path(self) -> Path:
        """``DIR/node.key``: the node's 32-byte seed."""
        return self.root / self.config().node_key

    def ensure_node_key(self, seed: bytes | None = None) -> bool:
        """Create the node key (random, or ``seed``) if it is missing; True if created.

        The file is born mode 0600 under a temporary name and linked into
        place, so it is never seen half-written and never overwritten.
        """
        path = self.node_key_path
        if path.exists():
            self.node_seed()  # a damaged or exposed key is reported now, not at `conode run`
            return False
        data = secrets.token_bytes(SEED_SIZE) if seed is None else seed
        if len(data) != SEED_SIZE:
            raise ValueError(f"a node key is {SEED_SIZE} bytes")
        _create_exclusive(path, data)
        return True

    def node_seed(self) -> bytes:
        """The node's seed; ``CommandError`` if missing, damaged, or readable by others."""
        path = self.node_key_path
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise CommandError(f"no node key {path}: run `conode init`") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if os.name != "nt" and mode & 0o077:
            raise CommandError(
                f"the node key {path} is readable by group or others (mode {mode:04o}); "
                f"fix it with: chmod 600 {path}"
            )
        if len(data) != SEED_SIZE:
            raise CommandError(f"the node key {path} is damaged: it is not {SEED_SIZE} bytes")
        return data

    @property
    def socket_path(self) -> Path:
        """``DIR/conode.sock``: the running node's API."""
        return self.root / _SOCKET_NAME

    @property
    def ready_path(self) -> Path:
        """``DIR/ready``: the running node's listen addresses, once it listens."""
        return self.root / _READY_NAME

    @property
    def restored_path(self) -> Path:
        """``DIR/restored``: present from ``conode restore`` until the node has caught up."""
        return self.root / _RESTORED_NAME

    def lock(self, purpose: str) -> DataDirLock:
        """The dir's exclusive lock (a context manager); ``purpose`` names the holder to others."""
        return DataDirLock(self.root, purpose)

    def init(self, node_seed: bytes | None = None) -> bool:
        """Create the dir, config, keys dir, store and node key, keeping what exists; True if newly made.

        ``node_seed`` is for test networks that want the same node identity each run.
        """
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
        self.ensure_node_key(node_seed)
        return created

    def check_keys_dir(self) -> None:
        """Refuse a key directory that group or others may use (``conode run`` checks it).

        Others who may write there could put a key of their own in an agent's
        place; others who may list it learn whom the node hosts.
        """
        warning = self.keys_dir_warning()
        if warning is not None:
            raise CommandError(f"{warning}; the node does not start until it is private")

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


def dump_toml(values: Mapping[str, TomlValue], comment: str = "") -> str:
    """A flat TOML document of bare keys and string/int/bool/string-list values (all our config needs)."""
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
        elif type(value) is list and all(type(item) is str for item in value):
            text = "[" + ", ".join(json.dumps(item) for item in value) + "]"
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
    write_bytes_atomically(path, text.encode("utf-8"))


def read_charter(path: Path) -> Charter:
    """A charter file (canonical CBOR); ``CommandError`` naming the problem if it is not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CommandError(f"no charter file {path}") from exc
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_charter(data, str(path))


def decode_charter(data: bytes, what: str) -> Charter:
    """A charter from its canonical bytes; ``CommandError`` if they are not exactly that."""
    try:
        charter = Charter.from_bytes(data)
    except (EncodingError, ValueError, TypeError, KeyError) as exc:
        # SchemaError is a ValueError: a bad field, a share over 50 %, no founding co-op, ...
        raise CommandError(f"{what} is not a valid conode charter: {exc}") from exc
    if charter.to_bytes() != data:
        raise CommandError(f"{what} is not a valid conode charter: not in canonical form")
    return charter


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's values; ``CommandError`` in one line if it cannot be read, is not UTF-8
    (as TOML must be) or is not valid TOML (nested too deep included)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CommandError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): "
            "TOML files are UTF-8; save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"{path} is not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise CommandError(f"{path} is not valid TOML: its values are nested too deep") from None


def make_empty_dir(directory: Path, option: str) -> None:
    """Create ``directory`` (given with ``option``) if it is new; ``CommandError`` if it holds
    anything or cannot be made."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise CommandError(f"{option} {directory}: the directory must be new or empty")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {directory}: {exc.strerror or exc}") from exc


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` via a temporary file, fsync and rename (replacing it)."""
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _create_exclusive(path: Path, data: bytes) -> None:
    """Write a new secret file: mode 0600 from birth, complete before it has its name, never replacing one."""
    try:
        write_atomically(path, data, mode=0o600, replace=False)
    except FileExistsError as exc:
        raise CommandError(f"{path} already exists; it is never overwritten") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from exc

"""``conode backup FILE`` and ``conode restore FILE``: a whole data dir in one file, and back.

The backup file is a gzip-compressed POSIX tar (``.tar.gz``), mode 0600::

    conode-backup.json  the manifest (first): format, version, when, the network,
                        the node's peer id, the agents, and each file's size and SHA-256
    config.toml         the node's settings, as they were
    charter.cbor        the network's charter (if the dir has one)
    node.key            the node's 32-byte seed: NOT encrypted, as in the data dir
    keys/NAME.key       every agent key file exactly as it is: an encrypted key stays
                        encrypted under its passphrase (which is not in the backup)
    store.db            a consistent copy of the store (``conode.store.snapshot``),
                        taken while the node runs if it runs

``restore`` reads only those names (regular files, no links, nothing outside
the dir), checks every size and hash against the manifest, the charter, the
node key, each key file and the store copy, builds the new dir beside the
target and renames it into place: a damaged or hostile file leaves nothing
behind. It never replaces a data dir that holds anything, unless forced,
and then the old one is kept beside it, renamed. The restored dir has the
standard layout (the config's paths are reset to their defaults) and a
``restored`` mark, so that its first start catches its chains up from the
peers before it hosts anyone (``cli.runner``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Final

from cli import network
from cli.datadir import CommandError, Config, DataDir, decode_charter
from conode import __version__
from conode.atomicfile import fsync_directory
from conode.errors import ConodeError
from conode.keyfile import KEY_FILE_SUFFIX, check_agent_name, list_keys, read_key_info
from conode.store.snapshot import SnapshotInfo, check_snapshot, snapshot

__all__ = ["BACKUP_FORMAT", "BACKUP_VERSION", "Backup", "restore", "write_backup"]

BACKUP_FORMAT: Final = "conode-backup"
BACKUP_VERSION: Final = 1
_MANIFEST: Final = "conode-backup.json"
_CONFIG: Final = "config.toml"
_CHARTER: Final = "charter.cbor"
_NODE_KEY: Final = "node.key"
_STORE: Final = "store.db"
_KEYS: Final = "keys/"
_MAX_MANIFEST: Final = 1 << 20
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Backup:
    """What a backup file holds (its manifest), and where it is."""

    path: Path
    manifest: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The manifest, with the file's name and size."""
        return {"file": str(self.path), "bytes": self.path.stat().st_size, **self.manifest}


# -- backup ---------------------------------------------------------------------------------


def write_backup(data: DataDir, out: Path, *, now_us: int) -> Backup:
    """Write a backup of ``data`` to the new file ``out`` (atomically, mode 0600)."""
    data.config()  # "run `conode init`" first
    if out.exists():
        raise CommandError(f"{out} already exists: a backup never replaces a file")
    work = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    store_copy = work.with_suffix(".db")
    files: list[tuple[str, Path]] = [(_CONFIG, data.config_path), (_NODE_KEY, data.node_key_path)]
    data.node_seed()  # refuses a damaged or exposed node key now
    if data.has_charter():
        files.append((_CHARTER, data.charter_path))
    keys = list_keys(data.keys_dir)
    files += [(f"{_KEYS}{info.name}{KEY_FILE_SUFFIX}", path) for path, info in keys]
    try:
        store = snapshot(data.store_path, store_copy)
        files.append((_STORE, store_copy))
        charter = data.charter() if data.has_charter() else None
        manifest = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "created_us": now_us,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_us / 1e6)),
            "conode": __version__,
            "data_dir": str(data.root),
            "network": None if charter is None else str(charter.network_id),
            "peer_id": network.peer_id_of(data.node_seed()),
            "agents": [
                {"name": info.name, "agent": str(info.agent), "encrypted": info.encrypted}
                for _path, info in keys
            ],
            "store": {"records": store.records, "schema_version": store.schema_version},
            "files": [_describe(name, path) for name, path in files],
        }
        _write_tar(work, manifest, files)
        os.replace(work, out)
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        for leftover in (work, store_copy):
            with contextlib.suppress(OSError):
                leftover.unlink()
    fsync_directory(out.parent)
    return Backup(out, manifest)


def _describe(name: str, path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"name": name, "bytes": size, "sha256": digest.hexdigest()}


def _write_tar(work: Path, manifest: dict[str, Any], files: list[tuple[str, Path]]) -> None:
    fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    created = manifest["created_us"]
    with os.fdopen(fd, "wb") as raw:
        with (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            body = (json.dumps(manifest, indent=2) + "\n").encode()
            tar.addfile(_member(_MANIFEST, len(body), created), io.BytesIO(body))
            for (name, path), described in zip(files, manifest["files"], strict=True):
                with open(path, "rb") as file:
                    tar.addfile(_member(name, described["bytes"], created), file)
        raw.flush()
        os.fsync(raw.fileno())


def _member(name: str, size: int, created_us: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = created_us // 1_000_000
    return info


# -- restore --------------------------------------------------------------------------------


def restore(backup: Path, data: DataDir, *, force: bool) -> tuple[Backup, Path | None]:
    """Make ``data`` from the backup file; (the backup, where the replaced dir was kept, if any)."""
    target = data.root
    replaced = _check_target(target, force)
    stage = target.with_name(f".{target.name}.restore-{secrets.token_hex(4)}")
    try:
        stage.mkdir(mode=0o700, parents=True)
        manifest = _extract(backup, stage)
        _check_restored(DataDir(stage), manifest)
        DataDir(stage).restored_path.write_text(f"restored from {backup}\n")
        if replaced is not None:
            with data.lock("conode restore"):
                target.rename(replaced)
        elif target.exists():
            target.rmdir()  # empty (checked above)
        stage.rename(target)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError):
            raise CommandError(f"cannot restore {target}: {exc.strerror or exc}") from exc
        raise
    fsync_directory(target.parent)
    return Backup(backup, manifest), replaced


def _check_target(target: Path, force: bool) -> Path | None:
    """None if ``target`` is free; where it will be kept if ``force``; else ``CommandError``."""
    if not target.exists():
        return None
    if not target.is_dir():
        raise CommandError(f"{target} exists and is not a directory")
    if not any(target.iterdir()):
        return None
    if not force:
        raise CommandError(
            f"{target} is not empty: restore never overwrites a data dir; choose a new "
            "--data-dir, or pass --force to restore anyway (the old dir is kept, renamed)"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return target.with_name(f"{target.name}.before-restore-{stamp}")


@contextlib.contextmanager
def _open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            yield tar
    except FileNotFoundError as exc:
        raise CommandError(f"no backup file {path}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        # gzip.BadGzipFile is an OSError: a truncated or foreign file
        raise CommandError(f"{path} is not a readable conode backup: {exc}") from exc


def _manifest(path: Path, tar: tarfile.TarFile) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != _MANIFEST or not first.isfile():
        raise CommandError(f"{path} is not a conode backup (no {_MANIFEST} first)")
    if first.size > _MAX_MANIFEST:
        raise CommandError(f"{path}: the manifest is too large")
    stream = tar.extractfile(first)
    assert stream is not None  # a regular file
    try:
        manifest = json.loads(stream.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: the manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise CommandError(f"{path} is not a conode backup")
    if manifest.get("version") != BACKUP_VERSION:
        raise CommandError(
            f"{path} is a conode backup of version {manifest.get('version')!r}; "
            f"this conode reads version {BACKUP_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict)
        and isinstance(f.get("name"), str)
        and type(f.get("bytes")) is int
        and isinstance(f.get("sha256"), str)
        for f in files
    ):
        raise CommandError(f"{path}: the manifest's file list is damaged")
    return manifest


def _extract(backup: Path, stage: Path) -> dict[str, Any]:
    """Every file of the backup into ``stage`` (standard layout), each checked against the manifest."""
    with _open_tar(backup) as tar:
        manifest = _manifest(backup, tar)
        expected = {f["name"]: f for f in manifest["files"]}
        seen: set[str] = set()
        for member in tar:
            name = member.name
            if name == _MANIFEST and member.offset == 0:
                continue  # read above
            described = expected.get(name)
            if described is None or name in seen or not member.isfile():
                raise CommandError(f"{backup}: unexpected entry {name!r}: not a conode backup")
            if member.size != described["bytes"]:
                raise CommandError(
                    f"{backup}: {name} is {member.size} bytes, not {described['bytes']}"
                )
            seen.add(name)
            stream = tar.extractfile(member)
            assert stream is not None
            _copy_checked(backup, stream, _destination(stage, name), described)
        missing = sorted(set(expected) - seen)
        if missing:
            raise CommandError(f"{backup} is incomplete: {', '.join(missing)} missing")
    for required in (_CONFIG, _NODE_KEY, _STORE):
        if required not in seen:
            raise CommandError(f"{backup} has no {required}: not a whole conode backup")
    return manifest


def _destination(stage: Path, name: str) -> Path:
    if name == _STORE:
        return stage / Config().store
    if name in (_CONFIG, _CHARTER, _NODE_KEY):
        return stage / name
    if name.startswith(_KEYS) and name.endswith(KEY_FILE_SUFFIX):
        agent = name[len(_KEYS) : -len(KEY_FILE_SUFFIX)]
        check_agent_name(agent)  # no '/', no '..': it stays in keys/
        keys = stage / Config().keys_dir
        keys.mkdir(mode=0o700, exist_ok=True)
        return keys / f"{agent}{KEY_FILE_SUFFIX}"
    raise CommandError(f"unexpected entry {name!r}: not a conode backup")


def _copy_checked(backup: Path, stream: IO[bytes], dest: Path, described: dict[str, Any]) -> None:
    """Copy one member to ``dest`` (mode 0600); its SHA-256 must be the manifest's."""
    digest = hashlib.sha256()
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "wb")
    except OSError as exc:
        raise CommandError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    with out:
        while chunk := stream.read(_CHUNK):  # a read error here: the backup is damaged
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as exc:
                raise CommandError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise CommandError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    if digest.hexdigest() != described["sha256"]:
        raise CommandError(f"{backup}: {described['name']} is damaged (its SHA-256 differs)")


def _check_restored(stage: DataDir, manifest: dict[str, Any]) -> SnapshotInfo:
    """The restored files are what they claim; the config gets the standard paths."""
    try:
        config = stage.config()
    except CommandError as exc:
        raise CommandError(f"the backed-up config is not usable: {exc}") from exc
    stage.write_config(
        replace(
            config,
            store=Config().store,
            keys_dir=Config().keys_dir,
            charter=Config().charter,
            node_key=Config().node_key,
        )
    )
    stage.node_seed()  # 32 bytes, mode 0600
    if stage.charter_path.exists():
        charter = decode_charter(stage.charter_path.read_bytes(), "the backed-up charter")
        if str(charter.network_id) != manifest.get("network"):
            raise CommandError("the backed-up charter is not the network the manifest names")
    (stage.root / Config().keys_dir).mkdir(mode=0o700, exist_ok=True)
    agents = {entry.get("agent") for entry in manifest.get("agents", []) if isinstance(entry, dict)}
    try:
        for path, info in list_keys(stage.keys_dir):
            read_key_info(path)
            if str(info.agent) not in agents:
                raise CommandError(f"the backed-up key file {path.name} is not in the manifest")
        return check_snapshot(stage.store_path)
    except CommandError:
        raise
    except ConodeError as exc:
        raise CommandError(f"the backup is damaged: {exc}") from exc


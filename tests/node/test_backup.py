"""``conode backup`` and ``conode restore`` on real data dirs (the node stopped; running: see
``tests/network/test_operator_processes.py``), and hostile backup files."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from test_cli import PASSPHRASE, error_line, run

from conode.store.snapshot import check_snapshot

ENV = {"CONODE_PASSPHRASE": PASSPHRASE}


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A data dir with an encrypted agent (alice), an unencrypted one (bob) and a few records."""
    root = tmp_path / "node"
    run(root, "init")
    run(root, "agent", "new", "alice", "--standalone", env=ENV)
    run(root, "agent", "new", "bob", "--standalone", "--no-passphrase")
    for text in ("one", "two", "three"):
        run(
            root,
            "chain",
            "add",
            "alice",
            "--type",
            "note",
            "--data",
            json.dumps({"t": text}),
            env=ENV,
        )
    return root


def _members(backup: Path) -> dict[str, bytes]:
    with tarfile.open(backup, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_a_backup_holds_the_store_keys_and_config_and_keys_stay_encrypted(
    node: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "node.tar.gz"
    made = json.loads(run(node, "backup", str(backup), "--json").stdout)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert made["format"] == "conode-backup" and made["version"] == 1
    assert made["bytes"] == backup.stat().st_size
    assert {(a["name"], a["encrypted"]) for a in made["agents"]} == {
        ("alice", True),
        ("bob", False),
    }
    assert made["store"]["records"] == 2 + 3  # two geneses, three notes
    members = _members(backup)
    assert next(iter(members)) == "conode-backup.json"
    assert set(members) == {
        "conode-backup.json", "config.toml", "node.key", "keys/alice.key", "keys/bob.key", "store.db",
    }  # fmt: skip
    assert members["keys/alice.key"] == (node / "keys" / "alice.key").read_bytes()
    assert json.loads(members["keys/alice.key"])["encrypted"] is True
    assert all(PASSPHRASE.encode() not in data for data in members.values())
    assert members["node.key"] == (node / "node.key").read_bytes()
    listed = {f["name"]: f["bytes"] for f in made["files"]}
    assert listed == {
        name: len(data) for name, data in members.items() if name != "conode-backup.json"
    }
    # the text form says what is in it, and what is not encrypted
    text = run(node, "backup", str(tmp_path / "again.tar.gz"))
    assert "the store as of" in text.stdout and "5 records" in text.stdout
    assert "UNENCRYPTED in the backup: bob" in text.stderr
    assert "already exists" in error_line(run(node, "backup", str(backup), expect=1))


def test_restore_into_a_fresh_dir_gives_back_the_same_node(node: Path, tmp_path: Path) -> None:
    backup = tmp_path / "node.tar.gz"
    run(node, "backup", str(backup))
    fresh = tmp_path / "elsewhere" / "node"
    restored = json.loads(run(fresh, "restore", str(backup), "--json").stdout)
    assert restored["data_dir"] == str(fresh) and restored["replaced_dir_kept_at"] is None
    for name in ("node.key", "keys/alice.key", "keys/bob.key"):
        assert (fresh / name).read_bytes() == (node / name).read_bytes(), name
        assert stat.S_IMODE((fresh / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((fresh / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert (fresh / "restored").is_file()  # the next start catches up first
    for agent in ("alice", "bob"):
        shown = [run(d, "chain", "show", agent, "--json").stdout for d in (node, fresh)]
        assert shown[0] == shown[1]
    assert run(fresh, "chain", "verify", "alice").returncode == 0
    run(fresh, "chain", "add", "alice", "--type", "note", "--data", "{}", env=ENV)  # keys open
    assert [p.name for p in fresh.parent.iterdir()] == ["node"]  # no staging dir left


def test_restore_never_replaces_a_data_dir_unless_forced_and_then_keeps_it(
    node: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "node.tar.gz"
    run(node, "backup", str(backup))
    other = tmp_path / "other"
    run(other, "init")
    before = sorted(p.name for p in other.iterdir())
    refused = error_line(run(other, "restore", str(backup), expect=1))
    assert "is not empty: restore never overwrites a data dir" in refused
    assert sorted(p.name for p in other.iterdir()) == before
    forced = json.loads(run(other, "restore", str(backup), "--force", "--json").stdout)
    kept = Path(forced["replaced_dir_kept_at"])
    assert kept.name.startswith("other.before-restore-")
    assert sorted(p.name for p in kept.iterdir() if p.name != "lock") == before
    assert (other / "keys" / "alice.key").read_bytes() == (node / "keys" / "alice.key").read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    run(empty, "restore", str(backup))  # an empty dir is as good as none


def _rewrite(
    backup: Path, out: Path, change: dict[str, bytes | None], extra: list[tarfile.TarInfo] = ()
) -> None:  # type: ignore[assignment]
    """``backup`` with some members changed (None: dropped) and ``extra`` entries added."""
    with tarfile.open(backup, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]  # type: ignore[assignment]
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
        for info in extra:
            target.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        "store-byte",
        "key-byte",
        "dropped-key",
        "escape",
        "absolute",
        "symlink",
        "not-gzip",
        "truncated",
    ],
)
def test_a_damaged_or_hostile_backup_is_refused_in_one_line_and_writes_nothing(
    node: Path, tmp_path: Path, damage: str
) -> None:
    backup = tmp_path / "node.tar.gz"
    run(node, "backup", str(backup))
    members = _members(backup)
    bad = tmp_path / "bad.tar.gz"
    if damage == "store-byte":
        _rewrite(backup, bad, {"store.db": _flip(members["store.db"], 5000)})
    elif damage == "key-byte":
        _rewrite(backup, bad, {"keys/alice.key": _flip(members["keys/alice.key"], 40)})
    elif damage == "dropped-key":
        _rewrite(backup, bad, {"keys/bob.key": None})
    elif damage in ("escape", "absolute"):
        info = tarfile.TarInfo("keys/../../evil.key" if damage == "escape" else "/tmp/evil.key")
        info.size = 1
        _rewrite(backup, bad, {}, [info])
    elif damage == "symlink":
        info = tarfile.TarInfo("keys/carol.key")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        _rewrite(backup, bad, {}, [info])
    elif damage == "not-gzip":
        bad.write_bytes(b"PK\x03\x04 this is a zip, not a conode backup")
    else:
        bad.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    target = tmp_path / "restored"
    result = run(target, "restore", str(bad), expect=1)
    line = error_line(result)
    assert "Traceback" not in result.stderr and line
    assert not target.exists()
    assert not (tmp_path / "evil.key").exists() and not Path("/tmp/evil.key").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "node", "node.tar.gz"]


def test_the_store_copy_is_a_single_checked_sqlite_file(node: Path, tmp_path: Path) -> None:
    backup = tmp_path / "node.tar.gz"
    run(node, "backup", str(backup))
    copy = tmp_path / "store.db"
    copy.write_bytes(_members(backup)["store.db"])
    info = check_snapshot(copy)
    assert info.records == 5 and info.bytes == copy.stat().st_size
    assert copy.read_bytes()[18:20] == b"\x01\x01"  # rollback journal, not WAL: no -wal needed
    with gzip.open(backup) as stream:
        assert stream.read(1)  # a plain gzip stream, readable by any tar
    assert os.path.getsize(backup) < sum(len(d) for d in _members(backup).values())

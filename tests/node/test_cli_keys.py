"""Keys, passphrases and the data dir's lock through the real ``conode`` command (no node runs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_cli import PASSPHRASE, error_line, run

from cli.devnet import prepare
from cli.dirlock import DataDirLock

ENV = {"CONODE_PASSPHRASE": PASSPHRASE}


def _secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    run(root, "init")
    run(root, "agent", "new", "alice", "--standalone", env=ENV)
    return root


def _note(data: Path, env: dict[str, str]) -> int:
    return run(
        data, "chain", "add", "alice", "--type", "note", "--data", "{}", env=env, expect=None
    ).returncode


def test_agent_passphrase_changes_one_key(data: Path, tmp_path: Path) -> None:
    new = _secret(tmp_path / "new", "the brand new passphrase")
    result = run(data, "agent", "passphrase", "alice", "--new-passphrase-file", str(new), env=ENV)
    assert "now has a new passphrase (Argon2id, 3 passes over 128 MiB)" in result.stdout
    assert "needs the new passphrase at its next start" in result.stderr
    assert _note(data, ENV) == 1  # the old one no longer opens it
    assert _note(data, {"CONODE_PASSPHRASE": "the brand new passphrase"}) == 0
    again = json.loads(
        run(
            data, "agent", "passphrase", "alice", "--passphrase-file", str(new),
            "--new-passphrase-file", str(new), "--json",
        ).stdout
    )  # fmt: skip
    assert again["was_encrypted"] is True and again["encrypted"] is True
    assert again["kdf"] == {"name": "argon2id", "opslimit": 3, "memlimit": 128 << 20}
    assert sorted(p.name for p in (data / "keys").iterdir()) == ["alice.key"]


def test_agent_passphrase_refusals_are_one_line_and_change_nothing(
    data: Path, tmp_path: Path
) -> None:
    key = data / "keys" / "alice.key"
    before = key.read_bytes()
    good = _secret(tmp_path / "good", "a good new passphrase")
    change = ["agent", "passphrase", "alice"]
    wrong = run(
        data, *change, "--new-passphrase-file", str(good), env={"CONODE_PASSPHRASE": "x"}, expect=1
    )
    assert error_line(wrong) == "conode: error: wrong passphrase for agent alice"
    short = _secret(tmp_path / "short", "too short")
    too_short = run(data, *change, "--new-passphrase-file", str(short), env=ENV, expect=1)
    assert "at least 12 characters (this one has 9)" in error_line(too_short)
    no_new = run(data, *change, env=ENV, expect=1)
    assert "no new passphrase for agent alice" in error_line(no_new)
    exposed = _secret(tmp_path / "exposed", "a good new passphrase", mode=0o644)
    refused = run(data, *change, "--new-passphrase-file", str(exposed), env=ENV, expect=1)
    assert "is open to group or others (mode 0644); fix it with: chmod 600" in error_line(refused)
    assert "no local agent named 'bob'" in error_line(
        run(data, "agent", "passphrase", "bob", env=ENV, expect=1)
    )
    assert key.read_bytes() == before


def test_a_new_key_needs_a_passphrase_of_twelve_characters(data: Path) -> None:
    refused = run(data, "agent", "new", "carol", env={"CONODE_PASSPHRASE": "eleven char"}, expect=1)
    assert "at least 12 characters (this one has 11)" in error_line(refused)
    assert not (data / "keys" / "carol.key").exists()
    run(data, "agent", "new", "carol", env={"CONODE_PASSPHRASE": "twelve chars"})


def test_commands_read_each_agents_passphrase_from_the_passphrase_dir(
    data: Path, tmp_path: Path
) -> None:
    phrases = tmp_path / "phrases"
    phrases.mkdir(mode=0o700)
    _secret(phrases / "alice", PASSPHRASE)
    _secret(phrases / "dora", "dora's own passphrase")
    run(data, "agent", "new", "dora", "--standalone", "--passphrase-dir", str(phrases))
    for name in ("alice", "dora"):
        add = ["chain", "add", name, "--type", "note", "--data", "{}"]
        run(data, *add, "--passphrase-dir", str(phrases))
        run(data, *add, env={"CONODE_PASSPHRASE_DIR": str(phrases)})
    missing = run(data, "chain", "add", "alice", "--type", "t", "--data", "{}",
                  "--passphrase-dir", str(tmp_path / "nothing"), expect=1)  # fmt: skip
    line = error_line(missing)
    assert "no passphrase for agent alice: looked in " in line and "nothing/alice" in line


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_run_refuses_a_key_directory_open_to_others(tmp_path: Path) -> None:
    plan = prepare(tmp_path / "net", 1, seed="keys-dir")
    keys = plan.dirs[0].keys_dir
    keys.chmod(0o755)
    refused = run(plan.dirs[0].root, "run", "--listen", "/ip4/127.0.0.1/tcp/0", expect=1)
    line = error_line(refused)
    assert f"the key directory {keys} is open to group or others (mode 0755)" in line
    assert f"chmod 700 {keys}" in line and "does not start" in line
    assert not plan.dirs[0].socket_path.exists()


def test_run_is_refused_while_another_process_holds_the_data_dir(tmp_path: Path) -> None:
    plan = prepare(tmp_path / "net", 1, seed="held")
    root = plan.dirs[0].root
    with DataDirLock(root, "a test holding it"):
        refused = run(root, "run", "--listen", "/ip4/127.0.0.1/tcp/0", expect=1)
        assert error_line(refused) == (
            f"conode: error: the data dir {root} is in use by another conode process "
            f"(pid {os.getpid()}: a test holding it): a node runs there, or a command is "
            "writing its store; stop it first"
        )
        writer = run(root, "coop", "genesis", "coop0", expect=1)  # an offline writer, too
        assert "is in use by another conode process" in error_line(writer)
    assert (root / "lock").read_text() == ""  # released: the next owner writes its own pid

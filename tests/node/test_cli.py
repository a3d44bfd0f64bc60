"""The real ``conode`` command, run as a subprocess against data dirs in ``tmp_path``."""

from __future__ import annotations

import io
import json
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cli.render import Progress
from conode.chain import ActionKind, ChainHead, author_record
from conode.hashes import AgentKey
from conode.keyfile import PassphraseSource, load_key
from conode.store import Store

_SCRIPT = Path(sys.executable).with_name("conode")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli"]
PASSPHRASE = "correct horse battery staple"


def run(
    data: Path | None,
    *args: str,
    env: dict[str, str] | None = None,
    expect: int | None = 0,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """Run ``conode [--data-dir data] args``; check the exit code and that no traceback leaked."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONODE_")}
    prefix = [] if data is None else ["--data-dir", str(data)]
    result = subprocess.run(
        [*COMMAND, *prefix, *args],
        env=base | (env or {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=60,
        check=False,
    )
    if expect is not None:
        assert result.returncode == expect, (result.stdout, result.stderr)
    if stderr == subprocess.PIPE:
        assert "Traceback" not in result.stderr, result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("conode: error: "), lines[0]
    return lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """An initialised data dir with agent alice (passphrase from the env) and bob (none).

    Both are standalone chains (no network), which is what the chain tools work on.
    """
    root = tmp_path / "node"
    run(root, "init")
    run(root, "agent", "new", "alice", "--standalone", env={"CONODE_PASSPHRASE": PASSPHRASE})
    run(root, "agent", "new", "bob", "--standalone", "--no-passphrase")
    return root


def add(data: Path, agent: str, entry_type: str, entry: dict[str, object]) -> None:
    run(
        data,
        "chain",
        "add",
        agent,
        "--type",
        entry_type,
        "--data",
        json.dumps(entry),
        env={"CONODE_PASSPHRASE": PASSPHRASE},
    )


# -- init and agents ----------------------------------------------------------------------


def test_init_creates_the_layout_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "d"
    first = run(root, "init", "--json")
    created = json.loads(first.stdout)
    assert {k: created[k] for k in ("data_dir", "created", "network")} == {
        "data_dir": str(root),
        "created": True,
        "network": None,
    }
    assert created["peer_id"].startswith("12D3KooW")
    assert (root / "config.toml").is_file()
    assert stat.S_IMODE((root / "node.key").stat().st_mode) == 0o600
    assert len((root / "node.key").read_bytes()) == 32
    assert (root / "conode.db").is_file()
    assert stat.S_IMODE((root / "keys").stat().st_mode) == 0o700
    again = run(root, "init")
    assert "already exists" in again.stdout


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "from-env"
    run(None, "init", env={"CONODE_DATA_DIR": str(root)})
    assert (root / "config.toml").is_file()


def test_commands_before_init_fail_in_one_line(tmp_path: Path) -> None:
    result = run(tmp_path / "none", "agent", "list", expect=1)
    assert "conode init" in error_line(result)


def test_agent_new_with_passphrase_from_env(data: Path) -> None:
    key_file = data / "keys" / "alice.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["encrypted"] is True


def test_agent_new_with_passphrase_file(data: Path, tmp_path: Path) -> None:
    passfile = tmp_path / "pass"
    passfile.write_text("from a file on disk\n")
    passfile.chmod(0o600)
    result = run(
        data, "agent", "new", "carol", "--standalone", "--passphrase-file", str(passfile), "--json"
    )
    created = json.loads(result.stdout)
    assert created["encrypted"] is True and created["agent"].startswith("agt_")
    add_carol = ["chain", "add", "carol", "--type", "t", "--data", "{}"]
    run(data, *add_carol, "--passphrase-file", str(passfile))
    fixed = PassphraseSource(value=b"from a file on disk", environ={}, interactive=False)
    assert load_key(data / "keys" / "carol.key", fixed).public_key


def test_agent_new_only_creates_the_key(data: Path) -> None:
    result = run(data, "agent", "new", "frank", "--no-passphrase", "--json")
    created = json.loads(result.stdout)
    assert created["genesis"] is None and (data / "keys" / "frank.key").is_file()
    assert "no chain" in error_line(run(data, "chain", "show", "frank", expect=1))


def test_agent_new_standalone_prints_the_key_and_stores_the_genesis(data: Path) -> None:
    result = run(data, "agent", "new", "dan", "--standalone", "--no-passphrase")
    agent = result.stdout.strip()
    assert agent.startswith("agt_")
    assert "UNENCRYPTED" in result.stderr
    shown = json.loads(run(data, "chain", "show", agent, "--json").stdout)
    genesis = shown["actions"][0]
    assert genesis["kind"] == "genesis" and genesis["seq"] == 0
    assert genesis["entry"] == {
        "network": None,
        "membrane_proof": None,
        "identity": {"name": "dan"},
    }


def test_agent_new_without_a_passphrase_source_fails_cleanly(data: Path) -> None:
    result = run(data, "agent", "new", "eve", expect=1)
    assert "no passphrase" in error_line(result)
    assert not (data / "keys" / "eve.key").exists()


def test_agent_new_refuses_duplicates_and_bad_names(data: Path) -> None:
    assert "already exists" in error_line(run(data, "agent", "new", "bob", expect=1))
    assert "not a valid agent name" in error_line(run(data, "agent", "new", "../x", expect=1))


def test_empty_passphrase_needs_the_explicit_flag(data: Path) -> None:
    result = run(data, "agent", "new", "eve", env={"CONODE_PASSPHRASE": ""}, expect=1)
    assert "--no-passphrase" in error_line(result)


def test_agent_list(data: Path) -> None:
    listed = json.loads(run(data, "agent", "list", "--json").stdout)
    assert [(a["name"], a["records"], a["head_seq"], a["encrypted"]) for a in listed] == [
        ("alice", 1, 0, True),
        ("bob", 1, 0, False),
    ]
    assert "alice" in run(data, "agent", "list").stdout


# -- chains -------------------------------------------------------------------------------


def test_add_and_show(data: Path) -> None:
    add(data, "alice", "note", {"text": "hello", "amount": 1250, "tags": ["a", True, None]})
    shown = json.loads(run(data, "chain", "show", "alice", "--json").stdout)
    assert shown["name"] == "alice" and shown["records"] == 2
    action = shown["actions"][1]
    assert (action["seq"], action["kind"], action["entry_type"]) == (1, "create", "note")
    assert action["entry"] == {"text": "hello", "amount": 1250, "tags": ["a", True, None]}
    assert action["prev"] == shown["actions"][0]["hash"]
    assert action["time"].endswith("Z") and isinstance(action["timestamp"], int)
    text = run(data, "chain", "show", "alice").stdout
    assert "genesis" in text and "create" in text and '"hello"' in text


def test_wrong_passphrase_is_one_line_and_exit_1(data: Path) -> None:
    result = run(
        data,
        *("chain", "add", "alice", "--type", "t", "--data", "{}"),
        env={"CONODE_PASSPHRASE": "nope"},
        expect=1,
    )
    assert error_line(result) == "conode: error: wrong passphrase for agent alice"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"price": 4.5}', "not an integer"),
        ('{"x": NaN}', "not an integer"),
        ("[1, 2]", "JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_bad_entries_are_refused(data: Path, payload: str, reason: str) -> None:
    result = run(data, "chain", "add", "bob", "--type", "t", "--data", payload, expect=1)
    assert reason in error_line(result)


def test_show_needs_a_name_when_there_are_several_agents(data: Path) -> None:
    assert "several local agents" in error_line(run(data, "chain", "show", expect=1))
    assert "no local agent named" in error_line(run(data, "chain", "show", "zoe", expect=1))
    assert "'agt_abc'" in error_line(run(data, "chain", "show", "agt_abc", expect=1))
    stranger = str(AgentKey(bytes(32)))
    assert "no chain" in error_line(run(data, "chain", "show", stranger, expect=1))


def test_verify_a_valid_chain(data: Path) -> None:
    add(data, "alice", "note", {"n": 1})
    result = run(data, "chain", "verify", "alice", "--json")
    assert json.loads(result.stdout) | {"agent": None} == {
        "valid": True,
        "agent": None,
        "records": 2,
        "violation": None,
    }
    assert run(data, "chain", "verify", "bob").stdout.startswith("valid")


def test_verify_catches_a_tampered_store(data: Path) -> None:
    add(data, "alice", "note", {"text": "MARKER-0123456789"})
    db = data / "conode.db"
    content = db.read_bytes()
    assert content.count(b"MARKER-0123456789") == 1  # the store checkpointed on close
    db.write_bytes(content.replace(b"MARKER-0123456789", b"MARKER-0123456788"))
    result = run(data, "chain", "verify", "alice", "--json", expect=1)
    verdict = json.loads(result.stdout)
    assert verdict["valid"] is False
    assert verdict["violation"]["seq"] == 1
    assert verdict["violation"]["rule"] == "entry-hash"
    assert "INVALID" in run(data, "chain", "verify", "alice", expect=1).stdout


def test_export_import_round_trip(data: Path, tmp_path: Path) -> None:
    add(data, "alice", "note", {"n": 1})
    add(data, "alice", "note", {"n": 2})
    out = tmp_path / "alice.chain"
    exported = json.loads(run(data, "chain", "export", "alice", "--out", str(out), "--json").stdout)
    assert exported["records"] == 3
    assert run(None, "chain", "verify", "--file", str(out)).stdout.startswith("valid")

    peer = tmp_path / "peer"
    run(peer, "init")
    first = json.loads(run(peer, "chain", "import", str(out), "--json").stdout)
    assert (first["added"], first["head_seq"]) == (3, 2)
    again = json.loads(run(peer, "chain", "import", str(out), "--json").stdout)
    assert again["added"] == 0
    ours = json.loads(run(data, "chain", "show", "alice", "--json").stdout)["actions"]
    theirs = json.loads(run(peer, "chain", "show", exported["agent"], "--json").stdout)
    assert theirs["name"] is None
    assert theirs["actions"] == ours
    assert run(peer, "chain", "verify", exported["agent"]).returncode == 0


def test_tampered_export_is_caught_and_refused(data: Path, tmp_path: Path) -> None:
    add(data, "alice", "note", {"text": "MARKER-abcdef"})
    out = tmp_path / "alice.chain"
    run(data, "chain", "export", "alice", "--out", str(out))
    tampered = tmp_path / "tampered.chain"
    tampered.write_bytes(out.read_bytes().replace(b"MARKER-abcdef", b"MARKER-abcdeg"))

    result = run(None, "chain", "verify", "--file", str(tampered), "--json", expect=1)
    verdict = json.loads(result.stdout)
    assert verdict["valid"] is False and verdict["records"] == 2
    assert verdict["violation"] == {
        "position": 1,
        "seq": 1,
        "rule": "entry-hash",
        "reason": "the entry does not match the action's entry hash",
    }

    peer = tmp_path / "peer"
    run(peer, "init")
    refused = run(peer, "chain", "import", str(tampered), expect=1)
    assert "entry-hash" in error_line(refused)
    assert json.loads(run(peer, "agent", "list", "--json").stdout) == []
    with Store.open(peer / "conode.db") as store:
        assert store.authors() == []


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncated_export_is_a_violation(data: Path, tmp_path: Path, cut: int) -> None:
    out = tmp_path / "bob.chain"
    add(data, "bob", "t", {"n": 1})
    run(data, "chain", "export", "bob", "--out", str(out))
    out.write_bytes(out.read_bytes()[:-cut])
    verdict = json.loads(
        run(None, "chain", "verify", "--file", str(out), "--json", expect=1).stdout
    )
    assert verdict["violation"]["rule"] == "format"
    peer = tmp_path / "peer"
    run(peer, "init")
    assert "truncated" in error_line(run(peer, "chain", "import", str(out), expect=1))


def test_not_an_export_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    assert "not a chain export file" in error_line(
        run(None, "chain", "verify", "--file", str(junk), expect=1)
    )
    missing = run(None, "chain", "verify", "--file", str(tmp_path / "missing"), expect=1)
    assert "cannot read" in error_line(missing)


def test_progress_line_on_a_terminal_for_long_chains(data: Path) -> None:
    signer = load_key(data / "keys" / "bob.key")
    with Store.open(data / "conode.db") as store:
        head = store.head(AgentKey(signer.public_key))
        assert head is not None
        batch = []
        for n in range(2100):
            record = author_record(
                signer,
                head,
                kind=ActionKind.CREATE,
                timestamp=head.timestamp,
                entry={"n": n},
                entry_type="bulk",
            )
            batch.append(record)
            head = ChainHead.after(record)
        store.append(batch)
    leader, follower = pty.openpty()
    try:
        result = run(data, "chain", "verify", "bob", stderr=follower)
        os.close(follower)
        follower = -1
        shown = _read_all(leader)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert result.stdout.startswith("valid") and "2101 records" in result.stdout
    assert "\r" in shown and "2101/2101 (100%)" in shown and "Traceback" not in shown


# -- the demo, usage errors, the progress line --------------------------------------------


def test_demo_json_last_line(tmp_path: Path) -> None:
    result = run(None, "demo", "--json")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["verified"] is True
    assert summary["tamper_detected"] is True
    assert summary["agents"] == 3 and summary["records"] >= 6
    assert isinstance(summary["elapsed_s"], float)


def test_demo_keep(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    run(None, "demo", "--keep", str(kept))
    assert (kept / "coop-node" / "conode.db").is_file()
    listed = json.loads(run(kept / "coop-node", "agent", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["ana", "ben", "riverside"]
    assert "new or empty" in error_line(run(None, "demo", "--keep", str(kept), expect=1))


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frobnicate",),
        ("chain",),
        ("chain", "add", "alice"),
        ("agent", "new", "x", "--no-passphrase", "--passphrase-file", "f"),
        ("chain", "verify", "alice", "--file", "f"),
    ],
)
def test_usage_errors_exit_2_in_one_line(data: Path, args: tuple[str, ...]) -> None:
    error_line(run(data, *args, expect=2))


def test_progress_writes_a_carriage_return_line_and_erases_it() -> None:
    stream = io.StringIO()
    progress = Progress("verifying", 4000, stream=stream)
    progress(4000)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rverifying [") and "4000/4000 (100%)" in text
    assert text.endswith("\r")


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")

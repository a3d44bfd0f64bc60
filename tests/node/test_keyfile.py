"""Key files on a real file system: round trips, modes, passphrases, damage."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import pytest

from conode.crypto import Signer
from conode.errors import KeyFileError
from conode.hashes import AgentKey
from conode.keyfile import (
    PASSPHRASE_ENV,
    KeyInfo,
    PassphraseSource,
    check_agent_name,
    key_path,
    list_keys,
    load_key,
    read_key_info,
    save_key,
)

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")

# the cheapest Argon2id parameters, so that most tests do not spend 64 MiB each
FAST_OPS, FAST_MEM = argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN
NO_ENV: dict[str, str] = {}


def source(
    value: bytes | None = None, *, file: Path | None = None, environ: dict[str, str] = NO_ENV
) -> PassphraseSource:
    """A non-interactive source that ignores the real environment."""
    return PassphraseSource(value=value, file=file, environ=environ, interactive=False)


@pytest.fixture
def signer() -> Signer:
    return Signer(bytes(range(32)))


def test_round_trip_with_default_kdf_parameters(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    info = save_key(path, signer, "alice", b"correct horse")
    assert info == KeyInfo(AgentKey(signer.public_key), "alice", True)
    loaded = load_key(path, source(b"correct horse"))
    assert loaded.seed == signer.seed
    document = json.loads(path.read_text())
    assert document["kdf"]["opslimit"] == argon2id.OPSLIMIT_INTERACTIVE
    assert document["kdf"]["memlimit"] == argon2id.MEMLIMIT_INTERACTIVE
    assert document["agent"] == str(AgentKey(signer.public_key))
    assert signer.seed.hex() not in path.read_text()
    assert base64.b64encode(signer.seed).decode() not in path.read_text()


@posix_only
def test_file_is_mode_0600_and_no_temporary_file_is_left(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"pw", opslimit=FAST_OPS, memlimit=FAST_MEM)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["alice.key"]


@posix_only
def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path, signer: Signer) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "a.key", signer, "a", b"pw", opslimit=FAST_OPS, memlimit=FAST_MEM)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_wrong_passphrase_is_one_clear_error(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"right", opslimit=FAST_OPS, memlimit=FAST_MEM)
    with pytest.raises(KeyFileError, match=r"^wrong passphrase for agent alice$"):
        load_key(path, source(b"wrong"))


def test_tampered_ciphertext_is_refused(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"pw", opslimit=FAST_OPS, memlimit=FAST_MEM)
    document = json.loads(path.read_text())
    sealed = bytearray(base64.b64decode(document["box"]))
    sealed[-1] ^= 0x01
    document["box"] = base64.b64encode(bytes(sealed)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError):
        load_key(path, source(b"pw"))


def test_agent_key_swapped_in_the_header_is_refused(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", None)
    document = json.loads(path.read_text())
    document["agent"] = str(AgentKey(Signer.generate().public_key))
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError, match="damaged"):
        load_key(path, source())


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"format": "other"}', b'{"format": "conode-key", "version": 9}'],
)
def test_damaged_files_are_key_file_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        read_key_info(path)
    with pytest.raises(KeyFileError):
        load_key(path, source(b"pw"))


def test_missing_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file"):
        load_key(tmp_path / "nope.key", source(b"pw"))


@posix_only
def test_group_readable_file_is_refused_until_fixed(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", None)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)
    path.chmod(0o600)
    assert load_key(path).seed == signer.seed


def test_unencrypted_file_says_so_and_needs_no_passphrase(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "coop.key"
    info = save_key(path, signer, "coop", None)
    assert info.encrypted is False
    document = json.loads(path.read_text())
    assert document["encrypted"] is False
    assert "UNENCRYPTED" in document["warning"]
    assert read_key_info(path).encrypted is False
    assert load_key(path, source()).seed == signer.seed


def test_an_empty_passphrase_is_not_a_way_to_skip_encryption(
    tmp_path: Path, signer: Signer
) -> None:
    with pytest.raises(KeyFileError, match="--no-passphrase"):
        save_key(tmp_path / "a.key", signer, "a", b"", opslimit=FAST_OPS, memlimit=FAST_MEM)
    with pytest.raises(KeyFileError, match="--no-passphrase"):
        source(b"").passphrase("a")


def test_existing_file_is_not_overwritten(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "a.key"
    save_key(path, signer, "a", None)
    with pytest.raises(KeyFileError, match="already exists"):
        save_key(path, Signer.generate(), "a", None)
    assert load_key(path).seed == signer.seed


def test_read_key_info_needs_no_passphrase(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"pw", opslimit=FAST_OPS, memlimit=FAST_MEM)
    assert read_key_info(path) == KeyInfo(AgentKey(signer.public_key), "alice", True)


def test_passphrase_from_env(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"from env", opslimit=FAST_OPS, memlimit=FAST_MEM)
    loaded = load_key(path, source(environ={PASSPHRASE_ENV: "from env"}))
    assert loaded.seed == signer.seed


def test_passphrase_file_comes_before_env_and_loses_one_newline(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"from file", opslimit=FAST_OPS, memlimit=FAST_MEM)
    passfile = tmp_path / "pass.txt"
    passfile.write_bytes(b"from file\n")
    loaded = load_key(path, source(file=passfile, environ={PASSPHRASE_ENV: "from env"}))
    assert loaded.seed == signer.seed


def test_missing_passphrase_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="passphrase file"):
        source(file=tmp_path / "nope").passphrase("a")


def test_no_source_and_no_terminal_is_a_clear_error() -> None:
    with pytest.raises(KeyFileError, match="no passphrase for agent alice"):
        source().passphrase("alice")


def test_interactive_prompt_asks_twice_when_creating(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("conode.keyfile._stdin_is_terminal", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    interactive = PassphraseSource(environ=NO_ENV)
    with pytest.raises(KeyFileError, match="do not match"):
        interactive.passphrase("a", confirm=True)
    answers = iter(["same", "same"])
    assert interactive.passphrase("a", confirm=True) == b"same"


@pytest.mark.parametrize("name", ["", "-x", "a/b", "..", "a b", "x" * 65, "é"])
def test_bad_agent_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyFileError, match="not a valid agent name"):
        check_agent_name(name)
    with pytest.raises(KeyFileError):
        key_path(tmp_path, name)


def test_list_keys_sorted_by_name(tmp_path: Path) -> None:
    assert list_keys(tmp_path / "missing") == []
    for name in ("zed", "amy"):
        save_key(key_path(tmp_path, name), Signer.generate(), name, None)
    assert [info.name for _path, info in list_keys(tmp_path)] == ["amy", "zed"]

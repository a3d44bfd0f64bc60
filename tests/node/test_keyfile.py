"""Key files on a real file system: round trips, modes, passphrases, damage."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import nacl.secret
import pytest

from conode.crypto import Signer
from conode.errors import KeyFileError
from conode.hashes import AgentKey
from conode.keyfile import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    PASSPHRASE_ENV,
    KeyInfo,
    PassphraseSource,
    change_passphrase,
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
PW = b"twelve chars"


def source(
    value: bytes | None = None,
    *,
    file: Path | None = None,
    directory: Path | None = None,
    environ: dict[str, str] = NO_ENV,
) -> PassphraseSource:
    """A non-interactive source that ignores the real environment."""
    return PassphraseSource(
        value=value, file=file, directory=directory, environ=environ, interactive=False
    )


def secret_file(path: Path, text: str) -> Path:
    """A passphrase file as an operator makes one: the text and a newline, mode 0600."""
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


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
    assert document["kdf"]["opslimit"] == DEFAULT_OPSLIMIT == 3
    assert document["kdf"]["memlimit"] == DEFAULT_MEMLIMIT == 128 << 20
    assert document["agent"] == str(AgentKey(signer.public_key))
    assert signer.seed.hex() not in path.read_text()
    assert base64.b64encode(signer.seed).decode() not in path.read_text()


@posix_only
def test_file_is_mode_0600_and_no_temporary_file_is_left(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["alice.key"]


@posix_only
def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path, signer: Signer) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "a.key", signer, "a", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_wrong_passphrase_is_one_clear_error(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"the right passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    with pytest.raises(KeyFileError, match=r"^wrong passphrase for agent alice$"):
        load_key(path, source(b"wrong"))


def test_tampered_ciphertext_is_refused(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    document = json.loads(path.read_text())
    sealed = bytearray(base64.b64decode(document["box"]))
    sealed[-1] ^= 0x01
    document["box"] = base64.b64encode(bytes(sealed)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(KeyFileError):
        load_key(path, source(PW))


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
        load_key(path, source(PW))


def test_missing_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file"):
        load_key(tmp_path / "nope.key", source(PW))


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
    save_key(path, signer, "alice", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    assert read_key_info(path) == KeyInfo(AgentKey(signer.public_key), "alice", True)


def test_passphrase_from_env(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"from the environment", opslimit=FAST_OPS, memlimit=FAST_MEM)
    loaded = load_key(path, source(environ={PASSPHRASE_ENV: "from the environment"}))
    assert loaded.seed == signer.seed


def test_passphrase_file_comes_before_env_and_loses_one_newline(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"from the file", opslimit=FAST_OPS, memlimit=FAST_MEM)
    passfile = tmp_path / "pass.txt"
    passfile.write_bytes(b"from the file\n")
    passfile.chmod(0o600)
    loaded = load_key(path, source(file=passfile, environ={PASSPHRASE_ENV: "from the environment"}))
    assert loaded.seed == signer.seed


def test_missing_passphrase_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="passphrase file"):
        source(file=tmp_path / "nope").passphrase("a")


def test_no_source_and_no_terminal_is_a_clear_error() -> None:
    with pytest.raises(KeyFileError, match="no passphrase for agent alice"):
        source().passphrase("alice")


def test_interactive_prompt_asks_twice_when_creating(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["the first answer", "the second answer"])
    monkeypatch.setattr("conode.passphrase._stdin_is_terminal", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    interactive = PassphraseSource(environ=NO_ENV)
    with pytest.raises(KeyFileError, match="do not match"):
        interactive.passphrase("a", confirm=True)
    answers = iter(["the same answer", "the same answer"])
    assert interactive.passphrase("a", confirm=True) == b"the same answer"


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


# -- passphrases per agent, their files, their length --------------------------------------


def test_each_key_opens_with_its_own_file_in_a_passphrase_directory(tmp_path: Path) -> None:
    ana, ben = Signer.generate(), Signer.generate()
    save_key(
        tmp_path / "ana.key", ana, "ana", b"ana's long phrase", opslimit=FAST_OPS, memlimit=FAST_MEM
    )
    save_key(
        tmp_path / "ben.key",
        ben,
        "ben",
        b"ben's other phrase",
        opslimit=FAST_OPS,
        memlimit=FAST_MEM,
    )
    phrases = tmp_path / "phrases"
    phrases.mkdir(mode=0o700)
    secret_file(phrases / "ana", "ana's long phrase")
    secret_file(phrases / "ben", "ben's other phrase")
    both = source(directory=phrases)
    assert load_key(tmp_path / "ana.key", both).seed == ana.seed
    assert load_key(tmp_path / "ben.key", both).seed == ben.seed
    # the directory can come from the environment too
    from_env = source(environ={"CONODE_PASSPHRASE_DIR": str(phrases)})
    assert load_key(tmp_path / "ben.key", from_env).seed == ben.seed


def test_systemd_credentials_are_read_by_agent_name(tmp_path: Path, signer: Signer) -> None:
    save_key(
        tmp_path / "ana.key",
        signer,
        "ana",
        b"from systemd creds",
        opslimit=FAST_OPS,
        memlimit=FAST_MEM,
    )
    credentials = tmp_path / "creds"
    credentials.mkdir()
    # what LoadCredential=passphrase:/etc/conode/passphrases makes of a file named ana
    (credentials / "passphrase_ana").write_bytes(b"from systemd creds")
    (credentials / "passphrase_ana").chmod(0o400)
    loaded = load_key(
        tmp_path / "ana.key", source(environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    )
    assert loaded.seed == signer.seed


def test_a_file_named_for_the_agent_wins_over_the_one_for_every_key(
    tmp_path: Path, signer: Signer
) -> None:
    save_key(
        tmp_path / "ana.key",
        signer,
        "ana",
        b"ana's own phrase",
        opslimit=FAST_OPS,
        memlimit=FAST_MEM,
    )
    phrases = tmp_path / "phrases"
    phrases.mkdir()
    secret_file(phrases / "ana", "ana's own phrase")
    shared = secret_file(tmp_path / "shared", "the phrase of the others")
    mixed = source(file=shared, directory=phrases, environ={PASSPHRASE_ENV: "not this one"})
    assert load_key(tmp_path / "ana.key", mixed).seed == signer.seed
    # an agent with no file of its own falls back to the one for every key
    assert mixed.passphrase("ben") == b"the phrase of the others"


def test_no_passphrase_anywhere_names_every_place_looked(tmp_path: Path) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    with pytest.raises(KeyFileError) as caught:
        source(directory=tmp_path / "phrases", environ=environ).passphrase("ana")
    message = str(caught.value)
    assert message.startswith("no passphrase for agent ana: looked in ")
    assert str(tmp_path / "phrases" / "ana") in message
    assert str(tmp_path / "creds" / "passphrase_ana") in message
    assert "$CONODE_PASSPHRASE" in message and "\n" not in message


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_passphrase_file_open_to_others_is_refused_until_fixed(
    tmp_path: Path, signer: Signer, mode: int
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"a fine passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    passfile = tmp_path / "pass"
    passfile.write_text("a fine passphrase\n")
    passfile.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600"):
        load_key(path, source(file=passfile))
    phrases = tmp_path / "phrases"
    phrases.mkdir()
    named = phrases / "alice"
    named.write_text("a fine passphrase\n")
    named.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path, source(directory=phrases))
    passfile.chmod(0o600)
    assert load_key(path, source(file=passfile)).seed == signer.seed


@pytest.mark.parametrize(
    ("passphrase", "length"),
    [(b"x" * 11, 11), ("é" * 11, 11), (b"\xff" * 11, 11)],
    ids=["ascii", "utf8-counts-characters", "not-utf8-counts-bytes"],
)
def test_a_new_passphrase_shorter_than_the_minimum_is_refused(
    tmp_path: Path, signer: Signer, passphrase: bytes | str, length: int
) -> None:
    raw = passphrase.encode() if isinstance(passphrase, str) else passphrase
    path = tmp_path / "a.key"
    with pytest.raises(KeyFileError, match=f"at least 12 characters \\(this one has {length}\\)"):
        save_key(path, signer, "a", raw, opslimit=FAST_OPS, memlimit=FAST_MEM)
    assert not path.exists()
    save_key(path, signer, "a", raw + raw[:2], opslimit=FAST_OPS, memlimit=FAST_MEM)  # 12 or more
    assert load_key(path, source(raw + raw[:2])).seed == signer.seed


def test_a_short_passphrase_still_opens_a_key_made_before_the_minimum(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "old.key"
    save_key(path, signer, "old", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    document = json.loads(path.read_text())
    # re-seal the same seed under a 2-character passphrase, as an older conode allowed
    kdf = document["kdf"]
    key = argon2id.kdf(
        32, b"pw", base64.b64decode(kdf["salt"]), opslimit=FAST_OPS, memlimit=FAST_MEM
    )
    document["box"] = base64.b64encode(nacl.secret.SecretBox(key).encrypt(signer.seed)).decode()
    path.write_text(json.dumps(document))
    assert load_key(path, source(b"pw")).seed == signer.seed


def test_a_key_file_at_the_old_interactive_level_stays_readable(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "old.key"
    save_key(
        path,
        signer,
        "old",
        PW,
        opslimit=argon2id.OPSLIMIT_INTERACTIVE,
        memlimit=argon2id.MEMLIMIT_INTERACTIVE,
    )
    assert json.loads(path.read_text())["kdf"]["memlimit"] == 64 << 20
    assert load_key(path, source(PW)).seed == signer.seed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("opslimit", 2**32 - 1, "asks for opslimit 4294967295: this conode accepts 1 to 6"),
        ("opslimit", MAX_OPSLIMIT + 1, "asks for opslimit 7"),
        ("opslimit", 0, "asks for opslimit 0"),
        ("memlimit", MAX_MEMLIMIT + 1024, "asks for memlimit 268436480 bytes"),
        ("memlimit", 4 << 40, "asks for memlimit"),
    ],
)
def test_kdf_parameters_beyond_the_bounds_are_refused_before_any_derivation(
    tmp_path: Path, signer: Signer, field: str, value: int, message: str
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", PW, opslimit=FAST_OPS, memlimit=FAST_MEM)
    document = json.loads(path.read_text())
    document["kdf"][field] = value
    path.write_text(json.dumps(document))

    class Untouched(PassphraseSource):
        def passphrase(self, name: str, *, confirm: bool = False) -> bytes:
            raise AssertionError("the passphrase was asked for: the bound came too late")

    with pytest.raises(KeyFileError, match=re.escape(message)):
        load_key(path, Untouched(environ={}, interactive=False))
    with pytest.raises(KeyFileError, match="this conode accepts"):
        save_key(
            tmp_path / "b.key",
            signer,
            "b",
            PW,
            **{"opslimit": FAST_OPS, "memlimit": FAST_MEM, field: value},
        )


def test_changing_a_passphrase_reencrypts_at_the_default_level(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"the old passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    info = change_passphrase(path, source(b"the old passphrase"), b"the new passphrase")
    assert info == KeyInfo(AgentKey(signer.public_key), "alice", True)
    assert load_key(path, source(b"the new passphrase")).seed == signer.seed
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key(path, source(b"the old passphrase"))
    kdf = json.loads(path.read_text())["kdf"]
    assert (kdf["opslimit"], kdf["memlimit"]) == (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT)
    assert [p.name for p in tmp_path.iterdir()] == ["alice.key"]
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_refused_passphrase_change_leaves_the_old_file_whole(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"the old passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        change_passphrase(path, source(b"not the passphrase"), b"the new passphrase")
    with pytest.raises(KeyFileError, match="at least 12 characters"):
        change_passphrase(path, source(b"the old passphrase"), b"too short")
    assert path.read_bytes() == before


def test_a_new_file_that_does_not_open_never_replaces_the_old_one(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alice.key"
    save_key(path, signer, "alice", b"the old passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    before = path.read_bytes()
    real_write = os.write

    def torn_write(fd: int, data: bytes | memoryview) -> int:
        # the new file loses its last byte on the way to disk
        return real_write(fd, bytes(data)[:-2] + b"\n") if len(data) > 100 else real_write(fd, data)

    monkeypatch.setattr(os, "write", torn_write)
    with pytest.raises(KeyFileError):
        change_passphrase(
            path,
            source(b"the old passphrase"),
            b"the new passphrase",
            opslimit=FAST_OPS,
            memlimit=FAST_MEM,
        )
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["alice.key"]


@posix_only
def test_a_change_that_cannot_write_leaves_the_old_file_whole(
    tmp_path: Path, signer: Signer
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    path = keys / "alice.key"
    save_key(path, signer, "alice", b"the old passphrase", opslimit=FAST_OPS, memlimit=FAST_MEM)
    before = path.read_bytes()
    keys.chmod(0o500)  # no new file can be created beside it
    try:
        if os.access(keys, os.W_OK):
            pytest.skip("running as root: a read-only directory is still writable")
        with pytest.raises(KeyFileError, match="cannot create key file"):
            change_passphrase(path, source(b"the old passphrase"), b"the new passphrase")
    finally:
        keys.chmod(0o700)
    assert path.read_bytes() == before

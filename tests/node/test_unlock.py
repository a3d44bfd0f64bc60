"""The running node opens key files off its event loop (``conode.unlock``), with real key files."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest
import trio

import conode.unlock
from conode.crypto import Signer
from conode.errors import KeyFileError
from conode.keyfile import load_key, save_key
from conode.passphrase import PassphraseSource
from conode.unlock import KeyUnlocker

PASSPHRASE = b"a passphrase long enough"
NO_SOURCE = PassphraseSource(environ={}, interactive=False)


def _key(tmp_path: Path, name: str = "ana", **kdf: int) -> tuple[Path, Signer]:
    signer = Signer.generate()
    path = tmp_path / f"{name}.key"
    save_key(path, signer, name, PASSPHRASE, **kdf)
    return path, signer


async def test_the_derivation_runs_in_a_worker_thread_while_the_loop_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, signer = _key(tmp_path)  # the default level: a few hundred ms of Argon2id here
    threads: list[int] = []

    def watched(*args: Any) -> Signer:
        threads.append(threading.get_ident())
        return load_key(*args)

    monkeypatch.setattr(conode.unlock, "load_key", watched)
    unlocker = KeyUnlocker(PassphraseSource(value=PASSPHRASE, environ={}, interactive=False))
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await trio.sleep(0)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0)
        before = ticks
        hosted = await unlocker.open(path)
        during = ticks - before
        done = True
    assert hosted.key.raw == signer.public_key and hosted.name == "ana"
    assert threads and threads[0] != threading.get_ident()  # not the event loop's thread
    # on the loop, the derivation would have let no other task run at all meanwhile
    assert during > 10, during


async def test_recover_opens_its_key_before_the_api_method_with_the_requests_passphrase(
    tmp_path: Path,
) -> None:
    path, signer = _key(tmp_path, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    unlocker = KeyUnlocker(NO_SOURCE)
    seen: list[bytes] = []

    async def inner(params: dict[str, Any]) -> Any:  # what conode.api's recover does first
        seen.append(unlocker.take(Path(params["key_file"])).signer.seed)
        return "recovered"

    methods: dict[str, Any] = {"recover": inner}
    unlocker.wrap_recover(methods)
    b64 = base64.b64encode(PASSPHRASE).decode()
    assert await methods["recover"]({"key_file": str(path), "passphrase_b64": b64}) == "recovered"
    assert seen == [signer.seed]
    with pytest.raises(KeyFileError, match="was not opened"):
        unlocker.take(path)  # handed over once, for that request only
    with pytest.raises(KeyFileError, match="no passphrase for agent ana"):
        await methods["recover"]({"key_file": str(path)})  # the node's sources have none
    with pytest.raises(KeyFileError, match="wrong passphrase for agent ana"):
        bad = base64.b64encode(b"not the passphrase").decode()
        await methods["recover"]({"key_file": str(path), "passphrase_b64": bad})
    with pytest.raises(KeyFileError, match="not base64"):
        await methods["recover"]({"key_file": str(path), "passphrase_b64": "%%%"})
    assert seen == [signer.seed]


async def test_the_nodes_own_passphrase_dir_opens_a_recovered_key(tmp_path: Path) -> None:
    path, signer = _key(tmp_path, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    phrases = tmp_path / "phrases"
    phrases.mkdir()
    (phrases / "ana").write_bytes(PASSPHRASE + b"\n")
    (phrases / "ana").chmod(0o600)
    unlocker = KeyUnlocker(PassphraseSource(directory=phrases, environ={}, interactive=True))
    assert unlocker.source.interactive is False  # a running node never prompts
    assert (await unlocker.open(path)).signer.seed == signer.seed


async def test_a_key_file_asking_for_huge_kdf_work_is_refused_at_once(tmp_path: Path) -> None:
    path, _signer = _key(tmp_path, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    document = json.loads(path.read_text())
    document["kdf"]["opslimit"] = 2**32 - 1  # 9.6 s frozen before the bound (issue 12, item 9)
    path.write_text(json.dumps(document))
    unlocker = KeyUnlocker(PassphraseSource(value=PASSPHRASE, environ={}, interactive=False))
    with pytest.raises(KeyFileError, match="asks for opslimit 4294967295"):
        await unlocker.open(path)

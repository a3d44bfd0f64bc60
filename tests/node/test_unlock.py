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
from conode.api import ApiServer
from conode.crypto import Signer
from conode.errors import KeyFileError, ValidationError
from conode.hashes import AgentKey
from conode.keyfile import load_key, save_key
from conode.passphrase import PassphraseSource
from conode.testing import TestNetwork, derive_signer
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


async def test_recover_awaits_the_key_loader_with_the_requests_passphrase(
    tmp_path: Path,
) -> None:
    # the API's recover awaits the unlocker (no wrapper around the method); the chain comes
    # from the peer that holds it
    unlocker = KeyUnlocker(NO_SOURCE)
    signer = derive_signer("testnet", "coop1-m0")
    path = tmp_path / "coop1-m0.key"
    save_key(
        path, signer, "coop1-m0", PASSPHRASE,
        opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN,
    )  # fmt: skip
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        node = net.nodes[0]
        api = ApiServer(node, tmp_path / "unused.sock", unlocker.loader())
        methods = api.methods
        b64 = base64.b64encode(PASSPHRASE).decode()
        answer = await methods["recover"]({"key_file": str(path), "passphrase_b64": b64})
        assert answer["agent"] == str(AgentKey(signer.public_key)) and answer["name"] == "coop1-m0"
        assert node.agents[AgentKey(signer.public_key)].signer.seed == signer.seed
        with pytest.raises(KeyFileError, match="no passphrase for agent coop1-m0"):
            await methods["recover"]({"key_file": str(path)})  # the node's sources have none
        with pytest.raises(KeyFileError, match="wrong passphrase for agent coop1-m0"):
            bad = base64.b64encode(b"not the passphrase").decode()
            await methods["recover"]({"key_file": str(path), "passphrase_b64": bad})
        with pytest.raises(KeyFileError, match="not base64"):
            await methods["recover"]({"key_file": str(path), "passphrase_b64": "%%%"})
        refused = ApiServer(node, tmp_path / "unused2.sock")  # no key loader: recover refused
        with pytest.raises(ValidationError, match="cannot open key files"):
            await refused.methods["recover"]({"key_file": str(path)})


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

"""Opening key files inside the running node: off the event loop, one derivation at a time.

An Argon2id derivation takes a second or more on a Raspberry Pi and as much
memory as the key file asks for (``conode.keyfile`` bounds both). Done on
the event loop it would freeze every peer conversation and payment of the
node meanwhile, so the node runs it in a worker thread
(``trio.to_thread.run_sync``; libsodium releases the GIL), and one at a time
(a ``CapacityLimiter`` of 1), so that several requests cannot add up their
memory.

The local API's ``recover`` (in ``conode.api``) still calls a synchronous
key loader. Until that method awaits one, ``wrap_recover`` puts this
unlocker in front of it: the key named by the request is opened here, off
the loop, and the synchronous ``take`` only hands it over.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import trio

from conode.errors import KeyFileError
from conode.keyfile import load_key, read_key_info
from conode.node import HostedAgent
from conode.passphrase import PassphraseSource

__all__ = ["KeyUnlocker"]

Method = Callable[[dict[str, Any]], Awaitable[Any]]


class KeyUnlocker:
    """Opens key files for the running node with its passphrase sources; never prompts."""

    def __init__(self, source: PassphraseSource) -> None:
        """``source``: where the node finds passphrases (its ``interactive`` is ignored)."""
        self.source = PassphraseSource(
            value=source.value,
            file=source.file,
            directory=source.directory,
            environ=source.environ,
            interactive=False,
        )
        self._limiter = trio.CapacityLimiter(1)
        self._recovering = trio.Lock()
        self._opened: dict[Path, HostedAgent] = {}

    async def open(self, path: Path, passphrase: bytes | None = None) -> HostedAgent:
        """The agent of key file ``path`` (``passphrase``, else the node's sources), from a thread."""
        source = (
            self.source
            if passphrase is None
            else PassphraseSource(value=passphrase, environ={}, interactive=False)
        )
        return await trio.to_thread.run_sync(_open, path, source, limiter=self._limiter)

    def wrap_recover(self, methods: MutableMapping[str, Method]) -> None:
        """Make the API's ``recover`` open its key here first (``take`` is its key loader)."""
        inner = methods["recover"]
        # trio objects of this run (a restored node runs serve twice, in two trio.run calls)
        self._limiter = trio.CapacityLimiter(1)
        self._recovering = trio.Lock()

        async def recover(params: dict[str, Any]) -> Any:
            key_file = params.get("key_file")
            if not isinstance(key_file, str):
                return await inner(params)  # the method itself says what is wrong
            path = Path(key_file)
            async with self._recovering:
                self._opened[path] = await self.open(path, _passphrase(params))
                try:
                    return await inner(params)
                finally:
                    self._opened.pop(path, None)

        methods["recover"] = recover

    def take(self, path: Path) -> HostedAgent:
        """The agent ``recover`` opened for ``path`` (a synchronous hand-over, no derivation)."""
        try:
            return self._opened[path]
        except KeyError:
            raise KeyFileError(f"the key file {path} was not opened for this request") from None


def _open(path: Path, source: PassphraseSource) -> HostedAgent:
    info = read_key_info(path)
    return HostedAgent(info.name, load_key(path, source))


def _passphrase(params: dict[str, Any]) -> bytes | None:
    """The request's ``passphrase_b64`` (a passphrase is bytes), if it gives one."""
    raw = params.get("passphrase_b64")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise KeyFileError("recover: passphrase_b64 must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError("recover: passphrase_b64 is not base64") from exc

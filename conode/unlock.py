"""Opening key files inside the running node: off the event loop, one derivation at a time.

An Argon2id derivation takes a second or more on a Raspberry Pi and as much
memory as the key file asks for (``conode.keyfile`` bounds both). Done on
the event loop it would freeze every peer conversation and payment of the
node meanwhile, so the node runs it in a worker thread
(``trio.to_thread.run_sync``; libsodium releases the GIL), and one at a time
(a ``CapacityLimiter`` of 1), so that several requests cannot add up their
memory.

The local API's ``recover`` awaits ``KeyUnlocker.open`` as its key loader
(``conode.api.network.KeyLoader``), with the request's passphrase if it
gives one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from conode.keyfile import load_key, read_key_info
from conode.node import HostedAgent
from conode.passphrase import PassphraseSource

__all__ = ["KeyUnlocker"]


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

    async def open(self, path: Path, passphrase: bytes | None = None) -> HostedAgent:
        """The agent of key file ``path`` (``passphrase``, else the node's sources), from a thread."""
        source = (
            self.source
            if passphrase is None
            else PassphraseSource(value=passphrase, environ={}, interactive=False)
        )
        return await trio.to_thread.run_sync(_open, path, source, limiter=self._limiter)

    def loader(self) -> Callable[[Path, bytes | None], Awaitable[HostedAgent]]:
        """The API's key loader for this trio run (``open``, one derivation at a time)."""
        # trio objects of this run (a restored node runs serve twice, in two trio.run calls)
        self._limiter = trio.CapacityLimiter(1)
        return self.open


def _open(path: Path, source: PassphraseSource) -> HostedAgent:
    info = read_key_info(path)
    return HostedAgent(info.name, load_key(path, source))

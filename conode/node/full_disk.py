"""A full disk does not end the node: background work that cannot write says so and goes on.

A write the store cannot make (``StorageError``: the disk is full, an I/O error) is
not damage: nothing half-written is kept (each write is one transaction), and the
same work done again later succeeds once the operator makes room. So the node's
background loops run again after a pause, and one-off background tasks end with a
log line; answering a peer's request resets it (``conode.dht.transport.Handler``).
Damage found in the store (``ChainError``) still ends the node.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from conode.errors import StorageError

__all__ = ["AGAIN_AFTER_S", "again_after_full_disk", "unless_full_disk"]

log = logging.getLogger("conode.node")

AGAIN_AFTER_S: Final = 10.0
"""Seconds a loop that could not write waits before it runs again."""


async def again_after_full_disk(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` until it returns; after a ``StorageError``, log it and run it again later."""
    while True:
        try:
            await work()
            return
        except* StorageError as failed:
            log.error(
                "%s could not write: %s; trying again in %g s",
                name, failed.exceptions[0], AGAIN_AFTER_S,
            )  # fmt: skip
        await trio.sleep(AGAIN_AFTER_S)


async def unless_full_disk(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Run ``fn(*args)`` once; a ``StorageError`` is logged, and the work left to its next round."""
    try:
        await fn(*args)
    except* StorageError as failed:
        log.error("%s could not write: %s", getattr(fn, "__qualname__", fn), failed.exceptions[0])

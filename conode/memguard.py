"""The node's memory budget: watched once a second, memory handed back, costly work shed.

The operator sets a budget (``memory_mb`` in ``config.toml``, ``conode run
--memory-mb``). Every bound in the node (pending quotas, hello and peer
lists, API buffers, frame sizes) keeps its memory in proportion to its
work; the budget is the backstop. Once a second the process's resident
memory is read (``/proc/self/statm``) and ``memory_action`` decides:

- under ``TRIM_AT`` of the budget: nothing;
- over it: a full garbage collection, then glibc's ``malloc_trim(0)``, which
  hands freed arenas back to the system (CPython keeps them otherwise: 576 MB
  stayed after 1 500 API connections closed);
- still over the budget after that: the node *sheds*: the transport refuses
  every peer's costly reads (``chains``, ``chain``, ``fetch``, ``heads``,
  ``links``, ``bundle``: ``PeerLimiter.shedding``) until it is back under
  ``RESUME_AT``; payments, publishing and hellos go on. A warning is logged
  when shedding starts and when it stops.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import trio

from conode.dht.transport import PeerLimiter, TaskStatus

__all__ = ["RESUME_AT", "TRIM_AT", "MemoryGuard", "hand_back_memory", "memory_action", "rss_mb"]

log = logging.getLogger("conode.node")

TRIM_AT: Final = 0.85
"""Fraction of the budget over which memory is collected and handed back."""
RESUME_AT: Final = 0.9
"""Fraction of the budget under which a shedding node serves costly reads again."""

Action = Literal["ok", "trim", "shed", "resume"]


def memory_action(rss_mb: float, budget_mb: float, *, shedding: bool, trimmed: bool) -> Action:
    """What to do at ``rss_mb`` of a ``budget_mb`` budget (pure).

    ``trimmed``: memory was just collected and handed back at this reading.
    """
    if shedding:
        return "resume" if rss_mb < RESUME_AT * budget_mb else "ok"
    if rss_mb <= TRIM_AT * budget_mb:
        return "ok"
    if not trimmed:
        return "trim"
    return "shed" if rss_mb > budget_mb else "ok"


def rss_mb() -> float:
    """This process's resident memory, MB (from ``/proc/self/statm``; 0 where there is none)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    import ctypes  # loaded by py-libp2p's dependencies anyway

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None

    def call() -> None:
        trim(0)

    return call


def hand_back_memory() -> bool:
    """Collect garbage, then hand the heap's free pages back to the system; False where the
    C library cannot (nothing is done then but the collection).

    A node calls it once its start-up is over: importing ~1 200 modules and opening
    the store leave freed pages inside the C heap that CPython never returns
    (about 1 MB of an idle node's RSS, ``docs/performance.md``).
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim()
    return True


class MemoryGuard:
    """Keeps one node within ``budget_mb`` (see the module docstring)."""

    def __init__(self, budget_mb: float, limiter: PeerLimiter, every: float = 1.0) -> None:
        self.budget_mb = budget_mb
        self.limiter = limiter
        self.every = every
        self.peak_mb = 0.0
        self._trim = _malloc_trim() or (lambda: None)

    def check(self) -> Action:
        """Read the memory once and act on it; what was done."""
        rss = rss_mb()
        self.peak_mb = max(self.peak_mb, rss)
        action = memory_action(rss, self.budget_mb, shedding=self.limiter.shedding, trimmed=False)
        if action == "trim":
            gc.collect()
            self._trim()
            rss = rss_mb()
            action = memory_action(rss, self.budget_mb, shedding=False, trimmed=True)
            if action == "ok":
                return "trim"
        if action == "shed":
            self.limiter.shedding = True
            log.warning(
                "memory %.0f MB over the %.0f MB budget: refusing peers' costly reads",
                rss, self.budget_mb,
            )  # fmt: skip
        elif action == "resume":
            self.limiter.shedding = False
            log.warning("memory %.0f MB: serving peers' costly reads again", rss)
        return action

    async def run(self, *, task_status: TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Check every ``every`` seconds until cancelled."""
        task_status.started()
        while True:
            self.check()
            await trio.sleep(self.every)

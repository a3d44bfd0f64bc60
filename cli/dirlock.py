"""One process at a time owns a data dir: an exclusive ``flock`` on ``DIR/lock``.

``conode run`` holds it for the node's whole life; the commands that write
the store while no node runs (geneses, ``restore``) hold it while they
write. The operating system releases it when the process ends, however it
ends (``kill -9`` included), so a stale lock never needs cleaning up, and
two processes started at the same moment cannot both get it: one of them
is refused at once with one line. The file itself is never removed
(removing a lock file lets a third process lock a new one while the
second still holds the old), and holds the owner's pid, for that line.

POSIX only (``fcntl``); where there is none (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from conode.errors import ConodeError

__all__ = ["LOCK_NAME", "DataDirInUse", "DataDirLock"]

LOCK_NAME: Final = "lock"


class DataDirInUse(ConodeError):
    """Another process holds the data dir's lock."""


class DataDirLock:
    """The exclusive lock of one data dir; a context manager (``with DataDirLock(root, what):``)."""

    def __init__(self, root: Path, purpose: str) -> None:
        """``purpose`` says what the holder does, in the error the next process gets."""
        self.path = root / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise ``DataDirInUse``; never waits."""
        if fcntl is None or self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DataDirInUse(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise DataDirInUse(
                f"the data dir {self.path.parent} is in use by another conode process{holder}: "
                "a node runs there, or a command is writing its store; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.purpose}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (closing the file releases the flock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    """`` (pid N: conode run)`` from the lock file, or nothing if it says nothing useful."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    pid, _, purpose = text.partition(" ")
    if not pid.isdigit():
        return ""
    return f" (pid {pid}: {purpose})" if purpose else f" (pid {pid})"

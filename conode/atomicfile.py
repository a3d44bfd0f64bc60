"""Writing a whole file at once: a reader sees the old file or the new one, never half of one.

``write_atomically`` writes the bytes to a temporary file beside the path
(created exclusively, with its final mode from birth), fsyncs it, lets the
caller check it, and only then gives it the path's name: renamed over an
existing file, or linked without ever replacing one. The temporary file is
removed whatever happens. ``fsync_directory`` makes the new name itself
durable. Errors are ``OSError`` (``CannotCreate`` when the temporary file
cannot even be made), for the caller to say in its own words.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["CannotCreate", "fsync_directory", "write_atomically"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class CannotCreate(OSError):
    """The temporary file beside the path could not be created (a directory's fault)."""


def write_atomically(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o666,
    replace: bool = True,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Write ``data`` as ``path`` (``mode``, less the umask, from birth), complete before it has
    its name. ``replace``: rename over ``path``; else link, ``FileExistsError`` if ``path``
    exists. ``check`` sees the written temporary file first; what it raises passes through."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, _FLAGS, mode)
    except OSError as exc:
        raise CannotCreate(exc.errno, exc.strerror, exc.filename) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if check is not None:
            check(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable; a platform that cannot open a directory
    (or fsync it) is left as it is."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

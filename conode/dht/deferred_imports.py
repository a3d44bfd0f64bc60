"""Deferred imports: packages py-libp2p imports that a conode node never runs load only if used.

py-libp2p 0.8.1's package ``__init__`` loads its whole feature set (QUIC, TLS,
WebSocket, relay, AutoTLS, metrics), and with it, through plain ``import x``
statements, packages that only those features run: two HTTP clients and
their helpers, the TLS certificate checks, asyncio backends. A node built by
``conode.dht.libp2p_transport`` (TCP, Noise, Yamux, on trio) never calls
them; importing them costs about 12 MB of its memory (``docs/performance.md``).

``deferring(names)`` installs, for the ``with`` block only, an import hook
under which those packages are *deferred* modules: the module object exists
(so the importing code runs unchanged) and the package's own code runs the
first time anything reads an attribute of it, exactly as an eager import
would have run it. A repeated ``import x`` (which reads only ``__spec__``) is
not a use. Nothing is stubbed: a process that does use one of them (a node
run with ``--mdns`` uses asyncio through zeroconf) loads it then. (``ifaddr`` is
not deferred: a node listening on a wildcard lists its interfaces with it.)
Only plain-Python modules are deferred; anything else imports as usual, and
so does a package that was already imported before the block.

This is ``importlib.util.LazyLoader``'s idea; LazyLoader itself does not do
here, because on Python 3.11 a second ``import x`` of a lazy module loads it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

__all__ = ["UNUSED_BY_CONODE", "deferring", "is_deferred"]

UNUSED_BY_CONODE: Final = frozenset(
    {
        "httpx",  # AutoTLS's ACME client (and dnspython's DNS over HTTPS)
        "requests",  # AutoTLS's broker client, the OSO metrics reporter
        "certifi",  # the CA bundle of those HTTP clients
        "h11",  # HTTP/1.1 for httpx and for the WebSocket transport
        "service_identity",  # certificate names for the TLS and QUIC transports
        "asyncio",  # asyncio backends (dnspython, anyio, aioquic); conode runs on trio alone
    }
)
"""Top-level packages py-libp2p imports and a conode node never uses (see the module docstring)."""


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet: it runs at the first read of anything but ``__spec__``."""

    def __getattribute__(self, name: str) -> Any:
        if name != "__spec__":  # every repeated ``import x`` reads it: not a use
            _load(self)
        return types.ModuleType.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        _load(self)
        types.ModuleType.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _load(self)
        types.ModuleType.__delattr__(self, name)


_LOADING = threading.RLock()
# ids of the deferred modules whose code runs now, on the thread that holds _LOADING
_RUNNING: set[int] = set()


def _load(module: types.ModuleType) -> None:
    """Run a deferred module's code (once), with its real loader, as the eager import would have.

    Until the code has run, another thread that touches the module waits here;
    the thread running it reads and writes the module as it stands.
    """
    with _LOADING:
        if type(module) is not _DeferredModule or id(module) in _RUNNING:
            return
        spec = types.ModuleType.__getattribute__(module, "__spec__")
        loader = spec.loader_state
        spec.loader = loader
        _RUNNING.add(id(module))
        try:
            types.ModuleType.__setattr__(module, "__loader__", loader)
            loader.exec_module(module)
        finally:
            _RUNNING.discard(id(module))
            object.__setattr__(module, "__class__", types.ModuleType)


class _DeferredLoader(importlib.abc.Loader):
    """Makes the module object now and leaves its code to ``_load``."""

    def __init__(self, loader: importlib.machinery.SourceFileLoader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object, as the real loader would make

    def exec_module(self, module: types.ModuleType) -> None:
        assert module.__spec__ is not None
        module.__spec__.loader_state = self.loader
        object.__setattr__(module, "__class__", _DeferredModule)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds modules of the named packages as the other finders would, then defers them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if type(spec.loader) is importlib.machinery.SourceFileLoader:
                spec.loader = _DeferredLoader(spec.loader)
            return spec
        return None


@contextmanager
def deferring(names: Iterable[str]) -> Iterator[None]:
    """Within the block, the named top-level packages (and their modules) import deferred."""
    finder = _DeferringFinder(frozenset(names))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def is_deferred(module: types.ModuleType) -> bool:
    """True while a module imported under ``deferring`` has not been used (so has not run)."""
    return type(module) is _DeferredModule

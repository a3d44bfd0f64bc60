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

Some packages cannot be deferred because py-libp2p reads names out of them as
it imports (``from zeroconf import Zeroconf``: the mDNS module, which its
``BasicHost`` imports whatever the host runs). ``deferring(..., from_source=)``
loads those from their Python source where a compiled module sits beside it:
zeroconf ships its Cython-compiled modules *and* the pure-Python modules they
were compiled from, and works with either. Mapping and initialising the 18
compiled ones costs an idle node 4.1 MB of RSS (``docs/performance.md``) for
mDNS, which is off unless asked for; their source costs only its code
objects. With ``--mdns`` zeroconf runs from source (its traffic is a few
packets a minute, where speed does not matter).

And py-libp2p's own ``__init__`` (``DEFERRED_INITS``) imports every feature
it has (QUIC, TLS, WebSocket, relay, AutoTLS, the persistent peerstores, the
key stores) for the names it exports, which conode never reads: it imports
the submodules it uses. ``deferring(..., inits=)`` makes such a package's
module without running its ``__init__``, while its submodules import as
usual (reading its ``__path__`` and binding or reading its imported
submodules is not a use; any other name is, and runs the ``__init__``).
Saved: 2 MB of an idle node (``docs/performance.md``). ``libp2p_imports()``
is the block conode imports py-libp2p in, with all three.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DEFERRED_INITS",
    "FROM_SOURCE",
    "UNUSED_BY_CONODE",
    "deferring",
    "is_deferred",
    "libp2p_imports",
]

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

FROM_SOURCE: Final = frozenset({"zeroconf"})
"""Top-level packages loaded from their Python source rather than their compiled modules."""

DEFERRED_INITS: Final = frozenset({"libp2p"})
"""Packages whose own ``__init__`` is deferred; their submodules import as usual."""


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


class _DeferredInit(_DeferredModule):
    """A package whose ``__init__`` has not run yet, while its submodules import as usual:
    what the import system reads and writes then (``__path__``, the submodules it
    binds) is not a use; anything else is."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("__spec__", "__path__") or _is_submodule(self, name, None):
            return types.ModuleType.__getattribute__(self, name)
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if _is_submodule(self, name, value):
            types.ModuleType.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def _is_submodule(package: types.ModuleType, name: str, value: object) -> bool:
    """Whether ``package.name`` is (or, set to ``value``, would be) its submodule ``name``."""
    namespace = types.ModuleType.__getattribute__(package, "__dict__")
    if value is None:
        value = namespace.get(name)
    prefix = namespace["__name__"]
    return isinstance(value, types.ModuleType) and value.__name__ == f"{prefix}.{name}"


_LOADING = threading.RLock()
# ids of the deferred modules whose code runs now, on the thread that holds _LOADING
_RUNNING: set[int] = set()


def _load(module: types.ModuleType) -> None:
    """Run a deferred module's code (once), with its real loader, as the eager import would have.

    Until the code has run, another thread that touches the module waits here;
    the thread running it reads and writes the module as it stands.
    """
    with _LOADING:
        if not isinstance(module, _DeferredModule) or id(module) in _RUNNING:
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

    def __init__(
        self, loader: importlib.machinery.SourceFileLoader, kind: type[_DeferredModule]
    ) -> None:
        self.loader = loader
        self.kind = kind

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object, as the real loader would make

    def exec_module(self, module: types.ModuleType) -> None:
        assert module.__spec__ is not None
        module.__spec__.loader_state = self.loader
        object.__setattr__(module, "__class__", self.kind)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds modules of the named packages as the other finders would, then defers them
    (``names``) or swaps a compiled module for its Python source beside it (``from_source``)."""

    def __init__(
        self, names: frozenset[str], from_source: frozenset[str], inits: frozenset[str]
    ) -> None:
        self.names = names
        self.from_source = from_source
        self.inits = inits

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top not in self.names and top not in self.from_source and fullname not in self.inits:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if top in self.from_source:
                return _source_spec(spec) or spec
            if type(spec.loader) is importlib.machinery.SourceFileLoader:
                kind = _DeferredModule if top in self.names else _DeferredInit
                spec.loader = _DeferredLoader(spec.loader, kind)
            return spec
        return None


def _source_spec(spec: importlib.machinery.ModuleSpec) -> importlib.machinery.ModuleSpec | None:
    """The spec of the ``.py`` file beside a compiled module (None: not compiled, or no source)."""
    if type(spec.loader) is not importlib.machinery.ExtensionFileLoader or spec.origin is None:
        return None
    compiled = Path(spec.origin)
    source = compiled.with_name(compiled.name.partition(".")[0] + ".py")
    if not source.is_file():
        return None
    return importlib.util.spec_from_file_location(
        spec.name, source, submodule_search_locations=spec.submodule_search_locations
    )


@contextmanager
def deferring(
    names: Iterable[str], *, from_source: Iterable[str] = (), inits: Iterable[str] = ()
) -> Iterator[None]:
    """Within the block, the named top-level packages (and their modules) import deferred,
    those of ``from_source`` from their Python source, and the packages ``inits`` without
    running their own ``__init__`` (see the module docstring)."""
    finder = _DeferringFinder(frozenset(names), frozenset(from_source), frozenset(inits))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def is_deferred(module: types.ModuleType) -> bool:
    """True while a module imported under ``deferring`` has not been used (so has not run)."""
    return isinstance(module, _DeferredModule)


@contextmanager
def libp2p_imports() -> Iterator[None]:
    """The block in which conode imports py-libp2p: what it never runs deferred, zeroconf
    from source, and py-libp2p's ``__init__`` (the whole feature set) not run.

    py-libp2p's modules import each other in circles that resolve only in the
    order its ``__init__`` imports them, so the block imports its first one
    first; and it sets up py-libp2p's logging as that ``__init__`` does.
    """
    with deferring(UNUSED_BY_CONODE, from_source=FROM_SOURCE, inits=DEFERRED_INITS):
        first_import = "libp2p" not in sys.modules
        import libp2p.transport.quic.utils  # noqa: F401  (the first module libp2p/__init__ imports)

        if first_import:
            from libp2p.utils.logging import setup_logging

            setup_logging()
        yield

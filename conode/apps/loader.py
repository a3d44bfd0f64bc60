"""The apps' shell: find installed apps by entry point, and read a package into its bundle.

Everything here touches the installation (``importlib.metadata``, the file
system); the decisions (what a bundle's bytes are, whether a node may run an
app) are the pure functions of ``conode.apps.sdk`` it calls.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conode.apps.sdk import BUNDLE_SUFFIXES, App, bundle_hash, pack_bundle
from conode.errors import AppError
from conode.hashes import BundleHash

__all__ = [
    "ENTRY_POINT_GROUP",
    "InstalledApp",
    "bundle_bytes",
    "discover_apps",
    "installed_apps",
    "package_dir",
]

ENTRY_POINT_GROUP = "conode.apps"
"""The entry-point group an app package names its ``App`` in (``id = "module:attribute"``)."""

_NATIVE = (".so", ".pyd", ".dll", ".dylib")


def discover_apps(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    *,
    broken: list[str] | None = None,
) -> dict[str, App]:
    """Every app installed in the ``conode.apps`` group, by id; ``AppError`` naming a broken one.

    An entry point's name must be its app's id. Loading imports the app's
    code: the node runs only those whose bundle the operator approved
    (``sdk.may_run``), but importing is already running, so only installed
    (operator-chosen) packages are ever loaded. With ``broken``, a broken app
    is left out and its error appended there instead (a node still starts).
    """
    found: dict[str, App] = {}
    points = (
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if entry_points is None
        else entry_points
    )
    for point in sorted(points, key=lambda p: (p.name, p.value)):
        try:
            if point.name in found:
                raise AppError(f"app {point.name!r} is installed twice")
            found[point.name] = _load(point)
        except AppError as exc:
            if broken is None:
                raise
            broken.append(str(exc))
    return found


def _load(point: importlib.metadata.EntryPoint) -> App:
    try:
        app = point.load()
    except Exception as exc:  # any import failure of third-party code: one clear error
        raise AppError(f"app {point.name!r}: cannot load {point.value}: {exc!r}") from exc
    if not isinstance(app, App):
        raise AppError(f"app {point.name!r}: {point.value} is not a conode App")
    if app.app_id != point.name:
        raise AppError(f"app {point.name!r}: {point.value} is the app {app.app_id!r}")
    return app


@dataclass(frozen=True, slots=True)
class InstalledApp:
    """An app installed here, **not imported**: its entry point and the package its bundle is made of.

    Its code is imported only by ``load``, which a node calls only for the
    apps it runs (approved, and hashing to the pin): finding an installed
    app's bundle hash runs none of its code.
    """

    app_id: str
    point: importlib.metadata.EntryPoint
    directory: Path

    @property
    def version(self) -> str | None:
        """The installed package's version, from its metadata (None if it has none).

        Read without importing the app, so listing what is installed runs no
        code; what the app itself says (``App.version``) is known once it loads.
        """
        dist = self.point.dist
        return None if dist is None else dist.version

    def bundle(self) -> bytes:
        """The bundle of the installed code (read now: the files are what would run)."""
        return bundle_bytes(self.directory)

    def bundle_hash(self) -> BundleHash:
        """The hash of ``bundle()``: what a charter's pin must name for this code to run."""
        return bundle_hash(self.bundle())

    def load(self) -> App:
        """Import the app (this runs its code); ``AppError`` if it is broken."""
        return _load(self.point)


def installed_apps(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    *,
    broken: list[str] | None = None,
) -> dict[str, InstalledApp]:
    """Every app installed in the ``conode.apps`` group, by id, without importing any.

    ``AppError`` for an id installed twice or a module that cannot be found;
    with ``broken``, such an app is left out and its error appended there.
    """
    points = (
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if entry_points is None
        else entry_points
    )
    found: dict[str, InstalledApp] = {}
    for point in sorted(points, key=lambda p: (p.name, p.value)):
        try:
            if point.name in found:
                raise AppError(f"app {point.name!r} is installed twice")
            found[point.name] = InstalledApp(point.name, point, package_dir(point.module))
        except AppError as exc:
            if broken is None:
                raise
            broken.append(str(exc))
    return found


def package_dir(module: str) -> Path:
    """The directory of the package that holds ``module`` (the package itself, or its parent)."""
    try:
        spec = importlib.util.find_spec(module)  # imports the parent packages, not the module
    except Exception as exc:  # a parent package that cannot be imported: one clear error
        raise AppError(f"cannot find module {module!r}: {exc!r}") from exc
    if spec is None:
        raise AppError(f"no module {module!r} is installed")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin is None:
        raise AppError(f"{module!r} has no source file")
    return Path(spec.origin).parent


def bundle_bytes(directory: str | Path) -> bytes:
    """The bundle of a package directory: its ``.py``/``.toml``/``.md`` files, as ``name/relative/path``.

    Hidden files and ``__pycache__`` are left out. ``AppError`` for a symbolic
    link or a native library: code a bundle hash would not cover.
    """
    root = Path(directory)
    if not root.is_dir():
        raise AppError(f"{root} is not a directory")
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_symlink():
            raise AppError(f"{path} is a symbolic link; a bundle holds plain files only")
        if not path.is_file():
            continue
        if path.suffix in _NATIVE:
            raise AppError(f"{path} is native code, which a bundle cannot carry")
        if path.suffix in BUNDLE_SUFFIXES:
            files[f"{root.name}/{relative.as_posix()}"] = path.read_bytes()
    try:
        return pack_bundle(files)
    except ValueError as exc:
        raise AppError(f"{root}: {exc}") from exc

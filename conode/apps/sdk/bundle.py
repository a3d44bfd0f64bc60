"""The SDK's bundles: an app's code as a deterministic tar archive of its ``.py``/``.toml``/``.md``
files, its ``BundleHash``, and ``may_run`` (whether a node may run it)."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Final, Literal, Protocol

from conode.errors import AppError
from conode.hashes import BundleHash
from conode.validation.charter import AppPin

if TYPE_CHECKING:
    pass

__all__ = [
    "BUNDLE_SUFFIXES",
    "MAX_BUNDLE_FILES",
    "ApprovalStore",
    "bundle_hash",
    "may_run",
    "pack_bundle",
    "unpack_bundle",
    "verify_bundle",
]


BUNDLE_SUFFIXES: Final = (".md", ".py", ".toml")
"""The only files a bundle holds: source and its documentation, never data or native code."""
_BUNDLE_PATH: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_MAX_BUNDLE_PATH: Final = 200


def pack_bundle(files: Mapping[str, bytes]) -> bytes:
    """The one byte form of an app bundle: a ustar archive of ``files`` (path -> bytes).

    Paths are sorted by their bytes; every member is a regular file with mode
    0644, mtime 0, uid/gid 0 and no owner names, so the same files always give
    the same bytes (and any tar tool can list them for review).
    ``ValueError`` for a path that is not a plain relative ``.py``/``.toml``/``.md`` path.
    """
    if len(files) > MAX_BUNDLE_FILES:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_FILES} files, not {len(files)}")
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict"
    ) as tar:
        for path in sorted(files, key=lambda p: p.encode()):
            _check_bundle_path(path)
            data = files[path]
            if type(data) is not bytes:
                raise TypeError(f"{path}: bundle contents are bytes")
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _check_bundle_path(path: str) -> None:
    if (
        type(path) is not str
        or len(path) > _MAX_BUNDLE_PATH
        or _BUNDLE_PATH.fullmatch(path) is None
        or not path.endswith(BUNDLE_SUFFIXES)
    ):
        raise ValueError(
            f"{path!r} is not a bundle path (relative, plain, {'/'.join(BUNDLE_SUFFIXES)})"
        )


MAX_BUNDLE_FILES: Final = 256
"""Most files in an app bundle."""
_BLOCK: Final = 512
_USTAR_MAGIC: Final = b"ustar\x0000"


def _check_plain_ustar(data: bytes) -> None:
    """``AppError`` unless every member header is a plain ustar regular file's.

    ``pack_bundle`` writes nothing else, and ``tarfile`` is not shown anything
    else: it reads pax and GNU headers with regular expressions that take time
    quadratic in their size (a 20 KB pax header took 1.2 s on Python 3.11.7).
    One step per member, reading only its 512-byte header; at most
    ``MAX_BUNDLE_FILES`` members (tarfile and the canonical re-pack cost
    about 0.1 ms each).
    """
    offset = members = 0
    while offset + _BLOCK <= len(data):
        header = data[offset : offset + _BLOCK]
        if not any(header):
            return  # the end-of-archive blocks: tarfile and the canonical form check the rest
        members += 1
        if members > MAX_BUNDLE_FILES:
            raise AppError(f"not an app bundle: more than {MAX_BUNDLE_FILES} files")
        if header[156:157] != tarfile.REGTYPE or header[257:265] != _USTAR_MAGIC:
            raise AppError(f"bundle member at byte {offset} is not a regular file (plain ustar)")
        try:
            size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        except ValueError:
            raise AppError(f"not an app bundle: a bad size at byte {offset}") from None
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
    raise AppError("not an app bundle: it does not end as a tar archive ends")


def unpack_bundle(data: bytes) -> dict[str, bytes]:
    """The files of a bundle; ``AppError`` unless ``data`` is exactly what ``pack_bundle`` writes."""
    _check_plain_ustar(data)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8") as tar:
            for member in tar:
                if not member.isreg():
                    raise AppError(f"bundle member {member.name!r} is not a regular file")
                _check_bundle_path(member.name)
                if member.name in files:
                    raise AppError(f"bundle member {member.name!r} appears twice")
                reader = tar.extractfile(member)
                assert reader is not None  # a regular file has contents
                files[member.name] = reader.read()
        canonical = pack_bundle(files)
    except (tarfile.TarError, ValueError, UnicodeError) as exc:
        raise AppError(f"not an app bundle: {exc}") from exc
    if canonical != data:
        raise AppError("not a canonical app bundle (order, modes, times or padding differ)")
    return files


def bundle_hash(data: bytes) -> BundleHash:
    """The hash that names a bundle (what a charter's ``AppPin.code_hash`` pins)."""
    return BundleHash.of(data)


def verify_bundle(data: bytes, expected: BundleHash) -> bool:
    """True only if ``data`` hashes to ``expected`` (a bundle fetched by hash is checked before use)."""
    return bundle_hash(data) == expected


class ApprovalStore(Protocol):
    """The bundle hashes a node's operator approved to run (kept by the node's store)."""

    def approved_bundles(self) -> set[BundleHash]:
        """Every approved bundle hash."""

    def approve_bundle(self, bundle: BundleHash, app_id: str, version: str) -> None:
        """Record the operator's approval of this exact bundle."""

    def withdraw_bundle(self, bundle: BundleHash) -> None:
        """Forget an approval (the node stops running that code at its next start)."""


def may_run(
    app_pin: AppPin, approved: Collection[BundleHash], local_bundle_hash: BundleHash | None
) -> Literal[True] | str:
    """``True`` if a node may run the app the charter pins; otherwise the reason it may not.

    Only if the operator approved that exact hash, and the code installed here
    hashes to it: neither a charter nor a peer can make a node run new code.
    """
    label = f"{app_pin.id} {app_pin.version}"
    if app_pin.code_hash not in approved:
        return f"{label}: the operator has not approved bundle {app_pin.code_hash}"
    if local_bundle_hash is None:
        return f"{label}: no local code; fetch bundle {app_pin.code_hash} and install it"
    if local_bundle_hash != app_pin.code_hash:
        return f"{label}: the local code hashes to {local_bundle_hash}, the charter pins {app_pin.code_hash}"
    return True

"""The chain export file: one agent's source chain as a portable, streamable file.

A shell (file I/O). The file is an RFC 8742 CBOR sequence of definite-length
byte strings, each with the shortest length head (so every item is
length-prefixed and can be read one at a time)::

    item 0      canonical CBOR of ["conode-chain", 1, author, count]
    item 1..n   Record.to_bytes() of each record, seq 0 first
    (nothing after the n-th record)

``author`` is the 33-byte typed agent key, ``count`` the number of records
that follow. See "Chain export file" in ``docs/protocol.md``.

Reading checks the framing (item heads, sizes, count, trailing bytes) and
that the first record is by the author the header names; the chain rules
themselves are ``conode.chain``'s (``verify_blobs`` runs them as the file
streams). A framing problem is an ``EncodingError``; an OS error is a
``StorageError``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

from conode import encoding
from conode.chain import Record, Violation, verify_encoded_chain
from conode.errors import EncodingError, StorageError
from conode.hashes import AgentKey

__all__ = [
    "CHAIN_FILE_MAGIC",
    "CHAIN_FILE_VERSION",
    "ChainFile",
    "ChainFileHeader",
    "verify_blobs",
    "write_chain_file",
]

CHAIN_FILE_MAGIC: Final = "conode-chain"
CHAIN_FILE_VERSION: Final = 1
_MAX_HEADER_SIZE: Final = 1024
_MAX_RECORD_SIZE: Final = encoding.MAX_SIZE
_MAJOR_BYTES: Final = 2


@dataclass(frozen=True, slots=True)
class ChainFileHeader:
    """What an export file says it holds: whose chain, and how many records."""

    author: AgentKey
    count: int

    def to_bytes(self) -> bytes:
        """The canonical CBOR header (item 0 of the file)."""
        return encoding.encode(
            [CHAIN_FILE_MAGIC, CHAIN_FILE_VERSION, self.author.to_bytes(), self.count]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ChainFileHeader:
        """Read item 0; ``EncodingError`` if it is not a conode chain file header."""
        fields = encoding.decode(data)
        if type(fields) is not list or len(fields) != 4 or fields[0] != CHAIN_FILE_MAGIC:
            raise EncodingError("not a conode chain export file")
        _magic, version, author, count = fields
        if version != CHAIN_FILE_VERSION or type(version) is not int:
            raise EncodingError(f"unsupported chain export file version {version!r}")
        if type(count) is not int or count < 0:
            raise EncodingError(f"bad record count {count!r} in the header")
        return cls(AgentKey.from_bytes(author), count)


def write_chain_file(path: Path, header: ChainFileHeader, blobs: Iterable[bytes]) -> int:
    """Write ``header`` and the first ``header.count`` blobs to ``path`` atomically; bytes written.

    ``ValueError`` if ``blobs`` holds fewer records than the header counts;
    ``StorageError`` if the file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    written = 0
    try:
        with open(tmp, "xb") as file:
            written += _write_item(file, header.to_bytes())
            done = 0
            if header.count:
                for blob in blobs:
                    written += _write_item(file, blob)
                    done += 1
                    if done == header.count:
                        break
            if done != header.count:
                raise ValueError(f"the header counts {header.count} records, {done} were given")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return written


class ChainFile:
    """An export file open for reading: ``header``, then iterate for the record blobs once.

    Iterating raises ``EncodingError`` at the first framing problem: a bad item
    head, a record over the size limit, fewer or more records than the header
    counts, or a first record by another author than the header's.
    """

    __slots__ = ("_file", "_path", "_started", "header")

    def __init__(self, path: Path) -> None:
        """Open ``path`` and read its header (``EncodingError``/``StorageError`` if it cannot)."""
        self._path = Path(path)
        self._started = False
        try:
            self._file: BinaryIO = open(self._path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise StorageError(f"cannot read {self._path}: {exc.strerror or exc}") from exc
        try:
            data = _read_item(self._file, _MAX_HEADER_SIZE, self._path)
            if data is None:
                raise EncodingError(f"{self._path} is empty")
            try:
                self.header = ChainFileHeader.from_bytes(data)
            except EncodingError as exc:
                raise EncodingError(f"{self._path}: {exc}") from exc
        except BaseException:
            self._file.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise ValueError("a ChainFile can be iterated once")
        self._started = True
        return self._blobs()

    def _blobs(self) -> Iterator[bytes]:
        expected = self.header.count
        for position in range(expected):
            blob = _read_item(self._file, _MAX_RECORD_SIZE, self._path)
            if blob is None:
                raise EncodingError(
                    f"{self._path} ends after {position} of its {expected} records (truncated?)"
                )
            if position == 0:
                self._check_author(blob)
            yield blob
        if _read_item(self._file, _MAX_RECORD_SIZE, self._path) is not None:
            raise EncodingError(f"{self._path} has data after its {expected} records")

    def _check_author(self, blob: bytes) -> None:
        try:
            author = Record.from_bytes(blob).action.author
        except EncodingError:
            return  # the chain check names this record's format violation
        if author != self.header.author:
            raise EncodingError(
                f"the header names {self.header.author.short()} "
                f"but the first record is by {author.short()}"
            )

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Self:
        """The open file; closed when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the file."""
        self.close()


def verify_blobs(
    blobs: Iterable[bytes], on_record: Callable[[int], None] | None = None
) -> Violation | None:
    """``verify_encoded_chain`` over ``blobs``, calling ``on_record(n)`` after each record read.

    An ``EncodingError`` raised by ``blobs`` itself (a framing problem in a
    file) becomes a ``format`` violation at the position where it happened.
    """
    counted = _Counted(blobs, on_record)
    violation = verify_encoded_chain(counted)
    if violation is None and counted.problem is not None:
        return Violation("format", str(counted.problem), counted.read)
    return violation


class _Counted:
    """Blobs passed through, counted, with the first ``EncodingError`` kept instead of raised."""

    def __init__(self, blobs: Iterable[bytes], on_record: Callable[[int], None] | None) -> None:
        self._blobs = blobs
        self._on_record = on_record
        self.read = 0
        self.problem: EncodingError | None = None

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._blobs)
        while True:
            try:
                blob = next(iterator)
            except StopIteration:
                return
            except EncodingError as exc:
                self.problem = exc
                return
            self.read += 1
            if self._on_record is not None:
                self._on_record(self.read)
            yield blob


def _write_item(file: BinaryIO, data: bytes) -> int:
    head = _item_head(len(data))
    file.write(head)
    file.write(data)
    return len(head) + len(data)


def _item_head(length: int) -> bytes:
    """The shortest CBOR head of a byte string of ``length`` bytes."""
    major = _MAJOR_BYTES << 5
    if length < 24:
        return bytes((major | length,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes((major | info,)) + length.to_bytes(size, "big")
    raise ValueError("a byte string longer than 2**64 bytes")


def _read_item(file: BinaryIO, limit: int, path: Path) -> bytes | None:
    """The next byte string of the sequence; None at a clean end of file."""
    try:
        first = file.read(1)
        if not first:
            return None
        initial = first[0]
        info = initial & 0x1F
        if initial >> 5 != _MAJOR_BYTES or info > 27:
            raise EncodingError(f"{path}: not a chain export file (bad item head {initial:#04x})")
        if info < 24:
            length = info
        else:
            size = 1 << (info - 24)
            length = int.from_bytes(_read_exactly(file, size, path), "big")
            shortest = 24 if size == 1 else 1 << (4 * size)
            if length < shortest:
                raise EncodingError(f"{path}: an item head is not in its shortest form")
        if length > limit:
            raise EncodingError(f"{path}: an item of {length} bytes is over the {limit} limit")
        return _read_exactly(file, length, path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_exactly(file: BinaryIO, size: int, path: Path) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise EncodingError(f"{path} ends in the middle of an item (truncated?)")
    return data

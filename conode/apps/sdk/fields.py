"""The SDK's fields: the schema of an entry, read and written field by field (``Text``, ``Int``,
``Hash``, ``Map`` …); a structural failure is a ``SchemaError`` naming the field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from conode.errors import EncodingError
from conode.hashes import TypedHash
from conode.validation.schema import INT63, SchemaError

if TYPE_CHECKING:
    pass

__all__ = ["Bool", "Bytes", "Field", "Hash", "Int", "ListOf", "Map", "OneOf", "Optional", "Text"]


class Field:
    """One value's shape: ``read`` checks a decoded CBOR value, ``write`` makes one."""

    __slots__ = ()

    def read(self, value: Any, path: str) -> Any:
        """The checked value (typed hashes read, lists as tuples); ``SchemaError`` naming ``path``."""
        raise NotImplementedError

    def write(self, value: Any, path: str) -> Any:
        """The CBOR value for ``value`` (typed hashes to bytes); ``SchemaError`` naming ``path``."""
        return self.read(value, path)

    def describe(self) -> str:
        """The shape in words (for errors, help and docs)."""
        raise NotImplementedError

    @property
    def optional(self) -> bool:
        """True if the value may be absent or null."""
        return False


def _fail(path: str, what: str) -> SchemaError:
    return SchemaError(f"{path}: must be {what}")


@dataclass(frozen=True, slots=True)
class Text(Field):
    """Text of ``min_len`` to ``max_len`` characters, optionally matching ``pattern`` whole."""

    max_len: int
    min_len: int = 0
    pattern: str | None = None

    def read(self, value: Any, path: str) -> str:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        shape = f"text of {self.min_len} to {self.max_len} characters"
        return shape if self.pattern is None else f"{shape} matching {self.pattern}"


@dataclass(frozen=True, slots=True)
class Int(Field):
    """An integer in ``[lo, hi]`` (amounts in minor units, times in microseconds: never floats)."""

    lo: int = -INT63
    hi: int = INT63

    def read(self, value: Any, path: str) -> int:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return f"an integer in [{self.lo}, {self.hi}]"


@dataclass(frozen=True, slots=True)
class Bool(Field):
    """True or false."""

    def read(self, value: Any, path: str) -> bool:
        if type(value) is not bool:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True, slots=True)
class Bytes(Field):
    """A byte string of ``min_len`` to ``max_len`` bytes."""

    max_len: int
    min_len: int = 0

    def read(self, value: Any, path: str) -> bytes:
        if type(value) is not bytes or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return f"{self.min_len} to {self.max_len} bytes"


@dataclass(frozen=True, slots=True)
class Hash(Field):
    """A typed hash of class ``cls`` (its 33-byte wire form); read as a ``cls`` value."""

    cls: type[TypedHash]

    def read(self, value: Any, path: str) -> TypedHash:
        if type(value) is not bytes:
            raise _fail(path, self.describe())
        try:
            return self.cls.from_bytes(value)
        except EncodingError as exc:
            raise SchemaError(f"{path}: {exc}") from exc

    def write(self, value: Any, path: str) -> bytes:
        if isinstance(value, self.cls):
            return value.to_bytes()
        return self.read(value, path).to_bytes()

    def describe(self) -> str:
        return f"{self.cls.__name__} bytes"


@dataclass(frozen=True, slots=True)
class Optional(Field):
    """``inner``, or absent, or null (read as ``None``)."""

    inner: Field

    def read(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.read(value, path)

    def write(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.write(value, path)

    def describe(self) -> str:
        return f"{self.inner.describe()}, or null"

    @property
    def optional(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class ListOf(Field):
    """A list of ``min_len`` to ``max_len`` items of ``item``; read as a tuple."""

    item: Field
    max_len: int
    min_len: int = 0
    unique: bool = False
    """No item may appear twice (compared as read)."""

    def read(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not list or not self.min_len <= len(value) <= self.max_len:
            raise _fail(path, self.describe())
        items = tuple(self.item.read(v, f"{path}[{i}]") for i, v in enumerate(value))
        self._check_unique(items, path)
        return items

    def write(self, value: Any, path: str) -> list[Any]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise _fail(path, self.describe())
        items = [self.item.write(v, f"{path}[{i}]") for i, v in enumerate(value)]
        self.read(items, path)
        return items

    def _check_unique(self, items: tuple[Any, ...], path: str) -> None:
        if not self.unique:
            return
        seen: list[Any] = []
        for i, item in enumerate(items):
            if item in seen:
                raise SchemaError(f"{path}[{i}]: appears twice")
            seen.append(item)

    def describe(self) -> str:
        unique = " different" if self.unique else ""
        return (
            f"a list of {self.min_len} to {self.max_len}{unique} items, each {self.item.describe()}"
        )


@dataclass(frozen=True, slots=True)
class OneOf(Field):
    """One of a fixed set of text or integer choices."""

    choices: tuple[str | int, ...]

    def __init__(self, *choices: str | int) -> None:
        if not choices or any(type(c) not in (str, int) for c in choices):
            raise ValueError("OneOf takes one or more text or integer choices")
        object.__setattr__(self, "choices", tuple(choices))

    def read(self, value: Any, path: str) -> Any:
        # type() and not ==: True == 1, and "1" is not 1
        if not any(type(value) is type(c) and value == c for c in self.choices):
            raise _fail(path, self.describe())
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)


@dataclass(frozen=True, slots=True, eq=False)
class Map(Field):
    """A map with exactly these fields (optional ones may be absent); read as a read-only map."""

    fields: Mapping[str, Field]

    def __post_init__(self) -> None:
        for name, item in self.fields.items():
            if type(name) is not str or not name:
                raise ValueError(f"field names are non-empty text, not {name!r}")
            if not isinstance(item, Field):
                raise TypeError(f"field {name!r} is not a Field")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def read(self, value: Any, path: str) -> Mapping[str, Any]:
        if type(value) is not dict:
            raise _fail(path, "a map")
        extra = sorted(set(value) - set(self.fields), key=str)
        if extra:
            raise SchemaError(f"{path}: has unknown fields {', '.join(map(str, extra))}")
        out: dict[str, Any] = {}
        for name, item in self.fields.items():
            where = _join(path, name)
            if name not in value and not item.optional:
                raise SchemaError(f"{where}: is missing ({item.describe()})")
            out[name] = item.read(value.get(name), where)
        return MappingProxyType(out)

    def write(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(path, "a map")
        extra = sorted(set(value) - set(self.fields), key=str)
        if extra:
            raise SchemaError(f"{path}: has unknown fields {', '.join(map(str, extra))}")
        out: dict[str, Any] = {}
        for name, item in self.fields.items():
            where = _join(path, name)
            if value.get(name) is None and item.optional:
                continue  # absent and null read alike; absent is shorter
            if name not in value:
                raise SchemaError(f"{where}: is missing ({item.describe()})")
            out[name] = item.write(value[name], where)
        self.read(out, path)
        return out

    def describe(self) -> str:
        return "a map of " + ", ".join(f"{n}: {f.describe()}" for n, f in self.fields.items())


def _join(path: str, name: str) -> str:
    return name if not path else f"{path}.{name}"

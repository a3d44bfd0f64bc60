"""Structural checks of decoded CBOR maps: the one place entry shapes are read.

Every reader raises ``SchemaError`` (an ``EncodingError``) with the field's
name and what was wrong, so that a malformed entry becomes one clear verdict
(``Invalid("schema", ...)``) or one clear CLI line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from conode.errors import EncodingError
from conode.hashes import TypedHash

__all__ = [
    "SchemaError",
    "bool_field",
    "bytes_field",
    "hash_field",
    "int_field",
    "list_field",
    "map_value",
    "opt_hash_field",
    "str_field",
]

H = TypeVar("H", bound=TypedHash)

INT63 = (1 << 63) - 1


class SchemaError(EncodingError):
    """A decoded value does not have the shape its type demands."""


def map_value(
    value: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()
) -> Mapping[str, Any]:
    """``value`` as a map with exactly the ``required`` keys (and perhaps ``optional`` ones)."""
    if type(value) is not dict:
        raise SchemaError(f"{what} must be a map")
    if value.keys() == required:
        return value  # the usual case, with one set comparison
    keys = set(value)
    missing = required - keys
    if missing:
        raise SchemaError(f"{what} lacks {', '.join(sorted(missing))}")
    extra = keys - required - optional
    if extra:
        raise SchemaError(f"{what} has unknown fields {', '.join(sorted(extra))}")
    return value


def int_field(m: Mapping[str, Any], key: str, lo: int = -INT63, hi: int = INT63) -> int:
    """An integer field within ``[lo, hi]``."""
    value = m.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise SchemaError(f"{key} must be an integer in [{lo}, {hi}]")
    return value


def str_field(m: Mapping[str, Any], key: str, max_len: int, min_len: int = 0) -> str:
    """A text field of ``min_len`` to ``max_len`` characters."""
    value = m.get(key)
    if type(value) is not str or not min_len <= len(value) <= max_len:
        raise SchemaError(f"{key} must be text of {min_len} to {max_len} characters")
    return value


def bool_field(m: Mapping[str, Any], key: str) -> bool:
    """A boolean field."""
    value = m.get(key)
    if type(value) is not bool:
        raise SchemaError(f"{key} must be true or false")
    return value


def bytes_field(m: Mapping[str, Any], key: str, size: int) -> bytes:
    """A byte-string field of exactly ``size`` bytes."""
    value = m.get(key)
    if type(value) is not bytes or len(value) != size:
        raise SchemaError(f"{key} must be {size} bytes")
    return value


def list_field(m: Mapping[str, Any], key: str, max_len: int) -> list[Any]:
    """A list field of at most ``max_len`` items."""
    value = m.get(key)
    if type(value) is not list or len(value) > max_len:
        raise SchemaError(f"{key} must be a list of at most {max_len} items")
    return value


def hash_field(m: Mapping[str, Any], key: str, cls: type[H]) -> H:
    """A typed hash field (33-byte wire form) of class ``cls``."""
    value = m.get(key)
    if type(value) is not bytes:
        raise SchemaError(f"{key} must be {cls.__name__} bytes")
    try:
        return cls.from_bytes(value)
    except EncodingError as exc:
        raise SchemaError(f"{key}: {exc}") from exc


def opt_hash_field(m: Mapping[str, Any], key: str, cls: type[H]) -> H | None:
    """A typed hash field that may be null."""
    return None if m.get(key) is None else hash_field(m, key, cls)

"""App functions called from outside: parameters bound to a function's signature, results as JSON.

``conode call APP FN k=v`` sends text; ``bind_params`` converts it where the
function's annotation is ``int``, ``bool`` or a typed hash, and gives an
``agent`` parameter the hosted agent named by ``--as`` (or the only one).
``jsonable`` turns what a function returns into JSON values.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from conode.errors import EncodingError
from conode.hashes import AgentKey, TypedHash
from conode.numerals import parse_whole

__all__ = ["AgentResolver", "bind_params", "jsonable"]

AgentResolver = Callable[[str | None, bool], AgentKey]
"""``resolve(text, hosted)``: an agent from a name or printable key (None: the only hosted one)."""


@functools.cache
def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s resolved annotations, once per function (resolving them took 1 ms a call)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # annotations that do not resolve: take the text as it comes
        return {}


def bind_params(
    what: str,
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    agent: str | None,
    resolve: AgentResolver,
) -> dict[str, Any]:
    """The keyword arguments for ``fn`` (after its ``api``); ``ValueError`` naming what does not fit."""
    signature = inspect.signature(fn)
    accepted = list(signature.parameters.values())[1:]
    names = [p.name for p in accepted]
    hints = _hints(fn)
    usage = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}?" for p in accepted
    )
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"{what} takes no parameter {', '.join(unknown)} (it takes: {usage})")
    kwargs = {
        name: _convert(name, value, hints.get(name), resolve)
        for name, value in params.items()
        if name != "agent"
    }
    if "agent" in names:
        if agent is not None and "agent" in params:
            raise ValueError(f"{what}: name the agent once (--as or agent=)")
        given = agent if agent is not None else params.get("agent")
        kwargs["agent"] = resolve(given, True) if given is None or isinstance(given, str) else given
    elif agent is not None:
        raise ValueError(f"{what} does not act as an agent (no --as)")
    try:
        signature.bind(None, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{what}: {exc} (it takes: {usage})") from exc
    return kwargs


def _convert(name: str, value: Any, hint: Any, resolve: AgentResolver) -> Any:
    """Text typed on a command line as the annotated type, where that is one plain type."""
    if not isinstance(value, str):
        return value
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(inner) != 1:
            return value  # AgentKey | str and the like: the function reads the text itself
        hint = inner[0]
    if hint is bool:
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise ValueError(f"{name}: {value!r} is not true or false")
    if hint is int:
        text = value.strip()
        try:  # ASCII digits only: int() would also take other scripts' digits and 1_000
            number = parse_whole(text.removeprefix("-"), name)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a whole number") from None
        return -number if text.startswith("-") else number
    if hint is AgentKey:
        return resolve(value, False)
    if isinstance(hint, type) and issubclass(hint, TypedHash):
        try:
            return hint.parse(value)
        except EncodingError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return value


def jsonable(value: Any) -> Any:
    """A function's result as JSON values: hashes as their printable text, tuples as lists."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, TypedHash):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)

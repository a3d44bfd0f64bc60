"""The lookout's functions, exposed by the node as ``conode call lookout FN``.

Reading functions build the board from the lookout records the node holds;
posting functions commit one entry for a hosted agent (and index a signal or
significance under each of its sectors with a ``lookout/sector`` link).
Parameters may be typed values or their printable text (as the CLI passes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conode.apps.lookout.board import Item, board
from conode.apps.lookout.entries import (
    COMMENT,
    POLL,
    RESPOND,
    SECTOR_LINK,
    SIGN,
    SIGNAL,
    SIGNIFICANCE,
    app,
    sector_anchor,
)
from conode.apps.sdk import AppAPI
from conode.hashes import ActionHash, AgentKey

__all__ = [
    "board_function",
    "comment",
    "feed_function",
    "poll",
    "respond",
    "sign",
    "signal",
    "significance",
    "thread",
]


def _action(value: ActionHash | str) -> ActionHash:
    return value if isinstance(value, ActionHash) else ActionHash.parse(value)


def _agent(value: AgentKey | str) -> AgentKey:
    return value if isinstance(value, AgentKey) else AgentKey.parse(value)


def _texts(value: Sequence[str] | str) -> list[str]:
    """A list of text, or one comma-separated text (as typed on a command line)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _actions(value: Sequence[ActionHash | str] | str) -> list[ActionHash]:
    items: Sequence[ActionHash | str] = _texts(value) if isinstance(value, str) else value
    return [_action(v) for v in items]


async def _index(api: AppAPI, agent: AgentKey, item: ActionHash, sectors: list[str]) -> None:
    for sector in sectors:
        await api.link(agent, SECTOR_LINK, sector_anchor(sector), item, sector)


# -- reading ----------------------------------------------------------------------------------------


@app.function("board")
def board_function(api: AppAPI) -> dict[str, Any]:
    """The whole board: signals, signs and significances, newest first."""
    value = board(api.records()).to_value()
    return {stage: [_named(api, i) for i in items] for stage, items in value.items()}


@app.function("feed")
def feed_function(api: AppAPI, sector: str) -> list[dict[str, Any]]:
    """The items of one sector, newest first."""
    return [_named(api, i.to_value()) for i in board(api.records()).feed(sector)]


@app.function
def thread(api: AppAPI, item: ActionHash | str) -> list[dict[str, Any]]:
    """An item with what it cites and what cites it, each with its discussion in full."""
    return [_discussed(api, i) for i in board(api.records()).thread(_action(item))]


def _discussed(api: AppAPI, item: Item) -> dict[str, Any]:
    """An item's summary plus its comments' text (the board gives only how many there are)."""
    value = _named(api, item.to_value())
    value["discussion"] = [
        {
            "hash": str(c.hash),
            "author": str(c.author),
            "author_name": api.name_of(c.author),
            "timestamp": c.timestamp,
            "text": c.text,
        }
        for c in item.comments
    ]
    return value


def _named(api: AppAPI, value: dict[str, Any]) -> dict[str, Any]:
    """An item's JSON value with people named beside their keys (``?`` while a chain is not held):
    ``author_name``, each response's ``author_name`` and a significance's ``coop_name``."""
    out = {**value, "author_name": api.name_of(_agent(value["author"]))}
    out["responses"] = [
        {**r, "author_name": api.name_of(_agent(r["author"]))} for r in value["responses"]
    ]
    if out.get("coop") is not None:
        out["coop_name"] = api.name_of(_agent(out["coop"]))
    return out


# -- posting ----------------------------------------------------------------------------------------


@app.function
async def signal(
    api: AppAPI,
    agent: AgentKey | str,
    title: str,
    source: str,
    text: str = "",
    sectors: Sequence[str] | str = (),
    location: str | None = None,
) -> str:
    """Post a signal; returns its action hash."""
    tags = _texts(sectors)
    entry = app.entry(
        SIGNAL, title=title, text=text, source=source, sectors=tags, location=location
    )
    key = _agent(agent)
    posted = await api.commit(key, SIGNAL, entry)
    await _index(api, key, posted, tags)
    return str(posted)


@app.function
async def sign(
    api: AppAPI,
    agent: AgentKey | str,
    title: str,
    signals: Sequence[ActionHash | str] | str,
    text: str = "",
) -> str:
    """Post a sign citing signals; returns its action hash."""
    entry = app.entry(SIGN, title=title, text=text, signals=_actions(signals))
    return str(await api.commit(_agent(agent), SIGN, entry))


@app.function
async def significance(
    api: AppAPI,
    agent: AgentKey | str,
    title: str,
    signs: Sequence[ActionHash | str] | str,
    text: str = "",
    sectors: Sequence[str] | str = (),
    coop: AgentKey | str | None = None,
    suggested: Sequence[str] = (),
) -> str:
    """Post a significance citing signs, for sectors or a co-op; returns its action hash."""
    tags = _texts(sectors)
    entry = app.entry(
        SIGNIFICANCE,
        title=title,
        text=text,
        sectors=tags,
        coop=None if coop is None else _agent(coop),
        suggested=list(suggested),
        signs=_actions(signs),
    )
    key = _agent(agent)
    posted = await api.commit(key, SIGNIFICANCE, entry)
    await _index(api, key, posted, tags)
    return str(posted)


@app.function
async def comment(api: AppAPI, agent: AgentKey | str, item: ActionHash | str, text: str) -> str:
    """Comment on a signal, sign or significance."""
    entry = app.entry(COMMENT, item=_action(item), text=text)
    return str(await api.commit(_agent(agent), COMMENT, entry))


@app.function
async def poll(api: AppAPI, agent: AgentKey | str, item: ActionHash | str, choice: str) -> str:
    """Vote ``advance`` or ``hold`` on an item (once per item)."""
    entry = app.entry(POLL, item=_action(item), choice=choice)
    return str(await api.commit(_agent(agent), POLL, entry))


@app.function
async def respond(
    api: AppAPI,
    agent: AgentKey | str,
    significance: ActionHash | str,
    response: ActionHash | str,
    kind: str,
    note: str | None = None,
) -> str:
    """Link a significance to a response: an exchange want or a proposal."""
    entry = app.entry(
        RESPOND,
        significance=_action(significance),
        response=_action(response),
        kind=kind,
        note=note,
    )
    return str(await api.commit(_agent(agent), RESPOND, entry))

"""Reading an entry type's records in batches from where a reader last stopped (a cursor kept in
the store's meta), for the app host's watchers and text index."""

from __future__ import annotations

from collections.abc import Iterator

from conode.chain import Record
from conode.store import NodeStore

__all__ = ["unseen_batches"]


def unseen_batches(
    store: NodeStore, cursor: str, entry_type: str, batch: int
) -> Iterator[list[tuple[int, Record]]]:
    """Batches of at most ``batch`` (row id, record) of ``entry_type`` stored after the position
    kept under meta key ``cursor``. The cursor moves past a batch when the caller asks for the
    next one (or ends the loop normally): a batch left unfinished is read again next time."""
    raw = store.get_meta(cursor)
    last = 0 if raw is None else int.from_bytes(raw, "big")
    while True:
        rows = store.records_after(last, [entry_type], batch)
        if rows:
            yield rows
            last = rows[-1][0]
            store.set_meta(cursor, last.to_bytes(8, "big"))
        if len(rows) < batch:
            return

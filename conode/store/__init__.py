"""The SQLite store, a thin shell: the node's source chains (and later DHT ops, receipts, peers).

``Store.open(path)`` creates or opens the node's one SQLite file and migrates
its schema; see ``conode.store.sqlite`` for how appends stay atomic and
durable, and ``conode.store.migrations`` for the versioned schema.
"""

from conode.store.migrations import APPLICATION_ID, MIGRATIONS
from conode.store.node import NodeStore, Receipt
from conode.store.sqlite import BUSY_TIMEOUT_MS, Imported, Store

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "Imported",
    "NodeStore",
    "Receipt",
    "Store",
]

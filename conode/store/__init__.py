"""The SQLite store, a thin shell: everything a node keeps, in one file.

``Store`` holds source chains (records, kept heads and activity state) and
the index of link records by base; ``NodeStore`` adds what only a running
node keeps: records waiting for their gap (pending), the publishing queue
and receipts, warrants, known peers, countersigning sessions, metadata (the
governance head, app cursors), app bundles and approvals, the apps' text
index and each app's key-value state. ``Store.open(path)`` creates or opens
the file and migrates its schema; see ``conode.store.sqlite`` for how
appends stay atomic and durable, and ``conode.store.migrations`` for the
versioned schema.
"""

from conode.store.migrations import APPLICATION_ID, MIGRATIONS
from conode.store.node import NodeStore, Receipt
from conode.store.sharded import Loose, ShardStore
from conode.store.sqlite import Imported, Store
from conode.store.storefile import BUSY_TIMEOUT_MS

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "Imported",
    "Loose",
    "NodeStore",
    "Receipt",
    "ShardStore",
    "Store",
]

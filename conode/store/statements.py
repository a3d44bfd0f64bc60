"""The SQL text of ``Store``'s statements (``conode.store.sqlite``), in one place.

Python's sqlite3 caches prepared statements by their text, so these constants are
prepared once per connection and reused.
"""

from __future__ import annotations

from typing import Final

SELECT_HEAD: Final = "SELECT seq, hash, timestamp, closed FROM chains WHERE author = ?"
UPSERT_HEAD: Final = """
    INSERT INTO chains (author, seq, hash, timestamp, closed) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (author) DO UPDATE SET
        seq = excluded.seq, hash = excluded.hash,
        timestamp = excluded.timestamp, closed = excluded.closed
"""
INSERT_RECORD: Final = """
    INSERT INTO records (author, seq, hash, kind, timestamp, entry_type, action, signature, entry)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_AUTHORS: Final = "SELECT author FROM chains ORDER BY author"
SELECT_PARTS: Final = """
    SELECT hash, action, signature, entry FROM records
    WHERE author = ? AND seq >= ? ORDER BY seq
"""
SELECT_ROWS: Final = """
    SELECT seq, hash, kind, timestamp, entry_type, action, signature, entry FROM records
    WHERE author = ? ORDER BY seq
"""
SELECT_BY_HASH: Final = "SELECT hash, action, signature, entry FROM records WHERE hash = ?"
SELECT_HASH_AT: Final = "SELECT hash FROM records WHERE author = ? AND seq = ?"
COUNT: Final = "SELECT count(*) FROM records WHERE author = ?"
SET_ACTIVITY: Final = "UPDATE chains SET activity = ?, balance = ? WHERE author = ?"
SELECT_ACTIVITY: Final = "SELECT activity FROM chains WHERE author = ?"
UPSERT_SESSION: Final = """
    INSERT INTO sessions (id, agent, record) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET agent = excluded.agent, record = excluded.record
"""
DELETE_SESSION: Final = "DELETE FROM sessions WHERE id = ?"
QUEUE_PUBLISHING: Final = "INSERT OR IGNORE INTO publishing (record, created_at) VALUES (?, ?)"
INSERT_LINK: Final = "INSERT OR IGNORE INTO links (base, entry_type, record) VALUES (?, ?, ?)"
INSERT_POSITION: Final = (
    "INSERT OR IGNORE INTO payer_positions (payer, seq, record) VALUES (?, ?, ?)"
)
SELECT_NAMING: Final = """
    SELECT r.action, r.signature, r.entry FROM payer_positions AS p
    JOIN records AS r ON r.hash = p.record
    WHERE p.payer = ? AND p.seq = ?
"""
SELECT_LINKS: Final = """
    SELECT l.record, r.action, r.signature, r.entry FROM links AS l
    JOIN {table} AS r ON r.hash = l.record
    WHERE l.base = ? AND l.record > ? {type_filter}
    ORDER BY l.record LIMIT ?
"""
SELECT_LINKS_ANY: Final = SELECT_LINKS.format(table="records", type_filter="")
SELECT_LINKS_OF_TYPE: Final = SELECT_LINKS.format(
    table="records", type_filter="AND l.entry_type = ?"
)
SELECT_LOOSE_LINKS_ANY: Final = SELECT_LINKS.format(table="loose_records", type_filter="")
SELECT_LOOSE_LINKS_OF_TYPE: Final = SELECT_LINKS.format(
    table="loose_records", type_filter="AND l.entry_type = ?"
)
SELECT_LINK_HASHES: Final = "SELECT record FROM links WHERE base = ?"
SELECT_LINK_HASHES_OF_TYPE: Final = "SELECT record FROM links WHERE base = ? AND entry_type = ?"
DELETE_LINK: Final = "DELETE FROM links WHERE base = ? AND entry_type = ? AND record = ?"

ACTIONS_BETWEEN: Final = "SELECT hash FROM records WHERE hash BETWEEN ?1 AND ?2 ORDER BY hash LIMIT 2"
ACTIONS_BETWEEN_ANYWHERE: Final = """
    SELECT hash FROM records WHERE hash BETWEEN ?1 AND ?2
    UNION SELECT hash FROM loose_records WHERE hash BETWEEN ?1 AND ?2
    ORDER BY hash LIMIT 2
"""
IN_CHAINS: Final = "SELECT 1 FROM records WHERE hash = ?"
IN_LOOSE: Final = "SELECT 1 FROM loose_records WHERE hash = ?"
KEEP_LOOSE: Final = """
    INSERT INTO loose_records (hash, author, seq, why, kept_at, action, signature, entry)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (hash) DO UPDATE SET
        why = max(why, excluded.why), kept_at = max(kept_at, excluded.kept_at)
"""
SELECT_LOOSE: Final = "SELECT hash, action, signature, entry FROM loose_records WHERE hash = ?"
SELECT_LOOSE_WHY: Final = (
    "SELECT why, hash, action, signature, entry FROM loose_records WHERE hash = ?"
)
SELECT_LOOSE_FOR: Final = (
    "SELECT hash, action, signature, entry FROM loose_records WHERE why = ? ORDER BY hash"
)
SELECT_LOOSE_GENESIS: Final = """
    SELECT hash, action, signature, entry FROM loose_records WHERE author = ? AND seq = 0
    ORDER BY hash LIMIT 1
"""
SET_LOOSE_WHY: Final = "UPDATE loose_records SET why = ? WHERE hash = ?"
EVICT_LOOSE: Final = "DELETE FROM loose_records WHERE why = ? AND kept_at < ?"
COUNT_LOOSE: Final = "SELECT why, count(*) FROM loose_records GROUP BY why"
DELETE_LOOSE: Final = "DELETE FROM loose_records WHERE hash = ?"

SELECT_KEPT_HEADS: Final = "SELECT author, seq, hash FROM chains"
SELECT_RECORD_AT: Final = (
    "SELECT hash, action, signature, entry FROM records WHERE author = ? AND seq = ?"
)

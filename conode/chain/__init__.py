"""The source chain: actions, records and the pure rules of appending (no I/O)."""

from conode.chain.records import (
    FORMAT_VERSION,
    Action,
    ActionKind,
    ChainHead,
    Record,
    author_record,
    link_base,
    sign_record,
)
from conode.chain.verify import Violation, check_append, verify_chain, verify_encoded_chain

__all__ = [
    "FORMAT_VERSION",
    "Action",
    "ActionKind",
    "ChainHead",
    "Record",
    "Violation",
    "author_record",
    "link_base",
    "sign_record",
    "check_append",
    "verify_chain",
    "verify_encoded_chain",
]

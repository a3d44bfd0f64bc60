"""Prints the worked example of docs/protocol.md from the real code (tests check the doc against it)."""

from __future__ import annotations

import hashlib

from conode import encoding
from conode.chain import ActionKind, ChainHead, author_record
from conode.crypto import SIG_ACTION, Signer
from conode.hashes import AgentKey


def example() -> dict[str, str]:
    """Every value the document shows, as hex or text."""
    signer = Signer(bytes(range(32)))
    agent = AgentKey(signer.public_key)
    genesis = author_record(
        signer, None, kind=ActionKind.GENESIS, timestamp=1_700_000_000_000_000, entry={"hello": "co-ops"}
    )
    second = author_record(
        signer,
        ChainHead.after(genesis),
        kind=ActionKind.CREATE,
        timestamp=1_700_000_000_000_001,
        entry={"n": 1},
        entry_type="demo/n",
    )
    return {
        "seed": bytes(range(32)).hex(),
        "public_key": signer.public_key.hex(),
        "agent": str(agent),
        "entry_bytes": (genesis.entry or b"").hex(),
        "entry_hash": genesis.action.entry_hash.raw.hex() if genesis.action.entry_hash else "",
        "entry_hash_check": hashlib.blake2b(
            genesis.entry or b"", digest_size=32, person=b"conode-ent"
        ).hexdigest(),
        "action_bytes": genesis.action_bytes.hex(),
        "action_hash": genesis.hash.raw.hex(),
        "action_hash_printable": str(genesis.hash),
        "signed_message": (SIG_ACTION + genesis.action_bytes).hex(),
        "signature": genesis.signature.hex(),
        "record_bytes": genesis.to_bytes().hex(),
        "second_action_bytes": second.action_bytes.hex(),
        "second_entry_bytes": (second.entry or b"").hex(),
        "encoded_int_map": encoding.encode({"b": 1, "aa": [2, b"\x03"]}).hex(),
    }


if __name__ == "__main__":
    for name, value in example().items():
        print(f"{name}: {value}")

"""Append to a store until killed, printing ``ACK <seq>`` once each append has returned.

Run by ``test_crash.py`` as ``python crash_writer.py <store> <seed-hex> <rng-seed>``: it
continues the chain of the key ``seed-hex`` from the stored head, with a mix of
single appends and batches of 2-5 records, and entries of varied size so that a
transaction spans one or several pages. ``READY <seq>`` (``-1``: no chain yet)
is printed once the store is open.
"""

from __future__ import annotations

import random
import sys

from conode.chain import ActionKind, ChainHead, author_record
from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.store import Store


def main(path: str, seed_hex: str, rng_seed: str) -> None:
    signer = Signer(bytes.fromhex(seed_hex))
    rng = random.Random(int(rng_seed))
    out = sys.stdout
    with Store.open(path) as store:
        head = store.head(AgentKey(signer.public_key))
        out.write(f"READY {-1 if head is None else head.seq}\n")
        out.flush()
        while True:
            batch = []
            for _ in range(1 if rng.random() < 0.5 else rng.randint(2, 5)):
                if head is None:
                    record = author_record(
                        signer, None, kind=ActionKind.GENESIS, timestamp=0, entry={"crash": 1}
                    )
                else:
                    record = author_record(
                        signer,
                        head,
                        kind=ActionKind.CREATE,
                        timestamp=head.timestamp + 1,
                        entry={"pad": rng.randbytes(rng.choice((8, 200, 3000, 9000)))},
                        entry_type="crash",
                    )
                batch.append(record)
                head = ChainHead.after(record)
            store.append(batch)
            assert head is not None
            out.write(f"ACK {head.seq}\n")
            out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])

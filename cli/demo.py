"""``conode demo``: a co-op and two members, their chains, and a peer that re-checks one.

Everything runs in-process through the same functions the commands use
(``cli.ops``): two data dirs (the co-op's node and a peer validator), three
agents with passphrase-less keys, some entries on each chain, every chain
verified, one chain exported, imported and verified at the peer, and a copy
of the export with one flipped bit that verification catches.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cli import ops
from cli.datadir import CommandError, DataDir, make_empty_dir
from conode import encoding
from conode.errors import ChainError, EncodingError
from conode.hashes import AgentKey
from conode.keyfile import PassphraseSource

__all__ = ["DemoResult", "run_demo"]

_NO_PROMPT = PassphraseSource(environ={}, interactive=False)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo showed; ``verified`` and ``tamper_detected`` are its two claims."""

    agents: int
    records: int
    verified: bool
    tamper_detected: bool
    elapsed_s: float
    data_dir: Path | None

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON object."""
        return {
            "agents": self.agents,
            "records": self.records,
            "verified": self.verified,
            "tamper_detected": self.tamper_detected,
            "elapsed_s": self.elapsed_s,
            "data_dir": None if self.data_dir is None else str(self.data_dir),
        }


def run_demo(keep: Path | None, out: TextIO) -> DemoResult:
    """Run the demo in a temporary dir (or in ``keep``: new or empty), narrating to ``out``."""
    started = time.perf_counter()
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="conode-demo-") as tmp:
            return _run(Path(tmp), out, started, kept=False)
    make_empty_dir(keep, "--keep")
    return _run(keep, out, started, kept=True)


def _run(base: Path, out: TextIO, started: float, *, kept: bool) -> DemoResult:
    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    where = f"kept in {base}" if kept else f"in {base}, removed at the end (--keep DIR keeps it)"
    say(f"conode demo: a co-op node and a peer validator, {where}")
    node = DataDir(base / "coop-node")
    node.init()

    with node.open_store() as store:
        # 1. three agents: key files (unencrypted: this is a demo) and genesis records
        names = {"riverside": "co-op", "ana": "member", "ben": "member"}
        agents: dict[str, AgentKey] = {}
        for name in names:
            info, _genesis = ops.create_agent(node, store, name, None, timestamp=ops.now_us())
            agents[name] = info.agent
        say("")
        say("1. agents, each with a key file and a genesis record:")
        for name, role in names.items():
            say(f"   {name:<10} {role:<7} {agents[name]}")

        # 2. some entries on each chain
        entries = _demo_entries(agents)
        for name, items in entries.items():
            signer = ops.load_signer(node, ops.AgentRef(agents[name], name), _NO_PROMPT)
            for entry_type, entry in items:
                ops.commit_entry(
                    store, signer, entry_type=entry_type, entry=entry, timestamp=ops.now_us()
                )
        counts = {name: store.count(agent) for name, agent in agents.items()}
        total = sum(counts.values())
        say("")
        say(f"2. committed {sum(len(v) for v in entries.values())} entries ({total} records):")
        for name, agent in agents.items():
            head = store.head(agent)
            last = None if head is None else store.get(head.hash)
            if last is None:
                raise CommandError(f"the demo lost the chain of {name}")
            say(
                f"   {name:<10} {counts[name]} records, head seq {last.action.seq} "
                f"{last.hash.short()}  last: {last.action.entry_type}"
            )

        # 3. every chain re-checked from its stored bytes
        say("")
        say("3. every chain re-checked with every chain rule:")
        node_ok = True
        for name, agent in agents.items():
            verdict = ops.verify_stored(store, agent)
            node_ok = node_ok and verdict.valid
            say(f"   {name:<10} {'valid' if verdict.valid else f'INVALID: {verdict.violation}'}")

        # 4. the co-op's chain exported to a portable file
        export = base / "riverside.chain"
        exported, size = ops.export_chain(store, agents["riverside"], export)
        say("")
        say(f"4. exported the co-op's chain: {exported} records, {size} bytes -> {export.name}")

    # 5. a peer validator with its own data dir re-checks and stores it
    peer = DataDir(base / "peer-validator")
    peer.init()
    with peer.open_store() as peer_store:
        file_verdict = ops.verify_file(export)
        header, imported = ops.import_chain_file(peer_store, export)
        _header, again = ops.import_chain_file(peer_store, export)
        peer_verdict = ops.verify_stored(peer_store, header.author)
        peer_ok = (
            file_verdict.valid
            and peer_verdict.valid
            and imported.added == exported
            and again.added == 0
            and peer_store.count(header.author) == exported
        )
        say("")
        say("5. a peer validator (its own data dir) checks the file and stores the chain:")
        say(f"   the file:  {'valid' if file_verdict.valid else file_verdict.violation}")
        say(f"   import:    {imported.added} records added (head seq {imported.head.seq})")
        say(f"   again:     {again.added} records added (importing twice is harmless)")
        say(f"   re-check:  {'valid' if peer_verdict.valid else peer_verdict.violation}")

        # 6. one flipped bit in a copy of the export
        tampered = base / "riverside-tampered.chain"
        data = bytearray(export.read_bytes())
        offset = len(data) - 1  # inside the last record's entry: covered by its entry hash
        data[offset] ^= 0x01
        tampered.write_bytes(bytes(data))
        tamper_verdict = ops.verify_file(tampered)
        try:
            ops.import_chain_file(peer_store, tampered)
            refused = ""
        except (ChainError, EncodingError) as exc:
            refused = str(exc)
        held = peer_store.count(header.author)
        unchanged = held == exported and peer_store.verify(header.author) is None
        tamper_detected = tamper_verdict.violation is not None and bool(refused) and unchanged
        say("")
        say(f"6. flipped one bit of byte {offset} in a copy ({tampered.name}):")
        say(f"   verify:    {tamper_verdict.violation or 'valid (NOT DETECTED)'}")
        say(f"   import:    {'refused' if refused else 'ACCEPTED (NOT DETECTED)'}")
        say(f"   the peer:  {'unchanged' if unchanged else 'CHANGED'}")

    elapsed = round(time.perf_counter() - started, 3)
    verified = node_ok and peer_ok
    say("")
    say(
        f"result: {len(agents)} agents, {total} records, "
        f"{'all verified' if verified else 'VERIFICATION FAILED'}, "
        f"{'tampering detected' if tamper_detected else 'TAMPERING NOT DETECTED'}, "
        f"{elapsed:.2f} s"
    )
    return DemoResult(
        agents=len(agents),
        records=total,
        verified=verified,
        tamper_detected=tamper_detected,
        elapsed_s=elapsed,
        data_dir=base if kept else None,
    )


def _demo_entries(agents: dict[str, AgentKey]) -> dict[str, list[tuple[str, encoding.Value]]]:
    """What each agent commits: amounts are integers in minor units (pence)."""
    coop, ana, ben = agents["riverside"], agents["ana"], agents["ben"]
    return {
        "riverside": [
            ("demo.profile", {"kind": "co-op", "name": "Riverside Bakery Co-op", "reg": "IP3145"}),
            ("demo.member", {"member": ana.to_bytes(), "name": "Ana Lima"}),
            ("demo.member", {"member": ben.to_bytes(), "name": "Ben Okafor"}),
            (
                "demo.offer",
                {"category": "food", "item": "sourdough loaf", "price": 450, "per_month": 400},
            ),
            (
                "demo.offer",
                {"category": "food", "item": "celebration cake", "price": 2800, "per_month": 20},
            ),
        ],
        "ana": [
            ("demo.profile", {"kind": "person", "name": "Ana Lima", "co_op": coop.to_bytes()}),
            ("demo.want", {"category": "transport", "item": "bicycle repair", "budget": 3000}),
        ],
        "ben": [
            ("demo.profile", {"kind": "person", "name": "Ben Okafor", "co_op": coop.to_bytes()}),
            ("demo.want", {"category": "housing", "item": "roof insulation", "budget": 90000}),
            ("demo.note", {"text": "can deliver bread on Saturdays", "tags": ["delivery"]}),
        ],
    }

"""A real crash test: SIGKILL a process mid-append; no acknowledged append may be lost."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.store import Store

WRITER = Path(__file__).with_name("crash_writer.py")
SEED = bytes([7]) * 32
KILLS = 24
TIME_BUDGET_S = 45.0
READY_TIMEOUT_S = 20.0

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


class Writer:
    """One ``crash_writer.py`` process, with its stdout lines gathered by a thread."""

    def __init__(self, path: Path, rng_seed: int) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), SEED.hex(), str(rng_seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            self.ready.set()

    def kill(self) -> str:
        """SIGKILL the process; its stderr (empty unless it failed on its own)."""
        running = self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        assert running, f"the writer stopped before it was killed:\n{stderr}"
        return stderr

    def acks(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("ACK ")]


@pytest.mark.slow
def test_sigkill_never_loses_an_acknowledged_append(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    path = tmp_path / "node.db"
    author = AgentKey(Signer(SEED).public_key)
    highest = -1  # the highest seq any writer acknowledged
    start = time.monotonic()
    kills = 0
    while kills < KILLS and (kills < 20 or time.monotonic() - start < TIME_BUDGET_S):
        writer = Writer(path, rng.randrange(1 << 32))
        early = kills > 0 and rng.random() < 0.2  # sometimes kill while it opens the store
        if early:
            time.sleep(rng.uniform(0.0, 0.25))
        else:
            assert writer.ready.wait(READY_TIMEOUT_S), f"writer never got ready (seed {seed})"
            time.sleep(rng.uniform(0.02, 0.3))
        writer.kill()
        kills += 1
        acks = writer.acks()
        assert acks == sorted(set(acks)), f"acks out of order (seed {seed})"
        if writer.lines and writer.lines[0].startswith("READY"):
            # a fresh writer continues exactly from what the last one left on disk
            assert int(writer.lines[0].split()[1]) >= highest
        highest = max([highest, *acks])
        with Store.open(path) as store:
            count = store.count(author)
            violation = store.verify(author)
            head = store.head(author)
        where = f"after kill {kills} (seed {seed}, {count} stored, highest ack {highest})"
        assert violation is None, f"{violation} {where}"
        assert count >= highest + 1, f"an acknowledged append was lost {where}"
        assert (head.seq if head else -1) == count - 1, where
    assert kills >= 20
    assert highest > 100, f"too few appends were made to test anything (seed {seed})"

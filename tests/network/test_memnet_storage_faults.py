"""A write that cannot be made durable never makes half a payment, and never leaves a chain held.

Two ways to make writes fail, on either party's node:

- **injected**: a store whose session writes (a session record saved, or a commit with its
  session record) raise ``StorageError`` from the k-th on, for a while, as a full disk does;
  every k, on the payer's side and on the payee's;
- **a real full filesystem**: the node's store moved onto a small tmpfs (root only, as CI
  runs), which a file then fills to the last byte; SQLite's own ``SQLITE_FULL`` comes back.

Afterwards, once the disk has room again: both chains hold the payment or neither does,
every home chain audits clean and sums to zero, no chain is held, and the next payment
commits.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from conode.chain import Record
from conode.errors import StorageError
from conode.hashes import AgentKey
from conode.node import Node
from conode.store import NodeStore
from conode.testing import TestNetwork, assert_audit_clean, settle, wait_until
from conode.validation.activity import Activity
from conode.validation.entries import PAYMENT

PAYER, PAYEE = "coop0-m0", "coop1-m0"


class FailingStore(NodeStore):
    """A ``NodeStore`` whose session writes fail from the ``first``-th on, ``times`` of them."""

    first = 0
    times = 0
    seen = 0

    def append(
        self,
        records: Sequence[Record],
        *,
        activities: Mapping[AgentKey, Activity] | None = None,
        sessions: Mapping[bytes, tuple[AgentKey, bytes] | None] | None = None,
        publish: bool = False,
    ) -> None:
        if sessions and any(saved is not None for saved in sessions.values()):
            self.seen += 1
            if self.first <= self.seen < self.first + self.times:
                raise StorageError(f"cannot append to the store {self.path}: database or disk is full")
        super().append(records, activities=activities, sessions=sessions, publish=publish)


def failing(node: Node, first: int, times: int) -> FailingStore:
    """Give a running node a ``FailingStore`` on its own file (between two of its steps)."""
    old = node.store
    store = FailingStore.open(old.path)
    store.first, store.times = first, times
    node.store = store
    old.close()
    return store


def payments(node: Node, agent: AgentKey) -> list[Record]:
    return [r for r in node.store.records(agent) if r.action.entry_type == PAYMENT]


async def assert_consistent_and_free(net: TestNetwork) -> None:
    """Both chains hold the payment or neither; books clean; nothing held; payments go on."""
    await settle(net, timeout=60)
    payer, payee = net.agents[PAYER], net.agents[PAYEE]
    paid = {len(payments(net.home[PAYER], payer)), len(payments(net.home[PAYEE], payee))}
    assert len(paid) == 1, "one chain holds the payment and the other does not"
    for node in net.nodes:
        assert not node.locks, node.sessions_held()
        assert node.store.warrants() == []
    assert_audit_clean(net)
    assert (await net.pay(PAYER, PAYEE, 3)).committed


@pytest.mark.parametrize("times", [1, 3], ids=["one write", "three writes"])
@pytest.mark.parametrize("first", [1, 2, 3])
@pytest.mark.parametrize("side", [PAYER, PAYEE])
async def test_an_injected_storage_error_at_any_session_write_leaves_no_half_payment(
    tmp_path: Path, side: str, first: int, times: int
) -> None:
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        store = failing(net.home[side], first, times)
        result = await net.pay(PAYER, PAYEE, 5)
        # the owed writes are retried until they go through (or the session ended without one)
        await wait_until(lambda: store.seen >= first + times or not net.home[side].locks, 30)
        store.times = 0  # the disk has room again
        await assert_consistent_and_free(net)
        if first == 1 and side == PAYER:  # the offer itself could not be kept: never sent
            assert not result.committed and "could not store the offer" in result.reason


@contextmanager
def small_filesystem(where: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted at ``where`` (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full filesystem needs root and mount (CI runs as root)")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to its last byte with one file; that file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65_536, 1):  # big writes, then byte by byte: to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def moved_onto(node: Node, directory: Path) -> None:
    """Move a running node's store file onto ``directory`` (between two of its steps)."""
    old = node.store
    target = directory / Path(old.path).name
    old.close()
    for suffix in ("", "-wal", "-shm"):
        source = Path(old.path + suffix)
        if source.exists():
            shutil.copyfile(source, str(target) + suffix)
    node.store = NodeStore.open(target)


@pytest.mark.parametrize("side", [PAYER, PAYEE])
async def test_a_really_full_filesystem_leaves_no_half_payment(tmp_path: Path, side: str) -> None:
    with small_filesystem(tmp_path / "small", 16) as small:
        async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
            await net.converge()
            node = net.home[side]
            moved_onto(node, small)
            filler = fill(small)
            result = await net.pay(PAYER, PAYEE, 5)
            # SQLite's own SQLITE_FULL: the offer (payer) or the signature (payee) not kept
            expected = "could not store the offer" if side == PAYER else "could not store the signature"
            assert not result.committed and expected in result.reason, result
            filler.unlink()  # the operator makes room; the owed writes go through
            await assert_consistent_and_free(net)
            node.store.close()
            # the test network closes the store too: leave it one it can close
            node.store = NodeStore.open(tmp_path / "after.db")


class FullStore(NodeStore):
    """A ``NodeStore`` on a disk that is full while ``full`` is set: every write transaction fails."""

    full = False
    refused = 0

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        if self.full:
            self.refused += 1
            raise StorageError(f"cannot {doing} the store {self.path}: database or disk is full")
        with super()._transaction(doing) as conn:
            yield conn


async def test_a_node_whose_disk_fills_stays_up_and_catches_up_once_there_is_room(
    tmp_path: Path,
) -> None:
    # A node that is no party to the payments: only its background work (hellos, gossip,
    # warrants, reconciliation, publishing's receipts) writes while its disk is full.
    async with TestNetwork.start(tmp_path, nodes=3, members=1) as net:
        await net.converge()
        bystander = net.nodes[2]
        old = bystander.store
        store = FullStore.open(old.path)
        bystander.store = store
        old.close()
        store.full = True
        for amount in (2, 3, 4):
            await net.pay(PAYER, PAYEE, amount)  # witnessed by others, or refused: either way
        await wait_until(lambda: store.refused >= 5, 30)  # its loops met the full disk
        with trio.move_on_after(5):
            await trio.sleep_forever()  # and ran on against it
        store.full = False  # the operator makes room
        await net.converge(timeout=60)  # it holds what the others made meanwhile
        assert (await net.pay(PAYER, PAYEE, 1)).committed


async def test_a_node_given_a_new_store_reports_and_audits_from_it(tmp_path: Path) -> None:
    # The old store is closed: a room still holding it (the status report, the lookups) fails.
    async with TestNetwork.start(tmp_path, nodes=2, members=1) as net:
        await net.converge()
        result = await net.pay(PAYER, PAYEE, 5)
        assert result.committed, result
        await settle(net)
        node = net.home[PAYEE]
        (tmp_path / "moved").mkdir()
        moved_onto(node, tmp_path / "moved")
        assert node.status()["chains"] == len(node.store.heads()) > 0
        report = await node.audit(net.agents[PAYEE])
        assert report.violations == [] and report.balances[net.agents[PAYEE]] == 5

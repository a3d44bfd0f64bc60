"""Fixtures for the network tests: libp2p hosts on 127.0.0.1, and hosts of their own (``netns.py``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio


@pytest.fixture
async def libp2p_node(nursery: trio.Nursery) -> Callable[..., Awaitable[Any]]:
    """Start a ``Libp2pTransport`` (keyword arguments as its constructor's) until the test ends."""

    async def start(seed: bytes | None = None, **kwargs: Any) -> Any:
        # imported here: libp2p takes a second to import, and only these tests need it
        from conode.dht.libp2p_transport import Libp2pTransport

        node = Libp2pTransport(seed or os.urandom(32), **kwargs)
        await nursery.start(node.run)
        return node

    return start


@pytest.fixture
def netns_hosts() -> Iterator[Callable[[int], Any]]:
    """``lan = netns_hosts(3)``: hosts of their own on one bridge (``netns.hosts``), gone after the test.

    Skips the test where network namespaces cannot be made (not root, no ``ip``).
    """
    from netns import hosts  # imported here: it pulls in the devnet's code

    with contextlib.ExitStack() as stack:
        yield lambda count: stack.enter_context(hosts(count))

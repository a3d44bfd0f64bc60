"""Fixtures for the real-libp2p tests (``test_libp2p_*.py``): hosts on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
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

"""The local API under abuse: real Unix sockets, a real ``ApiServer`` on a node (in-memory peers).

A line of nested brackets, thousands of idle connections, a client that
sends a byte at a time, an over-long line, and every slot busy: each gets a
clear answer or a closed connection, and the API keeps answering others.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from conode.api import ApiServer
from conode.api.connections import SERVER_BUSY, ApiLimits, LineServer
from conode.testing.network import TestNetwork

WAIT: float = 20.0
"""Generous bound on waits that must end (a test fails instead of hanging)."""


@contextlib.asynccontextmanager
async def api_on_a_node(
    tmp_path: Path, limits: ApiLimits | None = None
) -> AsyncIterator[ApiServer]:
    sockets = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))  # a socket path is < 108 bytes
    try:
        async with TestNetwork.start(tmp_path, nodes=1, members=1) as net:
            api = ApiServer(net.nodes[0], sockets / "api.sock", limits=limits)
            async with trio.open_nursery() as nursery:
                await nursery.start(api.run)
                yield api
                nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


async def read_line(stream: trio.SocketStream) -> bytes:
    """One answer line (b"" if the server closed the connection first)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    return data


async def call(path: Path, method: str, params: dict[str, Any] | None = None) -> Any:
    """One request on a fresh connection; the decoded answer."""
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        await stream.send_all(json.dumps(request).encode() + b"\n")
        return json.loads(await read_line(stream))


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server has closed ``stream`` (reads reach the end)."""
    with contextlib.suppress(trio.BrokenResourceError):
        while await stream.receive_some(65536):
            pass
    return True


async def test_a_line_of_nested_brackets_gets_a_json_rpc_error_and_the_api_keeps_serving(
    tmp_path: Path,
) -> None:
    async with api_on_a_node(tmp_path) as api:
        stream = await trio.open_unix_socket(str(api.path))
        async with stream:
            await stream.send_all(b"[" * 1000 + b"]" * 1000 + b"\n")
            with trio.fail_after(WAIT):
                answer = json.loads(await read_line(stream))
            assert answer["error"]["code"] == -32700
            assert "nested deeper than 64 levels" in answer["error"]["message"]
            # the same connection, and a new one, still get answers
            await stream.send_all(b'{"jsonrpc": "2.0", "id": 2, "method": "status"}\n')
            with trio.fail_after(WAIT):
                assert json.loads(await read_line(stream))["result"]["agents"]
        with trio.fail_after(WAIT):
            assert (await call(api.path, "status"))["result"]["peers"] == 0


async def test_many_idle_connections_never_lock_out_a_new_client(tmp_path: Path) -> None:
    limits = ApiLimits(max_connections=16)
    async with api_on_a_node(tmp_path, limits) as api:
        idle = []
        try:
            for _ in range(1500):
                idle.append(await trio.open_unix_socket(str(api.path)))
            with trio.fail_after(WAIT):
                answer = await call(api.path, "status")
            assert "result" in answer
            assert api.server.connections <= limits.max_connections
            # all but the newest idle connections were closed to make room
            closed = 0
            for stream in idle[: -limits.max_connections]:
                with trio.fail_after(WAIT):
                    closed += await closed_by_server(stream)
            assert closed == 1500 - limits.max_connections
        finally:
            for stream in idle:
                await stream.aclose()


async def test_a_client_sending_a_byte_at_a_time_is_dropped_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    limits = ApiLimits(idle_timeout=0.5)
    async with api_on_a_node(tmp_path, limits) as api:
        slow = await trio.open_unix_socket(str(api.path))
        async with slow:
            request = b'{"jsonrpc": "2.0", "id": 1, "method": "status"}'
            dropped = False
            with trio.fail_after(WAIT):
                for byte in request * 100:  # never a newline, one byte every 50 ms
                    try:
                        await slow.send_all(bytes([byte]))
                    except trio.BrokenResourceError:
                        dropped = True
                        break
                    await trio.sleep(0.05)
                    if api.server.connections == 0:
                        dropped = await closed_by_server(slow)
                        break
            assert dropped
            assert "result" in await call(api.path, "status")  # others are served meanwhile


async def test_an_over_long_line_is_refused_and_its_connection_closed(tmp_path: Path) -> None:
    limits = ApiLimits(max_line=4096)
    async with api_on_a_node(tmp_path, limits) as api:
        stream = await trio.open_unix_socket(str(api.path))
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(b"x" * 100_000)
            with trio.fail_after(WAIT):
                answer = json.loads(await read_line(stream))
                assert answer["error"]["code"] == -32600
                assert "at most 4096 bytes" in answer["error"]["message"]
                assert await closed_by_server(stream)


async def test_with_every_slot_busy_a_newcomer_is_told_so_and_closed(tmp_path: Path) -> None:
    release = trio.Event()

    async def slow_answer(line: bytes) -> bytes:
        await release.wait()
        return b'{"jsonrpc": "2.0", "id": 1, "result": "done"}\n'

    server = LineServer(slow_answer, ApiLimits(max_connections=2))
    sockets = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))
    path = sockets / "busy.sock"
    try:
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener.bind(str(path))
        listener.listen(8)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listener)
            busy = [await trio.open_unix_socket(str(path)) for _ in range(2)]
            for stream in busy:
                await stream.send_all(b"{}\n")
            with trio.fail_after(WAIT):
                while server.connections < 2 or any(
                    c.idle_since is not None for c in server._served
                ):
                    await trio.sleep(0.01)
                answer = await _answer_on_new_connection(path)
            assert answer["error"]["code"] == SERVER_BUSY
            assert "busy" in answer["error"]["message"]
            release.set()
            with trio.fail_after(WAIT):
                for stream in busy:
                    assert json.loads(await read_line(stream))["result"] == "done"
                    await stream.aclose()
            nursery.cancel_scope.cancel()
        listener.close()
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


async def _answer_on_new_connection(path: Path) -> Any:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        line = await read_line(stream)
    return json.loads(line)


@pytest.mark.parametrize("bad", [{"max_connections": 0}, {"idle_timeout": 0}, {"max_line": -1}])
def test_limits_are_positive(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ApiLimits(**bad)

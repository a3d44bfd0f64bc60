"""What importing py-libp2p costs a node: packages it never runs are deferred, and load if used.

The loader is tested on small packages written to a temporary directory; the
libp2p import itself in fresh interpreters (the test process has imported
most of these packages already, so only a new process shows the daemon's
real import).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conode.dht.deferred_imports import FROM_SOURCE, UNUSED_BY_CONODE, deferring, is_deferred


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway packages; they leave sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_package(root: Path, name: str, body: str) -> None:
    """A package whose code appends its name to ``builtins.RAN`` when it runs."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(
        "import builtins\nbuiltins.RAN.append(__name__)\n" + textwrap.dedent(body)
    )


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import builtins

    record: list[str] = []
    monkeypatch.setattr(builtins, "RAN", record, raising=False)
    return record


def test_a_deferred_package_runs_at_its_first_use_and_not_before(
    packages: Path, ran: list[str]
) -> None:
    write_package(packages, "dpkg_a", "VALUE = 42\ndef double(x):\n    return 2 * x\n")
    with deferring({"dpkg_a"}):
        import dpkg_a
    assert ran == [] and is_deferred(dpkg_a)
    import dpkg_a as again  # a repeated import is not a use

    assert ran == [] and again is dpkg_a
    assert dpkg_a.double(dpkg_a.VALUE) == 84  # the first use runs it, once
    assert ran == ["dpkg_a"] and not is_deferred(dpkg_a)
    assert dpkg_a.VALUE == 42 and ran == ["dpkg_a"]


def test_from_imports_and_submodules_are_uses(packages: Path, ran: list[str]) -> None:
    write_package(packages, "dpkg_b", "NAME = 'b'\n")
    write_package(packages, "dpkg_c", "")
    (packages / "dpkg_c" / "sub.py").write_text("import builtins\nbuiltins.RAN.append(__name__)\n")
    with deferring({"dpkg_b", "dpkg_c"}):
        import dpkg_b
        import dpkg_c
    assert ran == [] and is_deferred(dpkg_b) and is_deferred(dpkg_c)
    from dpkg_b import NAME

    assert NAME == "b" and ran == ["dpkg_b"]
    import dpkg_c.sub  # the package's own code runs before its submodule's

    assert ran == ["dpkg_b", "dpkg_c", "dpkg_c.sub"]
    assert dpkg_c.sub is sys.modules["dpkg_c.sub"]


def test_a_package_whose_init_is_deferred_imports_its_submodules_without_running_it(
    packages: Path, ran: list[str]
) -> None:
    write_package(packages, "dpkg_i", "from dpkg_i.sub import HELLO\nWORLD = HELLO + ' world'\n")
    (packages / "dpkg_i" / "sub.py").write_text(
        "import builtins\nbuiltins.RAN.append(__name__)\nHELLO = 'hello'\n"
    )
    (packages / "dpkg_i" / "other.py").write_text(
        "import dpkg_i.sub as sub\nTWICE = sub.HELLO * 2\n"
    )
    with deferring((), inits={"dpkg_i"}):
        import dpkg_i.sub
    import dpkg_i.other  # after the block too: binding and reading submodules is not a use

    assert ran == ["dpkg_i.sub"] and is_deferred(dpkg_i)
    assert dpkg_i.sub.HELLO == "hello" and dpkg_i.other.TWICE == "hellohello"
    assert is_deferred(dpkg_i) and ran == ["dpkg_i.sub"]
    assert dpkg_i.WORLD == "hello world"  # a name of its own: its __init__ runs, once
    assert ran == ["dpkg_i.sub", "dpkg_i"] and not is_deferred(dpkg_i)


def test_only_named_packages_inside_the_block_are_deferred(packages: Path, ran: list[str]) -> None:
    for name in ("dpkg_d", "dpkg_e", "dpkg_f"):
        write_package(packages, name, "")
    with deferring({"dpkg_d", "dpkg_f"}):
        import dpkg_d
        import dpkg_e
    import dpkg_f  # named, but imported after the block

    assert is_deferred(dpkg_d)
    assert not is_deferred(dpkg_e) and not is_deferred(dpkg_f)
    assert ran == ["dpkg_e", "dpkg_f"]


def test_an_error_in_a_deferred_package_surfaces_at_its_first_use(
    packages: Path, ran: list[str]
) -> None:
    write_package(packages, "dpkg_g", "raise RuntimeError('broken package')\n")
    with deferring({"dpkg_g"}):
        import dpkg_g
    with pytest.raises(RuntimeError, match="broken package"):
        _ = dpkg_g.anything


def test_threads_touching_a_deferred_package_at_once_run_it_once(
    packages: Path, ran: list[str]
) -> None:
    write_package(packages, "dpkg_h", "import time\ntime.sleep(0.05)\nVALUE = 7\n")
    with deferring({"dpkg_h"}):
        import dpkg_h
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(dpkg_h.VALUE)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [7] * 8 and ran == ["dpkg_h"]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (this one's); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_libp2p_transport_defers_what_a_node_never_runs() -> None:
    out = run_python(
        """
        import sys
        import conode.dht.libp2p_transport
        from conode.dht.deferred_imports import UNUSED_BY_CONODE, is_deferred
        for name in sorted(UNUSED_BY_CONODE):
            module = sys.modules.get(name)
            print(name, "absent" if module is None else is_deferred(module))
        """
    )
    states = dict(line.split() for line in out.splitlines())
    assert set(states) == set(UNUSED_BY_CONODE)
    assert states["httpx"] == states["requests"] == states["asyncio"] == "True"
    assert all(state in ("True", "absent") for state in states.values())


def test_two_nodes_talk_find_and_gossip_without_running_the_deferred_packages() -> None:
    out = run_python(
        """
        import os, sys, trio
        from conode.dht.libp2p_transport import Libp2pTransport
        from conode.dht.deferred_imports import UNUSED_BY_CONODE, is_deferred

        async def echo(peer, payload):
            return payload

        async def main():
            async with trio.open_nursery() as nursery:
                nodes = [Libp2pTransport(os.urandom(32), listen="/ip4/0.0.0.0/tcp/0") for _ in range(3)]
                for node in nodes:
                    node.set_handler("/conode/test/echo/1", echo)
                    await nursery.start(node.run)
                # on 0.0.0.0 each advertises the machine's addresses: dialable as they are
                await nodes[1].connect(nodes[0].listen_addrs()[0])
                await nodes[2].connect(nodes[1].listen_addrs()[0])
                for _ in range(5):
                    reply = await nodes[2].request(nodes[1].peer_id, "/conode/test/echo/1", b"x", timeout=10)
                    assert reply == b"x"
                assert await nodes[2].find_peer(nodes[0].peer_id)
                await nodes[0].announce("t", b"hint")
                nursery.cancel_scope.cancel()

        trio.run(main)
        ran = [n for n in sorted(UNUSED_BY_CONODE) if n in sys.modules and not is_deferred(sys.modules[n])]
        print("ran:", *ran)
        print("libp2p/__init__ ran:", not is_deferred(sys.modules["libp2p"]))
        """
    )
    assert out.strip().splitlines() == ["ran:", "libp2p/__init__ ran: False"]


def test_mdns_loads_the_packages_it_uses_and_works() -> None:
    out = run_python(
        """
        import os, sys, trio
        from conode.dht.libp2p_transport import Libp2pTransport
        from conode.dht.deferred_imports import is_deferred

        async def main():
            async with trio.open_nursery() as nursery:
                a, b = (Libp2pTransport(os.urandom(32), mdns=True) for _ in range(2))
                await nursery.start(a.run)
                await nursery.start(b.run)
                with trio.fail_after(30):
                    while b.peer_id not in a.connected_peers():
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        trio.run(main)
        print("asyncio deferred:", is_deferred(sys.modules["asyncio"]))
        compiled = [n for n, m in sys.modules.items() if n.startswith("zeroconf") and not m.__file__.endswith(".py")]
        print("zeroconf compiled:", *compiled)
        """
    )
    assert out.strip().splitlines() == ["asyncio deferred: False", "zeroconf compiled:"]


def test_zeroconf_runs_from_its_python_source_beside_its_compiled_modules() -> None:
    out = run_python(
        """
        import sys
        from pathlib import Path
        import conode.dht.libp2p_transport
        zeroconf = {n: m.__file__ for n, m in sys.modules.items() if n.startswith("zeroconf")}
        beside = [f for f in zeroconf.values() if list(Path(f).parent.glob(Path(f).stem + ".cpython-*"))]
        print(len(zeroconf), len(beside), sum(f.endswith(".py") for f in zeroconf.values()))
        """
    )
    modules, with_compiled_twin, from_source = map(int, out.split())
    assert "zeroconf" in FROM_SOURCE
    assert modules > 20 and with_compiled_twin > 10  # the Cython builds are there, not used
    assert from_source == modules


def test_a_module_without_python_source_loads_compiled() -> None:
    out = run_python(
        """
        from conode.dht.deferred_imports import deferring
        with deferring((), from_source={"_cffi_backend"}):
            import _cffi_backend
        print(_cffi_backend.__file__.rsplit(".", 1)[-1], _cffi_backend.FFI is not None)
        """
    )
    assert out.split() == ["so", "True"]

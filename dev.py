#!/usr/bin/env python3
"""conode's developer entry point; needs nothing but python3 (3.11 or newer).

    python3 dev.py run [ARGS...]    set up .venv if needed, then run a local network (`conode devnet`)
    python3 dev.py test [ARGS...]   set up .venv if needed, then ruff, mypy, lint-imports, pytest
    python3 dev.py test --fast      the same without the tests marked ``slow`` (real processes,
                                    long property searches): a few minutes

``test`` first installs the programs some tests run (``ip`` from iproute2,
``chromium``) with apt-get when they are missing and this is root on a
Debian-like system, as CI is. Setting up means: create ``.venv`` with ``python3 -m venv`` if it is missing,
and ``pip install -e '.[test,lint]'`` into it whenever ``pyproject.toml`` is
newer than the marker file ``.venv/.conode-installed``. Extra ARGS go to
``conode devnet`` (run: e.g. ``--nodes 5 --payments 100 --json``) or to
pytest (test). pytest runs on every core (pytest-xdist, ``-n auto``; pass
``-n 0`` for one process). The exit code is that of the first step that
fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
MARKER = VENV / ".conode-installed"
PYPROJECT = ROOT / "pyproject.toml"
MIN_PYTHON = (3, 11)


def tool(name: str) -> str:
    """The path of a program installed in the venv."""
    if os.name == "nt":
        return str(VENV / "Scripts" / f"{name}.exe")
    return str(VENV / "bin" / name)


def step(name: str, command: list[str]) -> int:
    """Run one named step from the repository root; its exit code."""
    print(f"==> {name}: {' '.join(command)}", flush=True)
    try:
        code = subprocess.call(command, cwd=ROOT)
    except OSError as exc:
        print(f"==> {name}: cannot run {command[0]}: {exc}", file=sys.stderr, flush=True)
        return 127
    if code != 0:
        print(f"==> {name} failed (exit {code})", file=sys.stderr, flush=True)
    return code


def ensure_venv() -> int:
    """Create .venv and (re)install conode into it when needed; 0 when ready."""
    python = tool("python")
    if not Path(python).exists():
        create = [sys.executable, "-m", "venv", str(VENV)]
        code = step("create .venv", create)
        if code != 0 and can_apt():  # a fresh Debian leaves venv's ensurepip out of python3
            code = apt_install(["python3-venv"]) or step("create .venv", create)
        if code != 0:
            print(
                "dev.py: could not create .venv (on Debian/Ubuntu: apt install python3-venv)",
                file=sys.stderr,
            )
            return code
    if MARKER.exists() and MARKER.stat().st_mtime >= PYPROJECT.stat().st_mtime:
        return 0
    code = step("install", [python, "-m", "pip", "install", "-e", ".[test,lint]"])
    if code == 0:
        MARKER.write_text("pip install -e '.[test,lint]' done; delete this file to reinstall\n")
    return code


OS_PACKAGES = {"ip": "iproute2", "chromium": "chromium"}
"""Programs some tests run, and the Debian package of each: ``ip`` makes the network namespaces
of the tests across hosts, ``chromium`` is the browser of the web page's tests."""


def ensure_os_packages() -> int:
    """Install the missing programs of ``OS_PACKAGES`` with apt-get, where this is root on a
    Debian-like system (as CI is); elsewhere say what to install. 0 unless apt-get failed."""
    missing = [package for program, package in OS_PACKAGES.items() if shutil.which(program) is None]
    if not missing:
        return 0
    if not can_apt():
        print(
            f"dev.py: missing {', '.join(missing)}: the tests that need them will fail "
            f"(on Debian/Ubuntu, as root: apt-get install {' '.join(missing)})",
            file=sys.stderr,
        )
        return 0
    return apt_install(missing)


def can_apt() -> bool:
    """Whether this is root on a system with apt-get (as CI is)."""
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str]) -> int:
    """``apt-get install`` the Debian ``packages`` (after an update); 0 unless apt-get failed."""
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        print(f"==> os packages: {' '.join(command)}", flush=True)
        code = subprocess.call(command, env=environment)
        if code != 0:
            print(f"==> os packages failed (exit {code})", file=sys.stderr, flush=True)
            return code
    return 0


def run(args: list[str]) -> int:
    """The main job: a network of real nodes on 127.0.0.1 that pay, converge and audit."""
    return step("conode devnet", [tool("conode"), "devnet", *args])


PARALLEL = ["-n", "auto", "--dist", "worksteal"]
"""pytest on every core; a worker that finishes early takes tests from the others (pytest-xdist)."""
FAST = ["-m", "not slow"]
"""What ``--fast`` leaves out: the tests marked ``slow`` (real processes, long property searches)."""


def test(args: list[str]) -> int:
    """Every check, in order, stopping at the first failure (``--fast``: not the slow tests)."""
    fast = "--fast" in args
    rest = [a for a in args if a != "--fast"]
    code = ensure_os_packages()
    if code != 0:
        return code
    steps = [
        ("ruff", [tool("ruff"), "check", "."]),
        ("mypy", [tool("mypy")]),
        ("lint-imports", [tool("lint-imports")]),
        ("pytest", [tool("pytest"), *PARALLEL, *(FAST if fast else []), *rest]),
    ]
    for name, command in steps:
        code = step(name, command)
        if code != 0:
            return code
    print("==> all checks passed", flush=True)
    return 0


COMMANDS = {"run": run, "test": test}


def main(argv: list[str]) -> int:
    """``dev.py COMMAND [ARGS...]``."""
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        print(f"dev.py: conode needs Python {wanted} or newer", file=sys.stderr)
        return 2
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python3 dev.py {{{','.join(COMMANDS)}}} [ARGS...]", file=sys.stderr)
        return 2
    code = ensure_venv()
    if code != 0:
        return code
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

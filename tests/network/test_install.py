"""The operator's install (``docs/operator.md``): a wheel in a fresh venv, runtime dependencies only.

The wheel is built from a copy of the package's own files (``pyproject.toml``,
``README.md``, ``conode/``, ``cli/``), so it cannot lean on anything else in
the checkout; it is installed into a new virtual environment with no test or
lint extras, and a two-node ``conode devnet`` runs from that environment
alone (another working directory, no ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conode import __version__

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "hypothesis", "ruff", "mypy", "importlinter", "pytest_trio")


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CONODE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }


def _run(*command: str | Path, cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def test_the_wheel_installs_alone_and_runs_a_two_node_devnet(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in ("conode", "cli"):
        shutil.copytree(REPO / package, source / package, ignore=junk)

    expected = {p.relative_to(source).as_posix() for p in source.rglob("*.py")}
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("conode-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert expected <= shipped, sorted(expected - shipped)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert _run(bin_dir / "conode", "--version", cwd=work).strip() == f"conode {__version__}"
    where = _run(
        bin_dir / "python",
        "-c",
        "import importlib.util, json, conode, cli; print(json.dumps([conode.__file__, cli.__file__,"
        f" [m for m in {DEV_ONLY!r} if importlib.util.find_spec(m)]]))",
        cwd=work,
    )
    conode_file, cli_file, dev_tools = json.loads(where)
    assert Path(conode_file).is_relative_to(venv) and Path(cli_file).is_relative_to(venv)
    assert dev_tools == []  # only the runtime dependencies came along

    out = _run(
        bin_dir / "conode",
        "devnet",
        "--nodes",
        "2",
        "--payments",
        "4",
        "--json",
        "--dir",
        tmp_path / "devnet",
        cwd=work,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] is True and result["converged"] is True and result["zero_sum"] is True
    assert result["nodes"] == 2

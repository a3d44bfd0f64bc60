"""The pure core (chain/, validation/, payments/, the pure halves of dht/, the app SDK and apps)
reaches for no I/O, clock or randomness (``.importlinter``'s ``pure`` contract checks the imports
of what they import, too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "conode"
PURE = (
    sorted((ROOT / "chain").rglob("*.py"))
    + sorted((ROOT / "validation").rglob("*.py"))
    + sorted((ROOT / "apps" / "sdk").glob("*.py"))
    + [ROOT / "apps" / "hosting.py", ROOT / "numerals.py"]
    + [ROOT / "store" / "stored.py", ROOT / "store" / "statements.py"]
    + sorted((ROOT / "payments").rglob("*.py"))
    + [
        ROOT / "dht" / name
        for name in (
            "addresses.py", "arcs.py", "itemset.py", "reconcile.py", "reconcile_wire.py", "ringview.py",
            "routing.py", "shedding.py",
        )
    ]
    + [ROOT / "dht" / f"{name}.py" for name in ("links", "gossip", "publishing", "wire")]
    + sorted((ROOT / "dht" / "messages").rglob("*.py"))
    + sorted((ROOT / "apps" / "foundation").rglob("*.py"))
    + sorted((ROOT / "apps" / "lookout").rglob("*.py"))
    + sorted((ROOT / "apps" / "exchange").rglob("*.py"))
    + sorted((ROOT / "apps" / "examples").rglob("*.py"))
)
FORBIDDEN_MODULES = {
    "anyio", "asyncio", "datetime", "libp2p", "os", "random", "secrets", "socket",
    "sqlite3", "subprocess", "threading", "time", "trio", "uuid",
}  # fmt: skip


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_pure_core_has_modules_to_check() -> None:
    assert len(PURE) >= 10


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io_clock_or_randomness(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert imported_modules(tree) & FORBIDDEN_MODULES == set()


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_calls_no_open_print_or_input(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert calls & {"open", "print", "input", "exec", "eval"} == set()


def test_the_check_catches_a_forbidden_import() -> None:
    assert imported_modules(ast.parse("import time\nfrom trio import sleep")) == {"time", "trio"}

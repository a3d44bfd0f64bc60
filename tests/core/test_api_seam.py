"""The local API reaches the node only through the ``Node`` façade's public methods (issue 11,
item 5): never its store, transport, engine or services."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import conode.api
from conode.node import Node

API = Path(conode.api.__file__).parent
DATA = {"agents"}
"""The one data attribute the API reads: the hosted agents, by key."""


def _node_attributes(tree: ast.AST) -> set[str]:
    """Every ``node.X`` and ``self.node.X`` the module reads."""
    found = set()
    for item in ast.walk(tree):
        if not isinstance(item, ast.Attribute):
            continue
        owner = item.value
        if (isinstance(owner, ast.Name) and owner.id == "node") or (
            isinstance(owner, ast.Attribute)
            and owner.attr == "node"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "self"
        ):
            found.add(item.attr)
    return found


def test_the_api_calls_only_public_methods_of_the_node_facade() -> None:
    methods = {
        name
        for name, member in inspect.getmembers(Node, inspect.isfunction)
        if not name.startswith("_")
    }
    used: dict[str, set[str]] = {}
    for module in sorted(API.glob("*.py")):
        used[module.name] = _node_attributes(ast.parse(module.read_text()))
    assert any(used.values()), "the check saw no node.X at all"
    for name, attributes in used.items():
        assert attributes <= methods | DATA, f"{name} reaches into {attributes - methods - DATA}"


def test_the_check_sees_a_reach_into_the_store() -> None:
    tree = ast.parse("def f(self, node):\n    node.store.head(1)\n    self.node.transport.x()\n")
    assert _node_attributes(tree) == {"store", "transport"}

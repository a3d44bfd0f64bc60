"""The core tests' shared set-up: which long searches ``dev.py test --fast`` leaves out."""

from __future__ import annotations

import pytest

LONG_SEARCHES = {
    "test_countersign_model.py": (
        "test_every_interleaving_is_atomic_fork_free_and_live",
        "test_the_checker_catches_broken_protocols",
    ),
}
"""Tests of a module marked ``slow`` here rather than in the module itself (whose text is being
reworked elsewhere): the exhaustive model check of the countersigning protocol."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        long = LONG_SEARCHES.get(item.path.name, ())
        if item.name.split("[")[0] in long:
            item.add_marker(pytest.mark.slow)

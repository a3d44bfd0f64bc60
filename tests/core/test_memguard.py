"""The memory budget's decision (``conode.memguard.memory_action``): trim first, shed only if
trimming did not bring the node under its budget, resume with a margin."""

from __future__ import annotations

from conode.memguard import RESUME_AT, TRIM_AT, memory_action


def test_under_the_trim_line_nothing_is_done() -> None:
    assert memory_action(TRIM_AT * 100 - 1, 100, shedding=False, trimmed=False) == "ok"


def test_over_the_trim_line_memory_is_handed_back_before_anything_is_shed() -> None:
    assert memory_action(150, 100, shedding=False, trimmed=False) == "trim"
    assert memory_action(95, 100, shedding=False, trimmed=True) == "ok"  # trimmed, still under
    assert memory_action(101, 100, shedding=False, trimmed=True) == "shed"


def test_a_shedding_node_resumes_only_well_under_its_budget() -> None:
    assert memory_action(99, 100, shedding=True, trimmed=False) == "ok"  # still shedding
    assert memory_action(RESUME_AT * 100 + 1, 100, shedding=True, trimmed=False) == "ok"
    assert memory_action(RESUME_AT * 100 - 1, 100, shedding=True, trimmed=False) == "resume"

"""docs/protocol.md's worked example is what the code really produces."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"


def _example() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("worked_example", ROOT / "docs" / "examples" / "worked_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.example()  # type: ignore[no-any-return]


EXAMPLE = _example()
# hex wrapped over lines in the document: compare without white space
FLAT_DOC = re.sub(r"\s+", "", DOC.read_text())


@pytest.mark.parametrize("name", sorted(set(EXAMPLE) - {"signed_message", "entry_hash_check"}))
def test_protocol_doc_shows_the_value_the_code_produces(name: str) -> None:
    assert EXAMPLE[name] in FLAT_DOC


def test_the_entry_hash_is_plain_blake2b_with_the_entry_personalisation() -> None:
    assert EXAMPLE["entry_hash"] == EXAMPLE["entry_hash_check"]

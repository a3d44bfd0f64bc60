"""``api_for``: the node's ``AppAPI`` played by a ``conode.testing.Ledger`` (``ledgerapi``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ledgerapi import LedgerAPI

from conode.apps.sdk import App
from conode.testing import Ledger


@pytest.fixture
def api_for() -> Callable[[Ledger, App], LedgerAPI]:
    """``api_for(ledger, app)``: the ``AppAPI`` a node would lend ``app``'s functions."""
    return LedgerAPI

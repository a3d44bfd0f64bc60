"""Public helpers for testing conode and its apps (like ``trio.testing``)."""

from conode.testing.ledger import Agent, Ledger

__all__ = ["Agent", "Ledger"]

"""Governance on a node, now ``conode.node.governance``: this name stays for the local API and
the CLI until their split (pass 2 of issue 11)."""

from conode.node.governance import DUTY_INTERVAL, RATIFY_SETTLE_US, Governance

__all__ = ["DUTY_INTERVAL", "RATIFY_SETTLE_US", "Governance"]

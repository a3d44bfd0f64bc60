"""Payments, the pure side: the policy a node's payer and payee both follow (``policy``).

The countersigning machines (``conode.validation.countersign``) and the
payment bodies (``conode.validation.payment``) join this package later.
Pure: no I/O, no clock, no randomness.
"""

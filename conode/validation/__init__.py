"""The deterministic rule engine: charter, governance, credit rules, app validators, warrants.

Pure code: no I/O, no clock, no randomness. Every peer replaying the same
records reaches the same verdict.
"""

"""Warrants: signed, checkable proofs that an agent broke the rules.

A warrant carries its evidence, and anyone checks it by re-running the rules
on that evidence, so no peer has to trust the issuer:

- ``fork``: two records by the offender at the same seq (or on the same
  prev) with different hashes, both signed by it: it tried to spend one
  position twice.
- ``invalid``: one record by the offender that the engine judges ``Invalid``.
- ``activity``: the offender's chain from genesis up to a record that breaks
  an activity rule (skipping a payment, voting twice, paying a bill twice).
- ``stale-rules``: a record by the offender and a ratification that follows
  the governance head the record names, made at least the grace period
  before it, under which the offender was barred (see ``stale``).

A warranted agent is blocked by honest nodes: they take no new ops from it
and open no countersigning session with it. Its history stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from conode import encoding
from conode.chain import Record
from conode.crypto import SIG_ACTION, SIG_WARRANT, Signer, verify
from conode.hashes import AgentKey, EntryHash
from conode.validation.activity import fold_chain
from conode.validation.engine import Engine, ValidationContext
from conode.validation.schema import (
    SchemaError,
    bytes_field,
    hash_field,
    int_field,
    list_field,
    map_value,
    str_field,
)
from conode.validation.stale import stale_rules_offence
from conode.validation.verdict import VALID, Invalid, Missing, Verdict

__all__ = ["WARRANT_KINDS", "Warrant", "check_warrant", "is_fork"]

WARRANT_KINDS: Final = frozenset({"fork", "invalid", "activity", "stale-rules"})
_MAX_EVIDENCE: Final = 100_000


@dataclass(frozen=True, slots=True)
class Warrant:
    """A claim that ``offender`` broke a rule, with the evidence and the issuer's signature."""

    kind: str
    offender: AgentKey
    evidence: tuple[Record, ...]
    issuer: AgentKey
    issued_at: int
    signature: bytes = b""

    def _unsigned_value(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offender": self.offender.to_bytes(),
            "evidence": [record.to_bytes() for record in self.evidence],
            "issuer": self.issuer.to_bytes(),
            "issued_at": self.issued_at,
        }

    def signed_bytes(self) -> bytes:
        return encoding.encode(self._unsigned_value())

    @classmethod
    def issue(
        cls,
        signer: Signer,
        kind: str,
        offender: AgentKey,
        evidence: tuple[Record, ...],
        issued_at: int,
    ) -> Warrant:
        """A warrant signed by ``signer`` (the issuer)."""
        unsigned = cls(kind, offender, evidence, AgentKey(signer.public_key), issued_at)
        return cls(
            kind,
            offender,
            evidence,
            unsigned.issuer,
            issued_at,
            signer.sign(SIG_WARRANT, unsigned.signed_bytes()),
        )

    def to_bytes(self) -> bytes:
        return encoding.encode({**self._unsigned_value(), "signature": self.signature})

    @classmethod
    def from_bytes(cls, data: bytes) -> Warrant:
        """Read a warrant; ``EncodingError`` if malformed (not whether it is justified)."""
        # each piece of evidence is one item, the warrant's own fields a dozen more
        value = encoding.decode(data, max_size=64 << 20, max_items=_MAX_EVIDENCE + 16)
        m = map_value(
            value, "warrant", {"kind", "offender", "evidence", "issuer", "issued_at", "signature"}
        )
        kind = str_field(m, "kind", 16, 1)
        if kind not in WARRANT_KINDS:
            raise SchemaError(f"unknown warrant kind {kind!r}")
        evidence = []
        for item in list_field(m, "evidence", _MAX_EVIDENCE):
            if type(item) is not bytes:
                raise SchemaError("evidence is a list of records")
            evidence.append(Record.from_bytes(item))
        return cls(
            kind,
            hash_field(m, "offender", AgentKey),
            tuple(evidence),
            hash_field(m, "issuer", AgentKey),
            int_field(m, "issued_at", 0),
            bytes_field(m, "signature", 64),
        )


def is_fork(a: Record, b: Record) -> bool:
    """Two different records by one author at the same seq or on the same prev."""
    same_author = a.action.author == b.action.author
    same_place = a.action.seq == b.action.seq or (
        a.action.prev is not None and a.action.prev == b.action.prev
    )
    return same_author and same_place and a.hash != b.hash


def check_warrant(warrant: Warrant, engine: Engine, ctx: ValidationContext) -> Verdict:
    """``VALID`` if the evidence proves the offence; ``Invalid`` if it does not; ``Missing`` if it needs more."""
    if not verify(warrant.issuer.raw, SIG_WARRANT, warrant.signed_bytes(), warrant.signature):
        return Invalid("warrant", "the issuer's signature does not verify")
    if not warrant.evidence:
        return Invalid("warrant", "a warrant carries evidence")
    stale = warrant.kind == "stale-rules"
    if stale and len(warrant.evidence) != 2:
        return Invalid("warrant", "a stale-rules warrant carries a record and a ratification")
    # a stale-rules warrant's second record is the ratification (anyone's), judged on its own
    for record in warrant.evidence[:1] if stale else warrant.evidence:
        if record.action.author != warrant.offender:
            return Invalid("warrant", "the evidence is not all by the offender")
        if not verify(warrant.offender.raw, SIG_ACTION, record.action_bytes, record.signature):
            return Invalid("warrant", "the evidence is not signed by the offender")
        if record.entry is not None and EntryHash.of(record.entry) != record.action.entry_hash:
            # the signature covers the action, which names its entry by hash: another entry is
            # someone else's, and must never be held against the author
            return Invalid("warrant", "the evidence carries an entry its author did not sign")
    if warrant.kind == "fork":
        if len(warrant.evidence) == 2 and is_fork(*warrant.evidence):
            return VALID
        return Invalid("warrant", "the evidence is not two records at one position")
    if warrant.kind == "invalid":
        if len(warrant.evidence) != 1:
            return Invalid("warrant", "an invalid-record warrant carries one record")
        verdict = engine.validate_record(warrant.evidence[0], ctx)
        if isinstance(verdict, Missing):
            return verdict
        return VALID if isinstance(verdict, Invalid) else Invalid("warrant", "the record is valid")
    if stale:
        barred = stale_rules_offence(engine, warrant.evidence[0], warrant.evidence[1], ctx)
        if isinstance(barred, Invalid) and barred.rule != "warrant":
            return VALID
        if isinstance(barred, Missing | Invalid):
            return barred
        return Invalid("warrant", "the newer rules allowed the record, or it was within the grace")
    _, offence, position = fold_chain(warrant.evidence)
    if offence is not None and position == len(warrant.evidence) - 1:
        return VALID
    return Invalid("warrant", "the chain shows no offence at its last record")

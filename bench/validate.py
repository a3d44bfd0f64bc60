"""Benchmark of the rules engine, against raw pynacl verifies on the same machine in the same run.

Prints:
- raw Ed25519 verifies/s (pynacl), the reference;
- payment validations/s (each party's record judged by the engine: action
  signature, both countersignatures, provenance, balance and limits) and
  ``validate_ratio`` = validations/s / raw verifies/s (target >= 0.35);
- time per validation with 1k, 10k and 100k earlier payments on the chains,
  and ``flat_ratio`` = time at the longest history / at 1k (target <= 1.5);
- audit of a whole network export (actions/s).

Usage: ``python bench/validate.py [--quick]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

import nacl.signing

from conode.chain import ActionKind, Record, author_record
from conode.crypto import Signer
from conode.hashes import AgentKey
from conode.validation.activity import Activity, step
from conode.validation.audit import audit
from conode.validation.charter import Charter, FoundingCoop, Limits, Parameters
from conode.validation.engine import Engine
from conode.validation.entries import Credential, Genesis, Payment, Role
from conode.validation.memory import HeldRecords
from conode.validation.payment import commit_payment, make_body, sign_body

START = 1_700_000_000_000_000


def raw_verify_rate(seconds: float) -> float:
    """pynacl verifies/s of a payment-sized message."""
    key = nacl.signing.SigningKey(b"\x01" * 32)
    message = bytes(range(256)) + b"x" * 100
    signature = key.sign(message).signature
    verify_key = key.verify_key
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verify_key.verify(message, signature)
        count += 200
    return count / (time.perf_counter() - start)


class Network:
    """Co-ops with members, payments built and signed directly (no validation while building)."""

    def __init__(self, coops: int, members: int) -> None:
        self.clock = START
        self.signers: dict[str, Signer] = {}
        self.states: dict[str, Activity] = {}
        self.chains: dict[str, list[Record]] = {}
        coop_names = [f"coop{i}" for i in range(coops)]
        for name in coop_names:
            self.signers[name] = Signer(bytes([len(self.signers) + 1]) * 32)
        limits = Limits(10**12, 10**12)
        self.charter = Charter(
            name="bench",
            currency="CXT",
            scale=2,
            founding=tuple(FoundingCoop(self.key(n), n, f"R{n}") for n in coop_names),
            params=Parameters(limits, limits, 1000, 5000, 5001, 86_400_000_000, 3),
            created_at=START,
        )
        network = self.charter.network_id
        for name in coop_names:
            self._genesis(name, Genesis(network, Role.COOP, name, f"R{name}"))
            for j in range(members):
                member = f"{name}-m{j}"
                self.signers[member] = Signer(bytes([len(self.signers) + 1]) * 32)
                credential = Credential.issue(
                    self.signers[name], self.key(member), member, self.tick()
                )
                self._genesis(member, Genesis(network, Role.MEMBER, member, credential=credential))

    def key(self, name: str) -> AgentKey:
        return AgentKey(self.signers[name].public_key)

    def tick(self) -> int:
        self.clock += 1000
        return self.clock

    def _genesis(self, name: str, genesis: Genesis) -> None:
        record = author_record(
            self.signers[name],
            None,
            kind=ActionKind.GENESIS,
            timestamp=self.tick(),
            entry=genesis.to_value(),
        )
        self._append(name, record)

    def _append(self, name: str, record: Record) -> None:
        self.states[name], verdict = step(self.states.get(name, Activity()), record)
        assert verdict, verdict
        self.chains.setdefault(name, []).append(record)

    def pay(self, payer: str, payee: str, amount: int) -> tuple[Record, Record]:
        body = make_body(
            self.charter.network_id,
            self.states[payer],
            self.states[payee],
            amount,
            timestamp=self.tick(),
        )
        payment = Payment(
            body, sign_body(self.signers[payer], body), sign_body(self.signers[payee], body)
        )
        records = (
            commit_payment(self.signers[payer], payment),
            commit_payment(self.signers[payee], payment),
        )
        self._append(payer, records[0])
        self._append(payee, records[1])
        return records

    def all_records(self) -> list[Record]:
        return [r for chain in self.chains.values() for r in chain]


def validation_rate(payments: int, rng: random.Random) -> tuple[float, int]:
    """Payment-record validations/s by a fresh engine, dependencies held and judged valid."""
    net = Network(coops=4, members=2)
    names = list(net.signers)
    history = net.all_records()
    fresh: list[Record] = []
    for _ in range(payments):
        payer, payee = rng.sample(names, 2)
        fresh.extend(net.pay(payer, payee, rng.randint(1, 100)))
    held = HeldRecords(history, trusted=True)
    held.add(fresh)
    engine = Engine(net.charter)
    start = time.perf_counter()
    for record in fresh:
        verdict = engine.validate_record(record, held)
        assert verdict, verdict
    elapsed = time.perf_counter() - start
    return len(fresh) / elapsed, len(fresh)


def best_of(rounds: int, raw_seconds: float, payments: int, rng: random.Random) -> tuple[float, float, int]:
    """(raw verifies/s, validations/s, records): each the best of ``rounds``, taken in turns.

    Both figures get the same treatment, so another process on the machine
    slows a round of each alike and the best round of each is compared.
    """
    raws, rates, n = [], [], 0
    for _ in range(rounds):
        raws.append(raw_verify_rate(raw_seconds))
        rate, n = validation_rate(payments, rng)
        rates.append(rate)
    return max(raws), max(rates), n


def time_per_validation(history: int, probes: int) -> float:
    """Mean seconds to validate a payment after ``history`` earlier payments on the same two chains."""
    net = Network(coops=1, members=2)
    for i in range(history):
        net.pay("coop0-m0", "coop0-m1", 1) if i % 2 == 0 else net.pay("coop0-m1", "coop0-m0", 1)
    held = HeldRecords(net.all_records(), trusted=True)
    probe_records = []
    for i in range(probes):
        probe_records.extend(
            net.pay("coop0-m0", "coop0-m1", 1) if i % 2 == 0 else net.pay("coop0-m1", "coop0-m0", 1)
        )
    held.add(probe_records)
    samples = []
    for _round in range(3):
        engine = Engine(net.charter)
        start = time.perf_counter()
        for record in probe_records:
            verdict = engine.validate_record(record, held)
            assert verdict, verdict
        samples.append((time.perf_counter() - start) / len(probe_records))
    return statistics.median(samples)


def audit_rate(payments: int, rng: random.Random) -> tuple[float, int]:
    """Actions/s of a full audit of a network export with ``payments`` payments."""
    net = Network(coops=5, members=3)
    names = list(net.signers)
    for _ in range(payments):
        payer, payee = rng.sample(names, 2)
        net.pay(payer, payee, rng.randint(1, 100))
    chains = list(net.chains.values())
    actions = sum(len(c) for c in chains)
    start = time.perf_counter()
    report = audit(net.charter, chains)
    elapsed = time.perf_counter() - start
    assert not report.violations and report.zero_sum, report.violations[:3]
    return actions / elapsed, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    args = parser.parse_args()
    rng = random.Random(7)
    histories = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    figures: dict[str, object] = {"quick": args.quick}

    raw, rate, n = best_of(3, 1.0 if args.quick else 2.0, 1_000 if args.quick else 3_000, rng)
    figures["raw_verify_per_s"] = round(raw)
    print(f"raw pynacl Ed25519 verifies/s      {raw:10,.0f}   (reference; best of 3)")

    figures["payment_validations_per_s"] = round(rate)
    figures["validate_ratio"] = round(rate / raw, 3)
    print(
        f"payment validations/s              {rate:10,.0f}   "
        f"({n} records, best of 3; ratio {rate / raw:.3f}, target >= 0.35)"
    )

    per_history = {}
    for history in histories:
        seconds = time_per_validation(history, 200)
        per_history[history] = seconds
        figures[f"validate_us_at_{history}"] = round(seconds * 1e6, 1)
        print(f"validation with {history:>7,} earlier payments   {seconds * 1e6:8.1f} µs")
        sys.stdout.flush()
    flat = per_history[histories[-1]] / per_history[histories[0]]
    figures["flat_ratio"] = round(flat, 3)
    figures["flat_ratio_history"] = histories[-1]
    print(
        f"flat_ratio ({histories[-1]:,} / {histories[0]:,})        {flat:10.3f}   (target <= 1.5)"
    )

    audit_payments = 10_000 if args.quick else 100_000
    rate, actions = audit_rate(audit_payments, rng)
    figures["audit_actions_per_s"] = round(rate)
    figures["audit_payments"] = audit_payments
    print(
        f"audit of {audit_payments:,}-payment export       {rate:10,.0f} actions/s ({actions:,} actions)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

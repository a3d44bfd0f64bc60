"""The devnet's workload (step 3): payments between members of different co-ops, through the
payer's node API."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from cli.client import ApiError
from cli.devnet.plan import (
    AMOUNTS,
    BUYER_SHARE,
    MEMBERS_PER_COOP,
    DevnetPlan,
)
from cli.devnet.processes import (
    NodeProcess,
)
from cli.devnet.report import DevnetResult
from cli.money import format_amount

__all__ = ["make_payments"]


def make_payments(
    plan: DevnetPlan,
    nodes: list[NodeProcess],
    count: int,
    rng: random.Random,
    result: DevnetResult,
    say: Any,
) -> None:
    """K payments through the payers' nodes; counts and latencies into ``result``."""
    coops = len(plan.dirs)
    reasons: Counter[str] = Counter()
    for number in range(1, count + 1):
        payer_coop = rng.randrange(coops)
        payee_coop = rng.choice([c for c in range(coops) if c != payer_coop])
        if rng.random() < BUYER_SHARE:
            payer, payee = f"coop{payer_coop}-m0", f"coop{payee_coop}-m1"
        else:
            payer = f"coop{payer_coop}-m{rng.randrange(MEMBERS_PER_COOP)}"
            payee = f"coop{payee_coop}-m{rng.randrange(MEMBERS_PER_COOP)}"
        amount = rng.randint(*AMOUNTS)
        shown = format_amount(amount, plan.charter.scale, plan.charter.currency)
        node = nodes[plan.agents[payer].node]
        started = time.perf_counter()
        try:
            answer = node.client.call(
                "pay",
                {
                    "from": payer,
                    "to": str(plan.agents[payee].key),
                    "amount": amount,
                    "memo": f"devnet payment {number}",
                },
            )
        except ApiError as exc:
            result.failed += 1
            reasons[f"error: {exc}"[:80]] += 1
            say(f"payment {number}/{count}: {payer} -> {payee} {shown}: FAILED: {exc}")
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if answer.get("committed"):
            result.committed += 1
            result.latencies_ms.append(elapsed)
            outcome = f"committed in {elapsed:.0f} ms"
        else:
            result.refused += 1
            reason = str(answer.get("reason") or "no reason")
            reasons[_rule_of(reason)] += 1
            outcome = f"refused: {reason}"
        say(f"payment {number}/{count}: {payer} -> {payee} {shown}: {outcome}")
    result.payments = count
    result.reasons = dict(reasons)


def _rule_of(reason: str) -> str:
    head, sep, _rest = reason.partition(":")
    if sep and head and all(c.isalnum() or c == "-" for c in head):
        return head
    return reason[:60]

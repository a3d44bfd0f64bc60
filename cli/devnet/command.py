"""``conode devnet`` itself: prepare, start, pay, converge, audit, stop — always stop, even on
Ctrl-C or SIGTERM — and report."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from cli.datadir import make_empty_dir
from cli.devnet.checks import audit_all, converge
from cli.devnet.plan import (
    START_TIMEOUT,
    VOTING_PERIOD_US,
    DevnetOptions,
    DevnetPlan,
    approve_apps,
    builtin_app_pins,
    prepare,
)
from cli.devnet.processes import (
    NodeProcess,
    start_nodes,
    stop_nodes,
    wait_until_held,
)
from cli.devnet.report import DevnetResult, print_summary
from cli.devnet.workload import make_payments
from cli.scenario import MONTH_LEAD_S, VOTING_PERIOD_S, clock_offset_ms, run_full

__all__ = ["run_devnet"]


class _Stopped(Exception):
    """SIGTERM arrived: unwind and clean up, as for Ctrl-C."""


# -- the command ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the nodes are always stopped."""

    def raise_stopped(_signum: int, _frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, raise_stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _workdir(directory: Path | None) -> tuple[Path, bool]:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="conode-devnet-")), False
    make_empty_dir(directory, "--dir")
    return directory, True


def run_devnet(options: DevnetOptions, out: TextIO, progress: TextIO) -> DevnetResult:
    """Run the whole devnet (see the module docstring); the summary goes to ``out``."""
    started = time.perf_counter()
    seed = options.seed or secrets.token_hex(4)

    def say(line: str) -> None:
        print(f"devnet: {line}", file=progress, flush=True)

    base, kept = _workdir(options.directory)
    nodes: list[NodeProcess] = []
    result = DevnetResult(nodes=options.nodes, seed=seed, data_dir=str(base) if kept else None)
    try:
        with _terminate_as_interrupt():
            say(f"preparing {options.nodes} data dirs in {base} (seed {seed})")
            full = options.scenario == "full"
            lead_at = time.time() + MONTH_LEAD_S
            offset_ms = clock_offset_ms(time.time()) if full else 0
            plan = prepare(
                base,
                options.nodes,
                seed,
                apps=builtin_app_pins(),
                foundation=True,
                voting_period_us=VOTING_PERIOD_S * 1_000_000 if full else VOTING_PERIOD_US,
                clock_offset_ms=offset_ms,
            )
            approve_apps(plan)  # so that `conode lookout ...` and `conode offer ...` work on it
            result.agents = len(plan.agents)
            result.currency, result.scale = plan.charter.currency, plan.charter.scale
            say(f"network {plan.charter.network_id}: {result.agents} agents; starting the nodes")
            nodes = start_nodes(plan, options.log_level, say)
            settled = wait_until_held(plan, nodes, min(options.timeout, START_TIMEOUT))
            say(f"every node sees the others, every chain is held by its holders ({settled:.1f} s)")
            make_payments(plan, nodes, options.payments, random.Random(seed), result, say)
            if full:

                def next_month(offset_ms: int) -> None:
                    """Stop every node, move its clock on, start them again (``nodes`` in place)."""
                    stop_nodes(nodes)
                    for data in plan.dirs:
                        data.write_config(
                            dataclasses.replace(data.config(), clock_offset_ms=offset_ms)
                        )
                    nodes[:] = start_nodes(plan, options.log_level, say)
                    wait_until_held(plan, nodes, min(options.timeout, START_TIMEOUT))

                scenario = run_full(
                    plan,
                    nodes,
                    say,
                    month_turns_at=lead_at,
                    offset_ms=offset_ms,
                    next_month=next_month,
                )
                result.scenario = scenario.as_json()
                result.scenario_ok = not scenario.problems
            say("waiting for the nodes to converge")
            result.converged, waited = converge(plan, nodes, options.timeout)
            result.convergence_s = round(waited, 2)
            say(
                f"converged in {waited:.1f} s"
                if result.converged
                else f"NOT converged after {waited:.0f} s"
            )
            say("auditing every chain on a node that does not host it")
            audit_all(plan, nodes, result)
            print_summary(result, plan, out, time.perf_counter() - started)
            if options.keep_running:
                _keep_running(plan, nodes, out, say)
            say("stopping the nodes")
            result.clean_stop = stop_nodes(nodes)
            nodes = []
    except (KeyboardInterrupt, _Stopped):
        say("interrupted: stopping the nodes")
        if nodes:
            stop_nodes(nodes)
            nodes = []
        if not kept:
            shutil.rmtree(base, ignore_errors=True)
            kept = True  # nothing left to keep
        raise KeyboardInterrupt from None
    finally:
        if nodes:
            stop_nodes(nodes)
        if not kept:
            if result.ok and result.clean_stop:
                shutil.rmtree(base, ignore_errors=True)
            else:  # a failed run keeps its data dirs: the node logs say why
                result.data_dir = str(base)
                say(f"the data dirs and node logs are kept in {base}")
    result.elapsed_s = round(time.perf_counter() - started, 2)
    if not result.clean_stop:
        say("a node did not stop cleanly (see its node.log)")
    return result


def _keep_running(plan: DevnetPlan, nodes: list[NodeProcess], out: TextIO, say: Any) -> None:
    print("", file=out)
    print("the nodes keep running; reach them with:", file=out)
    for node in nodes:
        agents = ", ".join(m.name for m in plan.hosted_by(node.index))
        print(
            f"  conode --data-dir {node.data.root} status    # node {node.index}: {agents}",
            file=out,
        )
    apps = ", ".join(pin.id for pin in plan.charter.params.apps)
    if apps:
        print(f"every node runs the apps {apps}: try `conode lookout board`", file=out)
    print(f"join through node 0: --bootstrap {nodes[0].addrs[0]}", file=out)
    print("press Ctrl-C to stop them", file=out, flush=True)
    try:
        while any(node.process.poll() is None for node in nodes):
            time.sleep(0.5)
        say("every node has exited")
    except (KeyboardInterrupt, _Stopped):
        say("stopping")

"""Benchmark of the members' web page: server time of its pages, and what serving them costs payments.

Two nodes on the in-memory network (one process, real SQLite stores),
node 0 running the exchange and serving the page (``WebServer`` on a real
loopback socket, the same code as ``conode run``). A member on node 0 has
10 000 payments in its history (alternating in and out with a member of
node 1: real countersigned payments) and node 0's co-op 10 000 offers
(``--quick``: 1 000 of each). Then:

- **server time** of the home, history and search pages: ``WebSite.handle``
  for a logged-in member, p50 and p99 over the pages asked in turn, with the
  reference measured in the same run: the data each page reads without its
  HTML (``NodePort.history``, ``search_offers``; the home page's: every call
  it makes), and the login page (a template and nothing else);
  targets p50 <= 30 ms, p99 <= 150 ms;
- **payment latency** (a member of node 0 pays one of node 1, the payer's
  ``Node.pay`` wall time), p50 over 100 payments (``--quick``: 40), quiet
  and while a separate process asks the page for 20 pages a second over
  HTTP (home, history, search in turn), in four turns of each (the loader
  stopped with SIGSTOP for the quiet turns), so that a change in the shared
  machine's load falls on both; ``payment_p50_ratio`` = loaded / quiet, target
  <= 1.5; the load process's achieved rate and its pages' p50 are reported;
- **idle RSS** of a node process (``conode.daemon.serve`` with one co-op, 10 s
  after it listens, as ``bench/network.py`` measures it) with the page off
  and on (on: after one page was served, so its templates are loaded).

Usage: ``python bench/web.py [--quick] [--payments N] [--offers N]``. The last line is one JSON object
with every figure and the one-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import trio

sys.path.insert(0, str(Path(__file__).parent))
from network import prepare_daemon_dir  # bench/ is not a package

from conode.apphost import AppCatalog, AppHost, AppPlan
from conode.apps.exchange import app as exchange
from conode.apps.hosting import NodeApps
from conode.node import NodeSettings
from conode.testing.network import TestNetwork
from conode.web.adapter import NodeAdapter
from conode.web.http import Request
from conode.web.server import WebConfig, WebServer
from conode.web.users import UserFile

RUNNING: Final = {"exchange": exchange}
_VOCABULARY: Final = (
    "bread loaf rye sourdough eggs milk cheese butter apples pears honey jam tomatoes beans "
    "repair bicycle sewing plumbing carpentry solar insulation heating childcare tutoring "
    "transport delivery cleaning laundry printing design accounting legal coffee tea beer "
    "wool cotton soap candles pottery furniture tools seeds compost firewood bakery garden"
)
WORDS: Final = tuple(_VOCABULARY.split())
SETTINGS: Final = NodeSettings(
    replication=3, request_timeout=5.0, gossip_interval=2.0, publish_interval=1.0,
    hello_interval=5.0, session_timeout_us=5_000_000, retry_interval_us=1_000_000,
)  # fmt: skip
LOAD_RATE: Final = 20.0
LOAD: Final = textwrap.dedent(
    """
    import http.client, json, sys, time
    host, port, cookie = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rate, seconds = float(sys.argv[4]), float(sys.argv[5])
    paths = sys.argv[6:]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    start = time.perf_counter(); times = []; bad = 0; i = 0
    while time.perf_counter() - start < seconds:
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause < -1.0:  # it was stopped (the bench's quiet turn): no burst to catch up
            start, pause = time.perf_counter() - i / rate, 0.0
        if pause > 0:
            time.sleep(pause)
        t = time.perf_counter()
        conn.request("GET", paths[i % len(paths)], headers={"Cookie": cookie})
        response = conn.getresponse(); response.read()
        times.append((time.perf_counter() - t) * 1000)
        bad += response.status != 200
        i += 1
    elapsed = time.perf_counter() - start
    times.sort()
    print(json.dumps({"pages": i, "rate": i / elapsed, "bad": bad, "p50_ms": times[len(times) // 2]}))
    """
)
DAEMON: Final = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from conode.crypto import Signer
    from conode.daemon import DaemonConfig, serve
    from conode.node import HostedAgent
    from conode.validation.charter import Charter
    d = Path(sys.argv[1])
    web = None
    if sys.argv[2] == "on":
        from conode.web.server import WebConfig
        web = WebConfig(data_dir=d, listen="127.0.0.1:0")
    charter = Charter.from_bytes((d / "charter.cbor").read_bytes())
    agent = HostedAgent("coop0", Signer((d / "agent.seed").read_bytes()))
    trio.run(serve, DaemonConfig(store_path=d / "conode.db", socket_path=d / "conode.sock", charter=charter,
        node_seed=(d / "node.seed").read_bytes(), agents=[agent], ready_file=d / "ready", web=web))
    """
)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(
    fn: Callable[[], Awaitable[Any]], count: int, cpu: list[float] | None = None
) -> list[float]:
    """Wall times (ms) of ``count`` sequential calls (and their CPU times into ``cpu``: the
    process's, which the shared machine's load hardly moves; nothing else runs meanwhile
    but the two nodes' idle tasks)."""
    out = []
    for _ in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - start_cpu) * 1000)
    return out


async def fill(net: TestNetwork, host: AppHost, payments: int, offers: int) -> None:
    """``offers`` by coop0, then ``payments`` between coop0-m0 and coop1-m0 (alternating); each
    phase ends once node 0's publishing queue is empty (node 1, in the same process, takes the
    offers in more slowly than node 0 posts them), so the pages are measured on settled nodes.

    An ``offer-add`` once took seconds at 7 400 offers: every publishing round read and sent
    the whole queue (now a page a round, ``conode.node.publishing``).
    """
    started = time.perf_counter()
    coop = str(net.agents["coop0"])
    for i in range(offers):
        words = " ".join(WORDS[(i * k + k) % len(WORDS)] for k in (1, 7, 13))
        await host.call(
            "exchange",
            "offer-add",
            {"title": f"{words} {i}", "category": f"cat{i % 20}", "price": 100 + i % 900,
             "unit": "unit", "quantity": 10, "days": 365},
            agent=coop,
            resolve=lambda text, _hosted: net.agents["coop0"],
        )  # fmt: skip
    print(f"  {offers} offers posted in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    await published(net)
    started = time.perf_counter()
    for i in range(payments):
        payer, payee = ("coop0-m0", "coop1-m0") if i % 2 == 0 else ("coop1-m0", "coop0-m0")
        result = await net.pay(payer, payee, 100, WORDS[i % len(WORDS)])
        assert result.committed, result.reason
    print(f"  {payments} payments made in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    await published(net)


async def published(net: TestNetwork) -> None:
    """Wait until no node has a record left to publish; say how long it took."""
    started = time.perf_counter()
    while any(node.store.publishing_count() for node in net.nodes):
        await trio.sleep(0.5)
    print(f"  published everywhere {time.perf_counter() - started:.0f} s later", file=sys.stderr)


def get(site: Any, cookie: str, path: str) -> Callable[[], Awaitable[Any]]:
    split = urlsplit(path)
    headers = {"host": "127.0.0.1", "cookie": cookie, "accept-language": "en"}
    request = Request("GET", split.path, dict(parse_qsl(split.query)), headers, b"", "127.0.0.1")

    async def call() -> None:
        response = await site.handle(request)
        assert response.status == 200, (path, response.status)

    return call


async def pay_times(net: TestNetwork, count: int, first: int) -> list[float]:
    """The payer's wall times (ms) of ``count`` payments between members of the two nodes, the
    ``first``-th payment of the run first: they alternate across turns, so an odd number a
    turn (25 in the full run) never walks a member down to its credit limit."""
    times = []
    for i in range(first, first + count):
        payer, payee = ("coop0-m1", "coop1-m1") if i % 2 == 0 else ("coop1-m1", "coop0-m1")
        result = await net.pay(payer, payee, 100, "bench")
        assert result.committed, result.reason
        times.append(result.elapsed_ms)
    return times


async def measure_pages(
    directory: Path, quick: bool, payments: int | None, offers: int | None
) -> dict[str, Any]:
    payments = payments or (1_000 if quick else 10_000)
    offers = offers or (1_000 if quick else 10_000)
    rounds = 50 if quick else 200
    figures: dict[str, Any] = {"history_payments": payments, "search_offers": offers}
    async with TestNetwork.start(
        directory, nodes=2, members=2, apps=("exchange",), settings=SETTINGS, seed="bench-web"
    ) as net:
        node = net.nodes[0]
        host = AppHost(
            node, AppCatalog(node.store, net.charter, {}), AppPlan((), RUNNING, NodeApps(RUNNING))
        )
        adapter = NodeAdapter(node, host)
        await fill(net, host, payments, offers)
        users = UserFile(directory)
        users.add("ana", agents=(net.agents["coop0-m0"],))
        server = WebServer(adapter, WebConfig(data_dir=directory, listen="127.0.0.1:0"))
        sid, _session = server.site.sessions.start("ana", server.site.clock())
        cookie = f"conode_session={sid}"
        ana = net.agents["coop0-m0"]
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            pages = {
                "home": get(server.site, cookie, "/"),
                "history": get(server.site, cookie, "/history"),
                "search": get(server.site, cookie, "/exchange?q=bread"),
            }

            async def home_data() -> None:
                adapter.agent(ana), adapter.history(ana), adapter.bills(), adapter.inbox(ana)
                adapter.health()

            async def history_data() -> None:
                adapter.history(ana)

            async def search_data() -> None:
                await adapter.search_offers("bread", None, None, None)

            refs = {"home": home_data, "history": history_data, "search": search_data}
            for name, page in pages.items():  # the first view builds the history cache: timed apart
                first = await timed(page, 1)
                figures[f"{name}_first_ms"] = round(first[0], 2)
            login = get(server.site, "", "/login")
            times: dict[str, list[float]] = {name: [] for name in pages}
            cpu_times: dict[str, list[float]] = {name: [] for name in pages}
            ref_times: dict[str, list[float]] = {name: [] for name in pages}
            login_times: list[float] = []
            for _ in range(rounds):  # interleaved, so a burst of load elsewhere hits all alike
                for name, page in pages.items():
                    times[name] += await timed(page, 1, cpu_times[name])
                    ref_times[name] += await timed(refs[name], 1)
                login_times += await timed(login, 1)
            for name in pages:
                figures[f"{name}_p50_ms"] = round(percentile(times[name], 0.5), 2)
                figures[f"{name}_p99_ms"] = round(percentile(times[name], 0.99), 2)
                figures[f"{name}_data_p50_ms"] = round(percentile(ref_times[name], 0.5), 2)
                figures[f"{name}_cpu_p50_ms"] = round(percentile(cpu_times[name], 0.5), 2)
            figures["login_page_p50_ms"] = round(percentile(login_times, 0.5), 2)
            figures["page_p99_ms"] = max(figures[f"{n}_p99_ms"] for n in pages)
            print(f"  pages: {json.dumps(figures)}", file=sys.stderr)  # kept should a later step fail

            count = 40 if quick else 100
            turns = 4  # quiet and loaded in turns, so a change of the machine's load hits both
            url = urlsplit(server.url)
            loader = subprocess.Popen(
                [sys.executable, "-c", LOAD, url.hostname or "127.0.0.1", str(url.port), cookie,
                 str(LOAD_RATE), "3600", "/", "/history", "/exchange?q=bread"],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            quiet_ms: list[float] = []
            loaded_ms: list[float] = []
            try:
                for _turn in range(turns):
                    loader.send_signal(signal.SIGSTOP)
                    await trio.sleep(0.2)
                    quiet_ms += await pay_times(net, count // turns, len(quiet_ms) + len(loaded_ms))
                    loader.send_signal(signal.SIGCONT)
                    await trio.sleep(1.0)
                    loaded_ms += await pay_times(net, count // turns, len(quiet_ms) + len(loaded_ms))
            finally:
                loader.send_signal(signal.SIGCONT)
                loader.terminate()
            loader.wait(10)
            quiet, loaded = statistics.median(quiet_ms), statistics.median(loaded_ms)
            # the loader was stopped early: its summary is lost, so it is asked again for a short run
            check = await trio.to_thread.run_sync(
                lambda: (
                    subprocess.run(
                        [
                            sys.executable,
                            "-c",
                            LOAD,
                            url.hostname or "127.0.0.1",
                            str(url.port),
                            cookie,
                            str(LOAD_RATE),
                            "5",
                            "/",
                            "/history",
                            "/exchange?q=bread",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
            )
            achieved = json.loads(check)
            figures.update(
                payment_p50_quiet_ms=round(quiet, 2),
                payment_p50_loaded_ms=round(loaded, 2),
                payment_p50_ratio=round(loaded / quiet, 2),
                load_pages_per_s=round(achieved["rate"], 1),
                load_page_p50_ms=round(achieved["p50_ms"], 2),
                load_bad_pages=achieved["bad"],
            )
            nursery.cancel_scope.cancel()
    return figures


def idle_rss(directory: Path, web: bool, idle_s: float) -> float:
    """RSS (MB) of a daemon process ``idle_s`` after it listens (web: after one page served)."""
    directory.mkdir()
    data = directory / "d"
    prepare_daemon_dir(data, 1)
    process = subprocess.Popen(
        [sys.executable, "-c", DAEMON, str(data), "on" if web else "off"], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (data / "ready").exists() or (web and not (data / "web-url").exists()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.02)
        if web:
            import urllib.request

            url = (data / "web-url").read_text().strip()
            with urllib.request.urlopen(url + "login") as response:
                assert response.status == 200
        time.sleep(idle_s)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        return rss_kb / 1024
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 000 payments and offers, fewer rounds"
    )
    parser.add_argument("--payments", type=int, metavar="N", help="payments in the history")
    parser.add_argument("--offers", type=int, metavar="N", help="offers to search")
    args = parser.parse_args()
    before = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        idle_s = 3.0 if args.quick else 10.0
        rss_off = idle_rss(base / "off", False, idle_s)
        rss_on = idle_rss(base / "on", True, idle_s)
        print(f"idle RSS: web off {rss_off:.1f} MB, on {rss_on:.1f} MB (target 80 MB)")
        (base / "pages").mkdir()
        figures = trio.run(measure_pages, base / "pages", args.quick, args.payments, args.offers)
    for name in ("home", "history", "search"):
        print(
            f"{name}: p50 {figures[f'{name}_p50_ms']} ms (CPU {figures[f'{name}_cpu_p50_ms']} ms), "
            f"p99 {figures[f'{name}_p99_ms']} ms "
            f"(its data alone p50 {figures[f'{name}_data_p50_ms']} ms; first view "
            f"{figures[f'{name}_first_ms']} ms); targets p50 <= 30, p99 <= 150"
        )
    print(f"login page (a template only): p50 {figures['login_page_p50_ms']} ms")
    print(
        f"payment p50: quiet {figures['payment_p50_quiet_ms']} ms, while {figures['load_pages_per_s']}"
        f" pages/s are served {figures['payment_p50_loaded_ms']} ms: ratio "
        f"{figures['payment_p50_ratio']} (target <= 1.5)"
    )
    figures.update(
        idle_rss_web_off_mb=round(rss_off, 1),
        idle_rss_web_on_mb=round(rss_on, 1),
        quick=args.quick,
        loadavg_before=before,
        loadavg_after=loadavg(),
        cpus=os.cpu_count(),
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

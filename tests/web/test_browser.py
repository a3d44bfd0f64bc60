"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright, two real nodes.

Two ``conode run`` processes (a devnet's, running the built-in apps, the
Foundation hosted on node 0). Ana (``coop0-m0``) logs in on node 0's page,
Bo (``coop1-m0``) on node 1's, each in a browser context of its own:

- Ana pays Bo from the pay page; Bo's home page, open in the other browser,
  shows the payment arrive (a note and the new balance) without a reload;
- a payment past Ana's credit limit shows its reason in plain words;
- co-op 0 votes on a proposal on the page and the tally counts it;
- every page is photographed at 360 px wide and on a desktop, into the
  directory the test prints (``.test-artifacts/web/``); no picture is blank.

Needs ``/usr/bin/chromium`` (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "network"))
from procs import Net, conode, conode_json, log_tail, start_all, wait_for  # network helpers

from cli.devnet import approve_apps, builtin_app_pins, prepare

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / ".test-artifacts" / "web"
PASSWORD = "correct horse battery"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("web-browser")
    plan = prepare(base / "n", 2, "web-browser", apps=builtin_app_pins(), foundation=True)
    approve_apps(plan)
    net = Net(plan, start_all(plan))
    try:
        net.settle()
        password = base / "password"
        password.write_text(PASSWORD + "\n")
        for index, agent, login in (
            (0, "coop0-m0", "ana"),
            (0, "coop0", "coop0"),
            (1, "coop1-m0", "bo"),
        ):
            conode(net.dir(index), "web", "user", "add", agent, "--login", login,
                   "--password-file", str(password))  # fmt: skip
        yield net
    finally:
        net.stop()


def page_url(net: Net, index: int) -> str:
    return (net.dir(index) / "web-url").read_text().strip()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def log_in(browser: object, url: str, login: str, viewport: dict[str, int] = DESKTOP) -> object:
    context = browser.new_context(viewport=viewport, locale="en-GB")  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(url + "login")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url)
    return page


def flash(page: object) -> str:
    return page.locator(".flash").first.inner_text()  # type: ignore[attr-defined, no-any-return]


def test_a_payment_arrives_on_the_other_nodes_page_without_a_reload(
    two_nodes: Net, browser: object
) -> None:
    net = two_nodes
    ana = log_in(browser, page_url(net, 0), "ana")
    bo = log_in(browser, page_url(net, 1), "bo")
    bo.evaluate("window.__notReloaded = true")  # type: ignore[attr-defined]
    bo.wait_for_function("document.documentElement.dataset.live === 'connected'")  # type: ignore[attr-defined]
    balance = bo.locator("[data-balance]").first  # type: ignore[attr-defined]
    assert balance.inner_text() == "0.00 DEV"

    ana.get_by_role("link", name="Pay", exact=True).click()  # type: ignore[attr-defined]
    ana.get_by_label("To (a name from the directory)").fill("coop1-m0 (coop1 Ltd)")  # type: ignore[attr-defined]
    ana.get_by_label("Amount").first.fill("1.50")  # type: ignore[attr-defined]
    ana.get_by_label("Memo").first.fill("bread")  # type: ignore[attr-defined]
    ana.get_by_role("button", name="Pay", exact=True).click()  # type: ignore[attr-defined]
    assert flash(ana) == "Paid 1.50 DEV to coop1-m0."

    bo.locator(".toast", has_text="Payment received from coop0-m0: 1.50 DEV").wait_for(
        timeout=20_000
    )  # type: ignore[attr-defined]
    bo.wait_for_function(  # type: ignore[attr-defined]
        "document.querySelector('[data-balance]').innerText === '1.50 DEV'", timeout=20_000
    )
    assert bo.evaluate("window.__notReloaded === true")  # type: ignore[attr-defined]
    assert "bread" in bo.locator("#agents").inner_text()  # type: ignore[attr-defined]


def test_a_refused_payment_shows_its_reason(two_nodes: Net, browser: object) -> None:
    ana = log_in(browser, page_url(two_nodes, 0), "ana")
    ana.goto(page_url(two_nodes, 0) + "pay")  # type: ignore[attr-defined]
    ana.get_by_label("To (a name from the directory)").fill("coop1-m0 (coop1 Ltd)")  # type: ignore[attr-defined]
    ana.get_by_label("Amount").first.fill("26.70")  # type: ignore[attr-defined]
    ana.get_by_role("button", name="Pay", exact=True).click()  # type: ignore[attr-defined]
    text = flash(ana)
    assert re.fullmatch(
        r"Refused: coop0-m0 would go \d+\.\d\d DEV below the credit limit of 5\.00 DEV\.", text
    ), text


def test_a_vote_cast_on_the_page_counts_in_the_tally(two_nodes: Net, browser: object) -> None:
    net = two_nodes
    proposed = conode_json(
        net.dir(0), "foundation", "propose", "--amend", "member_limits",
        '{"credit": 900, "cap": 100000}', "--title", "More credit for members", "--as", "coop0",
    )  # fmt: skip
    coop = log_in(browser, page_url(net, 0), "coop0")
    coop.get_by_role("link", name="Foundation").click()  # type: ignore[attr-defined]
    coop.get_by_role("link", name="More credit for members").click()  # type: ignore[attr-defined]
    coop.get_by_label("yes").check()  # type: ignore[attr-defined]
    coop.get_by_role("button", name="Cast the vote").click()  # type: ignore[attr-defined]
    assert flash(coop) == "Your vote (yes) is counted."
    tally = coop.locator(f"[data-tally='{proposed['id']}']").inner_text()  # type: ignore[attr-defined]
    assert tally.startswith("yes 1 · no 0")
    counted = wait_for(
        lambda: conode_json(net.dir(0), "foundation", "show", proposed["id"])["tally"]["yes"] == 1,
        "the node to count the vote", 20,
    )  # fmt: skip
    assert counted


# -- screenshots ---------------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8, depth
            channels = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = prev[x]
            corner = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def not_blank(data: bytes) -> tuple[int, float]:
    """How many colours a picture has, and the share of its pixels not of the commonest one."""
    _width, _height, rows = png_pixels(data)
    counts: dict[bytes, int] = {}
    for row in rows[::4]:
        for x in range(0, len(row) - 3, 3 * 4):
            pixel = row[x : x + 3]
            counts[pixel] = counts.get(pixel, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total


PAGES = ["", "pay", "history", "exchange", "foundation", "lookout", "network"]


def test_every_page_is_photographed_on_a_phone_and_a_desktop(
    two_nodes: Net, browser: object
) -> None:
    net = two_nodes
    url = page_url(net, 0)
    # something to show: a want, then a matching offer (granted credit: the devnet's charter allows it)
    conode(net.dir(0), "want", "add", "Rye bread", "--category", "food/bakery", "--price", "4",
           "--unit", "loaf", "--quantity", "4", "--as", "coop0-m0")  # fmt: skip
    conode(net.dir(0), "offer", "add", "Rye bread loaf", "--category", "food/bakery", "--price",
           "3.50", "--unit", "loaf", "--quantity", "100", "--as", "coop0")  # fmt: skip
    link = conode_json(net.dir(0), "web")["login_link"]  # the operator sees the node pages too
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nscreenshots in {ARTIFACTS}")
    taken = []
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        login = browser.new_context(viewport=viewport).new_page()  # type: ignore[attr-defined]
        login.goto(url + "login")
        taken.append(_shot(login, f"login-{label}"))
        ana = log_in(browser, url, "ana", viewport)
        for name in PAGES[:-1]:
            ana.goto(url + name)  # type: ignore[attr-defined]
            taken.append(_shot(ana, f"{name or 'home'}-{label}"))
        operator = browser.new_context(viewport=viewport).new_page()  # type: ignore[attr-defined]
        operator.goto(link if label == "phone" else conode_json(net.dir(0), "web")["login_link"])
        operator.goto(url + "network")
        assert "Rye bread loaf" in operator.locator("#n-grants + *").inner_text()  # a grant line
        taken.append(_shot(operator, f"network-{label}"))
        # the page fits a phone: nothing wider than the window (no sideways scroll)
        if label == "phone":
            for page in (ana, operator):
                width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
                assert width <= PHONE["width"], (page.url, width)  # type: ignore[attr-defined]
    for path in taken:
        colours, share = not_blank(path.read_bytes())
        assert colours >= 8 and share >= 0.02, (path.name, colours, share)
    (ARTIFACTS / "index.json").write_text(json.dumps([p.name for p in taken], indent=1))
    assert len(taken) == 2 * (len(PAGES) + 1)


def _shot(page: object, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    heading = page.locator("h1").first  # type: ignore[attr-defined]
    heading.wait_for()
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def test_the_node_log_has_no_web_error(two_nodes: Net) -> None:
    for node in two_nodes.nodes:
        tail = log_tail(node, 200_000)
        assert "conode.web" in tail and "Traceback" not in tail, tail[-2000:]

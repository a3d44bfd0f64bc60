"""Who may see and do what on the web page, tried on every route of a page over real nodes.

- without a session nothing is readable, and no form is taken;
- a form without the session's CSRF token, or posted from another origin, is refused
  before anything is done;
- a member never acts as an agent of another login, through any route;
- node pages need an operator login;
- login attempts are rate-limited; a one-time login link works once.
"""

from __future__ import annotations

import pytest
from conftest import PASSWORD, SiteNet

from conode.web.site import routes

# a form for every POST route, naming an agent, bill or item that belongs to `bea` (coop0-m1)
# where the route takes one; the test fills in the keys
POST_FORMS = {
    "/pay": {"as": "{bea}", "to": "coop1-m0", "amount": "1.00"},
    "/bill": {"as": "{bea}", "to": "coop1-m0", "amount": "1.00"},
    "/bills/accept": {"id": "{bill_to_bea}"},
    "/bills/decline": {"id": "{bill_to_bea}"},
    "/exchange/post": {"as": "{bea}", "kind": "want", "title": "x", "category": "food",
                       "price": "1", "unit": "kg", "quantity": "1"},
    "/exchange/renew": {"id": "{want_of_bea}", "kind": "want"},
    "/foundation/vote": {"as": "{bea}", "id": "{proposal}", "choice": "yes"},
    "/foundation/comment": {"as": "{bea}", "id": "{proposal}", "text": "hi"},
    "/lookout/signal": {"as": "{bea}", "title": "t", "source": "s"},
    "/lookout/comment": {"as": "{bea}", "id": "{signal}", "text": "hi"},
    "/lookout/poll": {"as": "{bea}", "id": "{signal}", "choice": "advance"},
    "/network/approve": {"hash": "app_x"},
    "/logout": {},
    "/lang": {"lang": "es"},
    "/login": {"login": "ana", "password": PASSWORD},
}  # fmt: skip
# GET routes that show one agent's data, asked for bea's
GET_AS = ["/pay", "/history", "/history.csv", "/exchange"]
# routes that act on behalf of nobody in particular, or only on the session itself
NOT_AN_AGENT = {"/logout", "/lang", "/login", "/network/approve"}


async def _fixtures(s: SiteNet) -> dict[str, str]:
    """Things of bea's to aim at: a bill to her, her want, a proposal and a signal."""
    node = s.net.nodes[0]
    bea, ana = s.net.agents["coop0-m1"], s.net.agents["coop0-m0"]
    bill = await node.bill(ana, bea, 100, memo="for bea", expires_in_us=3_600_000_000)
    host = s.adapter.host
    assert host is not None
    want = await s.adapter.post_listing(
        bea, "want", {"title": "Eggs", "category": "food", "price": "100", "unit": "dozen",
                      "quantity": "2"},
    )  # fmt: skip
    await s.net.governance[0].propose(
        s.net.agents["coop0"], "amend", "More credit", {"param": "member_limits",
                                                       "value": {"credit": 900, "cap": 100000}},
    )  # fmt: skip
    proposal = s.adapter.proposals()[0]["id"]
    signal = await s.adapter.post_signal(bea, "Heat", "news", "", "energy")
    return {
        "bea": s.key("coop0-m1"), "bill_to_bea": str(bill.hash), "want_of_bea": want["hash"],
        "proposal": proposal, "signal": signal,
    }  # fmt: skip


def _fill(form: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    return {k: v.format(**values) for k, v in form.items()}


async def test_every_route_is_covered_by_these_tests(site_net: SiteNet) -> None:
    posts = {path for (method, path) in routes() if method == "POST"}
    assert posts == set(POST_FORMS)


async def test_without_a_session_nothing_is_readable_and_no_form_is_taken(
    site_net: SiteNet,
) -> None:
    s = site_net
    stranger = s.client()
    names = ["coop0-m0", "coop0-m1", "coop0 "]
    for (method, path), who in routes().items():
        if who == "public":
            continue
        if method == "GET":
            response = await stranger.get(f"{path}?as={s.key('coop0-m0')}")
            assert response.status in (303, 403), path
            if response.status == 303:
                assert dict(response.headers)["location"].startswith("/login"), path
        else:
            response = await stranger.request("POST", path, {"csrf": "x", "as": s.key("coop0-m0")})
            assert response.status == 403, path
        body = response.body.decode()
        assert not any(name in body for name in names), (path, body[:300])
        assert s.key("coop0-m0") not in body
    history = s.adapter.history(s.net.agents["coop0-m0"])
    assert history == []


async def test_a_form_without_the_csrf_token_is_refused_and_nothing_is_paid(
    site_net: SiteNet,
) -> None:
    s = site_net
    ana = await s.logged_in("ana")
    await ana.get("/pay")
    form = {"to": "coop1-m0", "amount": "1.00"}
    missing = await ana.request("POST", "/pay", form)
    wrong = await ana.request("POST", "/pay", {**form, "csrf": "not-the-token"})
    assert missing.status == wrong.status == 403
    assert "expired or did not come from this page" in ana.text(missing)
    assert s.adapter.history(s.net.agents["coop0-m0"]) == []
    paid = await ana.post("/pay", form)  # with the token: taken
    assert paid.status == 303
    assert len(s.adapter.history(s.net.agents["coop0-m0"])) == 1


async def test_a_form_from_another_origin_is_refused_even_with_the_token(site_net: SiteNet) -> None:
    s = site_net
    ana = await s.logged_in("ana")
    await ana.get("/pay")
    form = {"csrf": ana.csrf, "to": "coop1-m0", "amount": "1.00"}
    ana.origin = "https://evil.example"
    assert (await ana.request("POST", "/pay", form)).status == 403
    ana.origin = None
    cross = await ana.request("POST", "/pay", form, headers={"sec-fetch-site": "cross-site"})
    assert cross.status == 403
    assert s.adapter.history(s.net.agents["coop0-m0"]) == []


async def test_a_member_cannot_act_as_another_members_agent_on_any_route(site_net: SiteNet) -> None:
    s = site_net
    values = await _fixtures(s)
    ana = await s.logged_in("ana")
    bea_key = s.net.agents["coop0-m1"]
    before = s.net.nodes[0].store.head(bea_key)
    for path, form in POST_FORMS.items():
        if path in NOT_AN_AGENT:
            continue
        await ana.get("/")
        response = await ana.post(path, _fill(form, values))
        assert response.status == 403, (path, ana.text(response)[:400])
    for path in GET_AS:
        response = await ana.get(f"{path}?as={values['bea']}")
        assert response.status == 403, path
    assert s.net.nodes[0].store.head(bea_key) == before  # nothing was written on bea's chain
    assert [b["status"] for b in s.adapter.bills() if b["id"] == values["bill_to_bea"]] == ["open"]


async def test_node_pages_need_an_operator_login(site_net: SiteNet) -> None:
    s = site_net
    ana = await s.logged_in("ana")
    assert (await ana.get("/network")).status == 403
    assert (await ana.post("/network/approve", {"hash": "app_x"})).status == 403
    op = await s.logged_in("op")
    page = await op.get("/network")
    assert page.status == 200
    assert "coop1-m0" in op.text(page)  # the directory


async def test_login_attempts_are_rate_limited(site_net: SiteNet) -> None:
    s = site_net
    client = s.client()
    for _ in range(5):
        assert (await client.login("ana", "wrong password")).status == 401
    limited = await client.login("ana", PASSWORD)  # the right password, too late
    assert limited.status == 429
    assert "Too many failed attempts" in client.text(limited)
    assert not any("session" in k for k in client.cookies)
    other = s.client()  # another login from the same address is limited too (per address)
    assert (await other.login("bea", PASSWORD)).status == 429


async def test_a_one_time_login_link_works_once(site_net: SiteNet) -> None:
    s = site_net
    token = s.users.new_link("op", s.site.clock())
    first, second = s.client(), s.client()
    opened = await first.get(f"/login/link?t={token}")
    assert opened.status == 303
    assert (await first.get("/network")).status == 200
    assert (await second.get(f"/login/link?t={token}")).status == 401
    assert (await second.get("/network")).status == 303  # to the login page


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
async def test_a_login_never_leads_to_another_site(site_net: SiteNet, target: str) -> None:
    client = site_net.client()
    await client.get("/login")
    response = await client.post("/login", {"login": "ana", "password": PASSWORD, "next": target})
    assert dict(response.headers)["location"] == "/"

"""``conode web`` and ``conode web user``: logins in a private file, one-time links, and a page that is
never exposed beyond loopback without TLS."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "network"))
from procs import conode  # the real command, as a subprocess

from cli.datadir import DataDir
from cli.runner import RunPlan, web_settings
from conode.errors import ConodeError
from conode.web.server import WebConfig, check_exposure
from conode.web.users import UserFile

PASSWORD = "correct horse battery"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "d"
    conode(root, "init")
    conode(root, "agent", "new", "ana", "--no-passphrase")
    return root


def test_a_web_login_is_added_listed_and_removed_and_its_file_is_private(
    data: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    added = json.loads(
        conode(data, "web", "user", "add", "ana", "--password-file", str(secret), "--json").stdout
    )
    assert added["login"] == "ana" and added["password"] and len(added["agents"]) == 1
    file = data / "web-users.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    text = file.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert UserFile(data).verify("ana", PASSWORD) is not None
    assert UserFile(data).verify("ana", "wrong password") is None
    listed = json.loads(conode(data, "web", "user", "list", "--json").stdout)
    assert [row["login"] for row in listed] == ["ana"]
    conode(data, "web", "user", "remove", "ana")
    assert json.loads(conode(data, "web", "user", "list", "--json").stdout) == []
    gone = conode(data, "web", "user", "remove", "ana", expect=1)
    assert gone.stderr.strip() == "conode: error: no web login 'ana'"


def test_a_short_password_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short\n")
    refused = conode(data, "web", "user", "add", "ana", "--password-file", str(secret), expect=1)
    assert refused.stderr.strip() == "conode: error: a web password has at least 8 characters"
    assert not (data / "web-users.json").exists()


def test_conode_web_gives_a_link_that_opens_once(data: Path) -> None:
    shown = json.loads(conode(data, "web", "--json").stdout)
    assert shown["url"] == "http://127.0.0.1:7448/" and shown["running"] is False
    token = shown["login_link"].split("?t=")[1]
    users = UserFile(data)
    operator = users.use_link(token, 0)
    assert operator is not None and operator.operator and operator.login == "operator"
    assert users.use_link(token, 0) is None  # once
    text = conode(data, "web").stdout  # as text: the address and the link, one a line
    assert text.startswith(
        "web page: http://127.0.0.1:7448/\none-time operator login (15 minutes): "
    )


@pytest.mark.parametrize(
    ("listen", "tls", "proxy", "ok"),
    [
        ("127.0.0.1:7448", False, False, True),
        ("[::1]:7448", False, False, True),
        ("localhost:7448", False, False, True),
        ("0.0.0.0:7448", False, False, False),
        ("192.0.2.10:443", False, False, False),
        ("0.0.0.0:7448", True, False, True),
        ("0.0.0.0:7448", False, True, True),
    ],
)
def test_the_page_is_exposed_beyond_loopback_only_with_tls(
    tmp_path: Path, listen: str, tls: bool, proxy: bool, ok: bool
) -> None:
    cert = tmp_path / "c.pem" if tls else None
    config = WebConfig(tmp_path, listen, tls_cert=cert, tls_key=cert, behind_proxy=proxy)
    if ok:
        check_exposure(config)
    else:
        with pytest.raises(ConodeError, match="without TLS"):
            check_exposure(config)


def test_conode_run_refuses_an_exposed_page_before_it_starts(data: Path) -> None:
    dd = DataDir(data)
    (data / "config.toml").write_text(
        (data / "config.toml").read_text() + 'web_listen = "0.0.0.0:7448"\n'
    )
    plan = RunPlan(dd, "/ip4/127.0.0.1/tcp/0", [], [], [])
    with pytest.raises(ConodeError, match="web_tls_cert and web_tls_key"):
        web_settings(plan)
    plan.behind_proxy = True
    assert web_settings(plan) is not None
    plan.web = False  # --no-web
    assert web_settings(plan) is None

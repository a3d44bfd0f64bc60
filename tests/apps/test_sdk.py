"""The app SDK: schemas, dispatch and the context, functions, bundles, approval and discovery."""

from __future__ import annotations

import ast
import importlib.metadata
import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conode.apps import loader, sdk
from conode.apps.lookout import app as lookout_app
from conode.apps.sdk import (
    App,
    Bool,
    Bytes,
    Context,
    EntryType,
    Fetched,
    Hash,
    Int,
    LinkType,
    ListOf,
    Map,
    OneOf,
    Optional,
    Role,
    Text,
    bundle_hash,
    may_run,
    pack_bundle,
    unpack_bundle,
    verify_bundle,
)
from conode.chain import ActionKind, author_record
from conode.errors import AppError
from conode.hashes import ActionHash, AgentKey, BundleHash, EntryHash
from conode.testing import Ledger
from conode.validation.charter import AppPin
from conode.validation.governance import PROPOSAL, ProposalKind
from conode.validation.schema import SchemaError
from conode.validation.verdict import VALID, Invalid, Missing, Valid, Verdict

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "conode" / "apps"


def rule(verdict: Verdict) -> str:
    assert isinstance(verdict, Invalid), f"expected a refusal, got {verdict!r}"
    return verdict.rule


def refuses(field: sdk.Field, value: Any, path: str = "x") -> str:
    with pytest.raises(SchemaError) as info:
        field.read(value, path)
    return str(info.value)


# -- fields ------------------------------------------------------------------------------------------


def test_scalar_fields_read_exactly_their_type() -> None:
    assert Text(3).read("abc", "t") == "abc"
    assert "t: must be text of 1 to 3" in refuses(Text(3, min_len=1), "", "t")
    assert refuses(Text(3), b"abc")
    assert refuses(Text(10, pattern=r"[a-z]+"), "ab1")
    assert Int(0, 10).read(10, "n") == 10
    assert refuses(Int(0, 10), 11) and refuses(Int(0, 10), True) and refuses(Int(), 1.0)
    assert Bool().read(False, "b") is False
    assert refuses(Bool(), 0)
    assert Bytes(2).read(b"ab", "b") == b"ab"
    assert refuses(Bytes(2), b"abc") and refuses(Bytes(2), "ab")


def test_a_hash_field_reads_its_own_kind_only() -> None:
    action = ActionHash.of(b"a")
    assert Hash(ActionHash).read(action.to_bytes(), "h") == action
    assert "expected an action hash" in refuses(Hash(ActionHash), EntryHash.of(b"a").to_bytes())
    assert refuses(Hash(ActionHash), action.raw)  # 32 bytes: no kind byte
    assert Hash(ActionHash).write(action, "h") == action.to_bytes()


def test_one_of_compares_type_and_value() -> None:
    field = OneOf("yes", "no", 1)
    assert field.read("yes", "c") == "yes" and field.read(1, "c") == 1
    assert refuses(field, "maybe") and refuses(field, True) and refuses(field, "1")
    with pytest.raises(ValueError):
        OneOf()


def test_lists_and_nested_maps_name_the_path_of_what_fails() -> None:
    field = Map(
        {
            "people": ListOf(Map({"name": Text(10, min_len=1), "age": Optional(Int(0, 150))}), 3),
            "tags": ListOf(Text(5), 4, min_len=1, unique=True),
        }
    )
    good = {"people": [{"name": "Ada"}, {"name": "Bo", "age": None}], "tags": ["a"]}
    read = field.read(good, "")
    assert read["people"][0] == {"name": "Ada", "age": None}
    assert read["tags"] == ("a",)
    assert "people[1].name" in refuses(
        field, {**good, "people": [{"name": "Ada"}, {"name": ""}]}, ""
    )
    assert "people[0].age" in refuses(field, {**good, "people": [{"name": "A", "age": -1}]}, "")
    assert "people[0]: has unknown fields x" in refuses(
        field, {**good, "people": [{"name": "A", "x": 1}]}, ""
    )
    assert "tags: is missing" in refuses(field, {"people": []}, "")
    assert "tags[1]: appears twice" in refuses(field, {**good, "tags": ["a", "a"]}, "")
    assert "tags: must be a list of 1 to 4" in refuses(field, {**good, "tags": []}, "")
    assert "people: must be a list of 0 to 3" in refuses(
        field, {**good, "people": [{"name": "A"}] * 4}, ""
    )
    assert refuses(field, [], "")


def test_write_makes_the_cbor_value_and_refuses_what_would_not_read() -> None:
    kind = EntryType(
        "note",
        {"about": Hash(ActionHash), "tags": ListOf(Text(5), 3), "by": Optional(Hash(AgentKey))},
    )
    about = ActionHash.of(b"x")
    assert kind.write({"about": about, "tags": ("a", "b")}) == {
        "about": about.to_bytes(),
        "tags": ["a", "b"],
    }
    assert kind.read(kind.write({"about": about, "tags": []}))["about"] == about
    with pytest.raises(SchemaError, match="tags"):
        kind.write({"about": about, "tags": "ab"})
    with pytest.raises(SchemaError, match="about: is missing"):
        kind.write({"tags": []})
    with pytest.raises(SchemaError, match="unknown fields colour"):
        kind.write({"about": about, "tags": [], "colour": "red"})


def test_every_type_may_carry_its_rules_head_and_may_not_redeclare_it() -> None:
    kind = EntryType("note", {"text": Text(10)})
    head = ActionHash.of(b"head")
    assert kind.read({"text": "", "rules": head.to_bytes()})["rules"] == head
    assert kind.read({"text": ""})["rules"] is None
    with pytest.raises(ValueError, match="reserved"):
        EntryType("note", {"rules": Text(10)})
    link = LinkType("by-x", tag=Text(3))
    base, target = EntryHash.of(b"b"), ActionHash.of(b"t")
    value = {
        "base": base.to_bytes(),
        "target": target.to_bytes(),
        "tag": "abc",
        "rules": head.to_bytes(),
    }
    assert link.read(value) == {"base": base, "target": target, "tag": "abc", "rules": head}


# -- declaring apps ---------------------------------------------------------------------------------------


def test_app_ids_and_type_names_are_checked_when_declared() -> None:
    for bad in ("Credit", "credit", "gov", "", "a/b", "x" * 32):
        with pytest.raises(ValueError):
            App(bad, "1")
    with pytest.raises(ValueError):
        EntryType("Bad Name", {})
    with pytest.raises(ValueError, match="twice"):
        App("a", "1", [EntryType("x", {})], [LinkType("x")])
    assert list(App("a" * 31, "1", [EntryType("b" * 31, {})]).entry_types) == [
        "a" * 31 + "/" + "b" * 31
    ]
    app = App("demo", "1", [EntryType("x", {})], [LinkType("by-y")])
    assert list(app.entry_types) == ["demo/x"] and list(app.link_types) == ["demo/by-y"]
    assert app.type_name("x") == "demo/x" == app.type_name("demo/x")
    with pytest.raises(KeyError):
        app.type_name("nope")


def test_functions_register_by_name() -> None:
    app = App("demo", "1")

    @app.function
    def sum_up(api: Any, n: int) -> int:
        return n

    @app.function("go")
    async def whatever(api: Any) -> None:
        return None

    assert app.functions == {"sum-up": sum_up, "go": whatever}
    with pytest.raises(ValueError, match="already"):
        app.function("go")(sum_up)
    with pytest.raises(ValueError):
        app.function("Not OK")(sum_up)
    assert set(lookout_app.functions) >= {"board", "feed", "signal", "poll"}


# -- dispatch and the context, through the real engine -------------------------------------------------------


def demo_app(**validators: Any) -> App:
    return App(
        "demo",
        "0.1",
        [
            EntryType("note", {"text": Text(100)}, validators.get("note"), updatable=True),
            EntryType("plain", {"n": Int(0, 9)}),
            EntryType("tally", {"n": Int(0, 9)}, unique=lambda e: bytes([e["n"]])),
            EntryType("grant", {"n": Int(0, 9)}, moves_credit=True),
            EntryType("ref", {"to": Hash(ActionHash)}, validators.get("ref")),
        ],
    )


def test_a_type_without_a_validator_is_checked_for_structure_only() -> None:
    ledger = Ledger(apps={"demo": demo_app()})
    assert ledger.create("coop0-m0", "demo/plain", {"n": 3})[1] == VALID
    verdict = ledger.create("coop0-m0", "demo/plain", {"n": 30})[1]
    assert rule(verdict) == "schema" and "demo/plain: n: must be an integer in [0, 9]" in str(
        verdict
    )


def test_the_context_lends_the_entry_rules_party_and_role() -> None:
    seen: list[Context] = []

    def note(ctx: Context) -> Verdict:
        seen.append(ctx)
        return ctx.require_role(Role.COOP)

    ledger = Ledger(apps={"demo": demo_app(note=note)})
    assert rule(ledger.create("coop0-m0", "demo/note", {"text": "hi"})[1]) == "role"
    assert ledger.create("coop0", "demo/note", {"text": "hi"})[1] == VALID
    member, coop = seen
    assert member.entry == {"text": "hi", "rules": None}
    assert member.role() == Role.MEMBER and coop.role() == Role.COOP
    assert member.author == ledger["coop0-m0"].key and member.entry_type == "demo/note"
    party = member.party(ledger["coop1"].key)
    assert not isinstance(party, (Invalid, Missing, Valid)) and party.name == "coop1 Ltd"
    assert member.rules.is_registered_coop(ledger["coop0"].key)
    assert member.timestamp == member.record.action.timestamp


def test_must_get_entry_reads_own_types_by_schema_and_others_raw() -> None:
    got: list[Any] = []

    def ref(ctx: Context) -> Verdict:
        fetched = ctx.must_get_entry(ctx.entry["to"], {"demo/plain", PROPOSAL}, what="to")
        got.append(fetched)
        return fetched if not isinstance(fetched, Fetched) else VALID

    ledger = Ledger(apps={"demo": demo_app(ref=ref)})
    plain, _ = ledger.create("coop0", "demo/plain", {"n": 1})
    proposal, _ = ledger.propose("coop0", ProposalKind.OPAQUE, {"app": "demo", "data": 1})
    note, _ = ledger.create("coop0", "demo/note", {"text": "x"})
    assert ledger.create("coop0-m0", "demo/ref", {"to": plain.hash.to_bytes()})[1] == VALID
    assert ledger.create("coop0-m0", "demo/ref", {"to": proposal.hash.to_bytes()})[1] == VALID
    verdict = ledger.create("coop0-m0", "demo/ref", {"to": note.hash.to_bytes()})[1]
    assert rule(
        verdict
    ) == "reference" and "to is demo/note, not demo/plain or gov/proposal" in str(verdict)
    missing = ActionHash.of(b"absent")
    assert ledger.create("coop0-m0", "demo/ref", {"to": missing.to_bytes()})[1] == Missing(
        (missing,)
    )
    assert got[0].entry == {"n": 1, "rules": None} and got[0].author == ledger["coop0"].key
    assert got[1].entry_type == PROPOSAL and got[1].entry["kind"] == "opaque"


def test_a_validator_that_fails_by_a_bug_raises_instead_of_condemning_the_author() -> None:
    def broken(ctx: Context) -> Verdict:
        raise ValueError("oops")

    def strict(ctx: Context) -> Verdict:
        raise SchemaError("to: deeper shape is wrong")

    ledger = Ledger(apps={"demo": demo_app(note=broken, ref=strict)})
    with pytest.raises(AppError, match="app demo failed on demo/note"):
        ledger.create("coop0", "demo/note", {"text": "x"})
    verdict = ledger.create("coop0", "demo/ref", {"to": ActionHash.of(b"x").to_bytes()})[1]
    assert rule(verdict) == "schema" and "deeper shape" in str(verdict)


def test_updates_are_for_updatable_types_by_their_author_of_the_same_type() -> None:
    ledger = Ledger(apps={"demo": demo_app()})
    note, _ = ledger.create("coop0", "demo/note", {"text": "x"})
    plain, _ = ledger.create("coop0", "demo/plain", {"n": 1})

    def update(name: str, entry_type: str, ref: ActionHash, entry: Any) -> Verdict:
        agent = ledger[name]
        record = author_record(
            agent.signer, agent.activity.head, kind=ActionKind.UPDATE, timestamp=ledger.now(),
            entry=entry, entry_type=entry_type, ref=ref,
        )  # fmt: skip
        return ledger.commit(name, record)

    assert update("coop0", "demo/note", note.hash, {"text": "y"}) == VALID
    assert rule(update("coop1", "demo/note", note.hash, {"text": "y"})) == "update"
    assert rule(update("coop0", "demo/note", plain.hash, {"text": "y"})) == "update"
    assert rule(update("coop0", "demo/plain", plain.hash, {"n": 2})) == "update"


def test_a_unique_key_is_carried_as_once_and_its_second_use_is_refused_by_the_fold() -> None:
    app = demo_app()
    ledger = Ledger(apps={"demo": app})
    entries = [app.entry("tally", n=n) for n in (1, 2, 1)]
    assert [e["once"] for e in entries] == [b"\x01", b"\x02", b"\x01"]
    verdicts = [ledger.create("coop0", "demo/tally", e)[1] for e in entries]
    assert verdicts[:2] == [VALID, VALID] and rule(verdicts[2]) == "duplicate"
    # another author may use the same key; a key that is not the entry's own is refused
    assert ledger.create("coop1", "demo/tally", app.entry("tally", n=1))[1] == VALID
    forged = {**app.entry("tally", n=3), "once": b"\x09"}
    assert rule(ledger.create("coop1", "demo/tally", forged)[1]) == "once"
    assert rule(ledger.create("coop1", "demo/tally", {"n": 4})[1]) == "once"  # no key at all
    with pytest.raises(ValueError, match="reserved"):
        EntryType("bad", {"once": Bytes(4)})


def valid(verdict: Verdict) -> bool:
    return isinstance(verdict, Valid)


def _grant(app: App, ledger: Ledger, name: str, delta: int) -> Verdict:
    activity = ledger[name].activity
    entry = app.prepare(
        "grant", {"n": 1, "credit": delta}, last_credit=activity.last_credit, balance=activity.balance
    )
    return ledger.create(name, "demo/grant", entry)[1]


def test_an_app_moves_credit_only_if_the_rules_let_it_and_within_the_limits() -> None:
    app = demo_app()
    refused = Ledger(apps={"demo": app})
    assert rule(_grant(app, refused, "coop0", 100)) == "credit-app"
    ledger = Ledger(apps={"demo": app}, app_config={"demo": {"issues_credit": True}})
    assert _grant(app, ledger, "coop0", 100) == VALID
    assert ledger.balances()["coop0"] == 100  # the fold carried the move
    assert valid(ledger.pay("coop0", "coop1", 150))  # a payment follows the move on the chain
    assert _grant(app, ledger, "coop0", -50) == VALID  # recovered
    assert ledger.balances()["coop0"] == -100
    over = ledger.charter.params.coop_limits.cap + 1
    assert rule(_grant(app, ledger, "coop1", over)) == "balance-cap"
    # a move that does not follow the chain: refused by the fold and by the record rules
    stale = app.prepare("grant", {"n": 1, "credit": 5}, last_credit=None, balance=0)
    assert rule(ledger.create("coop0", "demo/grant", stale)[1]) == "prev-credit"
    # a type that does not move credit may not carry a move, and one that does must
    activity = ledger["coop0"].activity
    chained = app.prepare("grant", {"n": 1, "credit": 5}, last_credit=activity.last_credit, balance=activity.balance)
    assert rule(ledger.create("coop0", "demo/plain", {"n": 1, "credit": chained["credit"]})[1]) == "schema"
    assert rule(ledger.create("coop0", "demo/grant", {"n": 1})[1]) == "credit"


def test_app_read_returns_none_for_other_records() -> None:
    ledger = Ledger(apps={"demo": demo_app()})
    plain, _ = ledger.create("coop0", "demo/plain", {"n": 1})
    app = demo_app()
    read = app.read(plain)
    assert read is not None and read.entry["n"] == 1 and read.author == ledger["coop0"].key
    assert app.read(ledger["coop0"].chain[0]) is None  # a genesis
    assert lookout_app.read(plain) is None


def test_an_app_is_an_engine_app_validator() -> None:
    ledger = Ledger(apps={"demo": demo_app()})
    assert isinstance(ledger.engine.apps["demo"], App)
    assert rule(Ledger().create("coop0", "demo/plain", {"n": 1})[1]) == "unknown-app"


# -- bundles -----------------------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    package = root / "myapp"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from myapp.core import app\n")
    (package / "core.py").write_text("app = None\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "README.md").write_text("# myapp\n")
    (package / "pyproject.toml").write_text("[project]\nname = 'myapp'\n")
    # left out: caches, hidden files, compiled and data files
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\0")
    (package / ".secret.py").write_text("x = 1\n")
    (package / "data.json").write_text("{}")
    return package


def test_a_bundle_is_the_same_bytes_for_the_same_files_wherever_and_whenever(
    tmp_path: Path,
) -> None:
    first = bundle_bytes = loader.bundle_bytes(make_tree(tmp_path / "a"))
    other = make_tree(tmp_path / "b")
    for path in other.rglob("*"):
        os.utime(path, (1, 1))
        if path.is_file():
            path.chmod(0o600)
    assert loader.bundle_bytes(other) == first
    assert loader.bundle_bytes(tmp_path / "a" / "myapp") == bundle_bytes
    assert sorted(unpack_bundle(first)) == [
        "myapp/README.md", "myapp/__init__.py", "myapp/core.py", "myapp/pyproject.toml",
        "myapp/sub/__init__.py",
    ]  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert {(m.mtime, m.mode, m.uid, m.uname) for m in tar} == {(0, 0o644, 0, "")}


def test_any_changed_byte_changes_the_hash_and_fails_verification(tmp_path: Path) -> None:
    package = make_tree(tmp_path)
    data = loader.bundle_bytes(package)
    pinned = bundle_hash(data)
    assert verify_bundle(data, pinned)
    (package / "core.py").write_text("app = 1\n")
    changed = loader.bundle_bytes(package)
    assert bundle_hash(changed) != pinned
    assert not verify_bundle(changed, pinned)
    flipped = bytearray(data)
    flipped[600] ^= 1
    assert not verify_bundle(bytes(flipped), pinned)
    assert not verify_bundle(data, BundleHash.of(b"something else"))


def test_pack_bundle_is_independent_of_insertion_order_and_has_a_known_answer() -> None:
    files = {"b/z.py": b"z = 1\n", "b/__init__.py": b"", "b/a/m.md": b"# m\n"}
    data = pack_bundle(files)
    assert pack_bundle(dict(reversed(list(files.items())))) == data
    assert unpack_bundle(data) == files
    # pinned so that a change of the archive format (or of tarfile) is caught before a charter is
    assert bundle_hash(data).raw.hex() == KNOWN_BUNDLE_HASH


KNOWN_BUNDLE_HASH = "852ff48433fb0778c6da8803cba41fe9f770dd33b95c6f434c2cd1f8d0c6e69b"


@pytest.mark.parametrize(
    "path",
    ["../x.py", "/abs.py", "a/../b.py", "a/.x.py", "a.pyc", "a b.py", "a\\b.py", "", "a//b.py"],
)
def test_pack_bundle_refuses_paths_that_are_not_plain_source(path: str) -> None:
    with pytest.raises(ValueError):
        pack_bundle({path: b""})


def test_unpack_refuses_anything_but_a_canonical_bundle() -> None:
    data = pack_bundle({"a/x.py": b"1\n"})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("a/x.py")
        info.size, info.mtime, info.mode = 2, 12345, 0o644
        tar.addfile(info, io.BytesIO(b"1\n"))
    with pytest.raises(AppError, match="canonical"):
        unpack_bundle(out.getvalue())
    with pytest.raises(AppError):
        unpack_bundle(data[:-1024])
    with pytest.raises(AppError):
        unpack_bundle(b"not a tar at all" * 64)
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("a/x.py")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(AppError, match="not a regular file"):
        unpack_bundle(link.getvalue())


def test_bundle_bytes_refuses_symlinks_and_native_code(tmp_path: Path) -> None:
    package = make_tree(tmp_path)
    (package / "evil.py").symlink_to(package / "core.py")
    with pytest.raises(AppError, match="symbolic link"):
        loader.bundle_bytes(package)
    (package / "evil.py").unlink()
    (package / "speedups.so").write_bytes(b"\x7fELF")
    with pytest.raises(AppError, match="native"):
        loader.bundle_bytes(package)
    with pytest.raises(AppError):
        loader.bundle_bytes(tmp_path / "nowhere")


def test_the_lookout_package_bundles(tmp_path: Path) -> None:
    directory = loader.package_dir("conode.apps.lookout")
    assert directory == APPS / "lookout"
    copy = tmp_path / "lookout"
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
    data = loader.bundle_bytes(directory)
    assert loader.bundle_bytes(copy) == data
    assert "lookout/entries.py" in unpack_bundle(data)
    assert loader.package_dir("conode.apps.examples.hours") == APPS / "examples"
    with pytest.raises(AppError):
        loader.package_dir("conode.apps.no_such_app")


# -- approval ------------------------------------------------------------------------------------------------


class MemoryApprovals:
    """An ``ApprovalStore`` in memory (the node keeps one in its store)."""

    def __init__(self) -> None:
        self._approved: dict[BundleHash, tuple[str, str]] = {}

    def approved_bundles(self) -> set[BundleHash]:
        return set(self._approved)

    def approve_bundle(self, bundle: BundleHash, app_id: str, version: str) -> None:
        self._approved[bundle] = (app_id, version)

    def withdraw_bundle(self, bundle: BundleHash) -> None:
        self._approved.pop(bundle, None)


def test_a_node_runs_only_the_exact_approved_code_the_charter_pins() -> None:
    code = pack_bundle({"myapp/__init__.py": b"app = 1\n"})
    pin = AppPin("myapp", "1.0", bundle_hash(code))
    store: sdk.ApprovalStore = MemoryApprovals()
    reason = may_run(pin, store.approved_bundles(), bundle_hash(code))
    assert isinstance(reason, str) and "not approved" in reason
    store.approve_bundle(pin.code_hash, pin.id, pin.version)
    assert may_run(pin, store.approved_bundles(), bundle_hash(code)) is True
    tampered = bundle_hash(pack_bundle({"myapp/__init__.py": b"app = 2\n"}))
    reason = may_run(pin, store.approved_bundles(), tampered)
    assert isinstance(reason, str) and "the charter pins" in reason
    reason = may_run(pin, store.approved_bundles(), None)
    assert isinstance(reason, str) and "no local code" in reason
    # approving some other code does not approve the pinned one
    other = AppPin("myapp", "1.1", tampered)
    store.withdraw_bundle(pin.code_hash)
    store.approve_bundle(tampered, "myapp", "1.1")
    assert may_run(pin, store.approved_bundles(), bundle_hash(code)) != True  # noqa: E712
    assert may_run(other, store.approved_bundles(), tampered) is True


# -- discovery -----------------------------------------------------------------------------------------------


def entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=loader.ENTRY_POINT_GROUP)


def test_discovery_loads_apps_by_entry_point_name() -> None:
    found = loader.discover_apps(
        [
            entry_point("lookout", "conode.apps.lookout:app"),
            entry_point("hours", "conode.apps.examples.hours:app"),
        ]
    )
    assert list(found) == ["hours", "lookout"] and found["lookout"] is lookout_app
    assert isinstance(loader.discover_apps(), dict)  # whatever this environment has installed


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([("exchange", "conode.apps.lookout:app")], "is the app 'lookout'"),
        ([("lookout", "conode.apps.lookout:board")], "not a conode App"),
        ([("gone", "conode.apps.no_such_module:app")], "cannot load"),
        (
            [
                ("lookout", "conode.apps.lookout:app"),
                ("lookout", "conode.apps.lookout.entries:app"),
            ],
            "twice",
        ),
    ],
)
def test_discovery_names_a_broken_app(points: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(AppError, match=message):
        loader.discover_apps([entry_point(n, v) for n, v in points])


# -- purity --------------------------------------------------------------------------------------------------

PURE = sorted(
    [*(APPS / "sdk").glob("*.py"), *(APPS / "lookout").glob("*.py"), *(APPS / "examples").glob("*.py")]
)
FORBIDDEN = {
    "anyio", "asyncio", "datetime", "libp2p", "os", "pathlib", "random", "secrets", "socket",
    "sqlite3", "subprocess", "threading", "time", "trio", "uuid", "importlib",
    "conode.node", "conode.store", "conode.dht", "conode.api", "conode.daemon", "conode.testing",
    "conode.apps.loader",
}  # fmt: skip


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        modules = (
            [a.name for a in node.names] if isinstance(node, ast.Import)
            else [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        )  # fmt: skip
        for module in modules:
            parts = module.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(APPS)))
def test_the_sdk_and_apps_import_no_io_clock_randomness_or_node(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    assert imported(tree) & FORBIDDEN == set()
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert calls & {"open", "print", "input", "exec", "eval"} == set()


def test_the_purity_check_has_modules_to_check() -> None:
    assert len(PURE) >= 6

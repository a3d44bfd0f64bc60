"""Charters written by people: a TOML file (or answers to prompts) -> a ``Charter``; and back to text.

The TOML format is documented in ``docs/user-guide.md`` and shown in full
in ``docs/charter.example.toml``. People write percentages, days and agent
names; the charter stores basis points, microseconds and agent keys. Every
conversion is exact, and an unknown key is an error (a typo must not
silently become a default).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from cli.datadir import CommandError, decode_charter, read_toml
from cli.money import format_amount
from cli.render import days_text, iso_time, jsonable, jsonish, percent_text
from conode.errors import EncodingError
from conode.hashes import AgentKey, BundleHash
from conode.numerals import parse_decimal, parse_whole
from conode.validation.charter import AppPin, Charter, FoundingCoop, Limits, Parameters

__all__ = [
    "DEFAULTS",
    "charter_from_toml",
    "charter_json",
    "charter_lines",
    "prompt_charter",
    "read_toml",
]

_DAY_US: Final = 86_400 * 10**6
DEFAULTS: Final[Mapping[str, Any]] = {
    "scale": 2,
    "foundation_share": 10,
    "quorum": 50,
    "threshold": "50.01",
    "voting_period_days": 14,
    "replication": 3,
    "members_vote": False,
}
"""What an optional key of the charter TOML means when it is left out."""

_TOP: Final = {
    "name",
    "currency",
    "scale",
    "created_at",
    "foundation_share",
    "quorum",
    "threshold",
    "voting_period_days",
    "replication",
    "members_vote",
    "foundation",
    "limits",
    "founding",
    "apps",
    "app_config",
}
_LIMITS: Final = {"credit_limit", "balance_cap"}
_FOUNDING: Final = {"agent", "legal_name", "registration"}
_APP: Final = {"id", "version", "code_hash"}

AgentResolver = Callable[[str], AgentKey]


def charter_from_toml(values: Mapping[str, Any], resolve: AgentResolver, now_us: int) -> Charter:
    """The charter a TOML document describes; ``CommandError`` naming the first bad key."""
    _only(values, _TOP, "the charter")
    name = _text(values, "name")
    currency = _text(values, "currency")
    scale = _int(values.get("scale", DEFAULTS["scale"]), "scale")
    limits = values.get("limits")
    if not isinstance(limits, dict):
        raise CommandError("[limits.coop] and [limits.member] are required (in minor units)")
    _only(limits, {"coop", "member"}, "[limits]")
    founding_items = values.get("founding")
    if not isinstance(founding_items, list) or not founding_items:
        raise CommandError("at least one [[founding]] co-op is required")
    founding = tuple(_founding(item, i, resolve) for i, item in enumerate(founding_items, 1))
    apps = values.get("apps", [])
    if not isinstance(apps, list):
        raise CommandError("apps must be a list of [[apps]] tables")
    pins = tuple(_app(item, i) for i, item in enumerate(apps, 1))
    foundation = values.get("foundation")
    try:
        params = Parameters(
            coop_limits=_limits(limits.get("coop"), "coop"),
            member_limits=_limits(limits.get("member"), "member"),
            foundation_share_bp=_percent_bp(
                values.get("foundation_share", DEFAULTS["foundation_share"]), "foundation_share"
            ),
            quorum_bp=_percent_bp(values.get("quorum", DEFAULTS["quorum"]), "quorum"),
            threshold_bp=_percent_bp(values.get("threshold", DEFAULTS["threshold"]), "threshold"),
            voting_period_us=_days_us(
                values.get("voting_period_days", DEFAULTS["voting_period_days"]),
                "voting_period_days",
            ),
            replication=_int(values.get("replication", DEFAULTS["replication"]), "replication"),
            apps=pins,
            app_config=_app_config(values.get("app_config", {}), pins),
            members_vote=_bool(
                values.get("members_vote", DEFAULTS["members_vote"]), "members_vote"
            ),
        )
        charter = Charter(
            name=name,
            currency=currency,
            scale=scale,
            founding=founding,
            params=params,
            created_at=_created_at(values.get("created_at"), now_us),
            foundation=None if foundation is None else _agent(foundation, "foundation", resolve),
        )
    except ValueError as exc:  # SchemaError: the charter's own checks (share over 50 %, ...)
        raise CommandError(f"the charter is not valid: {exc}") from exc
    # one validation path: what `charter verify` refuses (a 19-character currency, a name
    # too long, ...) is refused here, before any file is written
    return decode_charter(charter.to_bytes(), "the charter")


def prompt_charter(ask: Callable[[str, str], str], say: Callable[[str], None]) -> dict[str, Any]:
    """Ask for each value of a charter (``ask(question, default)`` returns the answer)."""
    values: dict[str, Any] = {
        "name": ask("Network name", ""),
        "currency": ask("Currency code (e.g. RVX)", ""),
        "scale": ask("Decimals of the currency (minor-unit digits)", "2"),
    }
    say("Limits are in minor units (with 2 decimals, 100 = 1.00).")
    values["limits"] = {
        role: {
            "credit_limit": ask(f"Credit limit of a {label} (how far below zero)", default),
            "balance_cap": ask(f"Balance cap of a {label} (how far above zero)", cap),
        }
        for role, label, default, cap in (
            ("coop", "co-op", "1000000", "100000000"),
            ("member", "member", "50000", "1000000"),
        )
    }
    values["foundation_share"] = ask("Foundation share of each grant, percent (0-50)", "10")
    values["quorum"] = ask("Quorum, percent of member co-ops that must vote", "50")
    values["threshold"] = ask("Threshold, percent of votes cast that must say yes", "50.01")
    values["voting_period_days"] = ask("Voting period, days", "14")
    values["replication"] = ask("Replication (copies of each record in the DHT)", "3")
    founding: list[dict[str, str]] = []
    while True:
        number = len(founding) + 1
        agent = ask(
            f"Founding co-op {number}: agent (local name or agt_… key; empty to finish)", ""
        )
        if not agent:
            if founding:
                break
            say("A charter names at least one founding co-op.")
            continue
        founding.append(
            {
                "agent": agent,
                "legal_name": ask(f"Founding co-op {number}: legal name", ""),
                "registration": ask(f"Founding co-op {number}: registration number", ""),
            }
        )
    values["founding"] = founding
    return values


def charter_json(charter: Charter) -> dict[str, Any]:
    """A charter as JSON: raw parameters (minor units, basis points, µs) and readable ones."""
    params = charter.params
    return {
        "network": str(charter.network_id),
        "name": charter.name,
        "currency": charter.currency,
        "scale": charter.scale,
        "created_at": charter.created_at,
        "created": iso_time(charter.created_at),
        "founding": [
            {
                "agent": str(coop.agent),
                "legal_name": coop.legal_name,
                "registration": coop.registration,
            }
            for coop in charter.founding
        ],
        "limits": {
            "coop": {
                "credit_limit": params.coop_limits.credit,
                "balance_cap": params.coop_limits.cap,
            },
            "member": {
                "credit_limit": params.member_limits.credit,
                "balance_cap": params.member_limits.cap,
            },
        },
        "foundation_share_bp": params.foundation_share_bp,
        "quorum_bp": params.quorum_bp,
        "threshold_bp": params.threshold_bp,
        "voting_period_us": params.voting_period_us,
        "replication": params.replication,
        "members_vote": params.members_vote,
        "apps": [
            {"id": app.id, "version": app.version, "code_hash": str(app.code_hash)}
            for app in params.apps
        ],
        "app_config": jsonable(dict(params.app_config)),
        "foundation": None if charter.foundation is None else str(charter.foundation),
    }


def charter_lines(charter: Charter) -> list[str]:
    """A charter as readable lines (amounts in major units, shares in percent)."""
    params = charter.params
    unit = charter.currency

    def money(minor: int) -> str:
        return format_amount(minor, charter.scale, unit)

    lines = [
        f"network        {charter.network_id}",
        f"name           {charter.name}",
        f"currency       {unit}, {charter.scale} decimals (1 {unit} = {10**charter.scale} minor units)",
        f"created        {iso_time(charter.created_at)}",
        f"co-op limits   credit {money(params.coop_limits.credit)}, "
        f"cap {money(params.coop_limits.cap)}",
        f"member limits  credit {money(params.member_limits.credit)}, "
        f"cap {money(params.member_limits.cap)}",
        f"foundation     {percent_text(params.foundation_share_bp)} % of each grant"
        + ("" if charter.foundation is None else f"; key {charter.foundation}"),
        f"votes          quorum {percent_text(params.quorum_bp)} %, "
        f"threshold {percent_text(params.threshold_bp)} %, "
        f"voting period {days_text(params.voting_period_us)} days",
        "voters         "
        + (
            "co-ops and their members (quorum over co-ops)"
            if params.members_vote
            else "co-ops only"
        ),
        f"replication    {params.replication}",
        "apps           "
        + (", ".join(f"{a.id} {a.version} ({a.code_hash})" for a in params.apps) or "none"),
    ]
    lines += [
        f"app config     {app_id}: {jsonish(config)}" for app_id, config in params.app_config.items()
    ]
    lines += [f"founding co-ops ({len(charter.founding)}):"]
    lines += [
        f"  {coop.agent}  {coop.legal_name}  ({coop.registration})" for coop in charter.founding
    ]
    return lines


# -- reading the TOML values ------------------------------------------------------------------


def _only(values: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise CommandError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _text(values: Mapping[str, Any], key: str, where: str = "the charter") -> str:
    value = values.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"{where}: {key} is required (a non-empty string)")
    return value.strip()


def _int(value: Any, key: str) -> int:
    if isinstance(value, str):  # a prompt's answer: the digits 0-9 only
        try:
            return parse_whole(value, key)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if type(value) is not int:
        raise CommandError(f"{key} must be a whole number, not {value!r}")
    return value


def _bool(value: Any, key: str) -> bool:
    if type(value) is not bool:
        raise CommandError(f"{key} must be true or false, not {value!r}")
    return value


def _decimal(value: Any, key: str) -> Decimal:
    if type(value) is bool or not isinstance(value, int | float | str):
        raise CommandError(f"{key} must be a number, not {value!r}")
    if isinstance(value, str):  # a prompt's answer, or a quoted TOML value: the digits 0-9 only
        try:
            return parse_decimal(value, key)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise CommandError(f"{key} must be a number, not {value!r}") from exc
    if not number.is_finite():
        raise CommandError(f"{key} must be a finite number")
    return number


def _percent_bp(value: Any, key: str) -> int:
    """A percentage with at most two decimals, as basis points."""
    bp = _decimal(value, key) * 100
    if bp != bp.to_integral_value():
        raise CommandError(f"{key} = {value}: a percentage has at most two decimals")
    return int(bp)


def _days_us(value: Any, key: str) -> int:
    us = _decimal(value, key) * _DAY_US
    if us != us.to_integral_value():
        raise CommandError(f"{key} = {value}: too precise (at most microseconds)")
    return int(us)


def _limits(value: Any, role: str) -> Limits:
    where = f"[limits.{role}]"
    if not isinstance(value, dict):
        raise CommandError(f"{where} is required: credit_limit and balance_cap in minor units")
    _only(value, _LIMITS, where)
    for key in _LIMITS:
        if key not in value:
            raise CommandError(f"{where}: {key} is required (in minor units)")
    credit = _int(value["credit_limit"], f"{where} credit_limit")
    cap = _int(value["balance_cap"], f"{where} balance_cap")
    if credit < 0 or cap < 0:
        raise CommandError(f"{where}: limits are zero or more")
    return Limits(credit, cap)


def _agent(text: Any, where: str, resolve: AgentResolver) -> AgentKey:
    if not isinstance(text, str) or not text.strip():
        raise CommandError(f"{where}: agent is required (a local agent's name or its agt_… key)")
    try:
        return resolve(text.strip())
    except EncodingError as exc:
        raise CommandError(f"{where}: {exc}") from exc


def _founding(item: Any, number: int, resolve: AgentResolver) -> FoundingCoop:
    where = f"founding co-op {number}"
    if not isinstance(item, dict):
        raise CommandError(f"{where} must be a [[founding]] table")
    _only(item, _FOUNDING, where)
    return FoundingCoop(
        _agent(item.get("agent"), where, resolve),
        _text(item, "legal_name", where),
        _text(item, "registration", where),
    )


def _app(item: Any, number: int) -> AppPin:
    where = f"app {number}"
    if not isinstance(item, dict):
        raise CommandError(f"{where} must be an [[apps]] table")
    _only(item, _APP, where)
    try:
        code_hash = BundleHash.parse(_text(item, "code_hash", where))
    except EncodingError as exc:
        raise CommandError(f"{where}: code_hash: {exc}") from exc
    return AppPin(_text(item, "id", where), _text(item, "version", where), code_hash)


def _app_config(value: Any, pins: tuple[AppPin, ...]) -> dict[str, Any]:
    """``[app_config.<app id>]`` tables: each pinned app's configuration, as the app reads it.

    A TOML value becomes the CBOR value the charter stores: tables, arrays,
    integers, strings and booleans; a float or a time is refused (amounts are
    integers in minor units), and so is the configuration of an app no
    ``[[apps]]`` entry pins (a typo would otherwise configure nothing).
    """
    if not isinstance(value, dict):
        raise CommandError("app_config must be tables: [app_config.<app id>]")
    pinned = {pin.id for pin in pins}
    for app_id in value:
        if app_id not in pinned:
            known = ", ".join(sorted(pinned)) or "none"
            raise CommandError(
                f"[app_config.{app_id}]: no [[apps]] entry pins an app {app_id!r} (pinned: {known})"
            )
    return {app_id: _plain(config, f"app_config.{app_id}") for app_id, config in value.items()}


def _plain(value: Any, where: str) -> Any:
    """A TOML value as a CBOR value the charter can hold; ``CommandError`` naming the key if not."""
    if type(value) in (bool, int, str):
        return value
    if isinstance(value, dict):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float):
        raise CommandError(f"{where} = {value}: conode stores no floats (use an integer)")
    raise CommandError(f"{where}: a {type(value).__name__} cannot be stored (use text or a number)")


def _created_at(value: Any, now_us: int) -> int:
    if value is None:
        return now_us
    if type(value) is int:
        if value < 0:
            raise CommandError("created_at must not be before 1970")
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise CommandError("created_at needs a UTC offset (e.g. 2025-01-01T00:00:00Z)")
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CommandError(f"created_at {value!r} is not an RFC 3339 time") from exc
        if moment.tzinfo is None:
            raise CommandError("created_at needs a UTC offset (e.g. 2025-01-01T00:00:00Z)")
    else:
        raise CommandError(f"created_at must be a time, not {value!r}")
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
    if micros < 0:
        raise CommandError("created_at must not be before 1970")
    return micros

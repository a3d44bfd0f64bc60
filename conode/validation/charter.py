"""The charter: the founding rule-set of a network; its hash is the network id.

The charter is immutable. What may change later lives in ``Parameters`` and is
changed only by ratified amendments (see ``governance``); co-ops are added by
ratified admissions. Amounts are integers in minor units; shares and
thresholds are integers in basis points (1/100 of a percent), never floats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from conode import encoding
from conode.hashes import AgentKey, BundleHash, CharterHash
from conode.validation.schema import (
    SchemaError,
    hash_field,
    int_field,
    list_field,
    map_value,
    opt_hash_field,
    str_field,
)

__all__ = [
    "AMENDABLE",
    "DEFAULT_CLOCK_TOLERANCE_US",
    "DEFAULT_RULES_GRACE_US",
    "DEFAULT_SESSION_TIMEOUT_US",
    "AppPin",
    "Charter",
    "FoundingCoop",
    "Limits",
    "Parameters",
]

BASIS_POINTS: Final = 10_000
MAX_FOUNDATION_SHARE_BP: Final = 5_000
_MAX_AMOUNT: Final = 10**15
_NAME_MAX: Final = 200
_MAX_APP_CONFIG: Final = 64 << 10
DEFAULT_RULES_GRACE_US: Final = 3_600 * 10**6
DEFAULT_SESSION_TIMEOUT_US: Final = 60 * 10**6
"""The longest a payer's offer may stay open (a payee declines one that expires later)."""
DEFAULT_CLOCK_TOLERANCE_US: Final = 600 * 10**6
"""How far apart two honest nodes' clocks may be and still pay each other (ten minutes)."""
"""How long a ratification may take to reach every honest peer (see ``warrants``: stale rules)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A balance must stay within ``[-credit, cap]``."""

    credit: int
    cap: int

    def to_value(self) -> dict[str, Any]:
        return {"credit": self.credit, "cap": self.cap}

    @classmethod
    def from_value(cls, value: Any, what: str = "limits") -> Limits:
        m = map_value(value, what, {"credit", "cap"})
        return cls(int_field(m, "credit", 0, _MAX_AMOUNT), int_field(m, "cap", 0, _MAX_AMOUNT))


@dataclass(frozen=True, slots=True)
class AppPin:
    """An app the network runs: its id, version and the hash of its bundle."""

    id: str
    version: str
    code_hash: BundleHash

    def to_value(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "code_hash": self.code_hash.to_bytes()}

    @classmethod
    def from_value(cls, value: Any) -> AppPin:
        m = map_value(value, "app", {"id", "version", "code_hash"})
        return cls(
            str_field(m, "id", 64, 1),
            str_field(m, "version", 64, 1),
            hash_field(m, "code_hash", BundleHash),
        )


@dataclass(frozen=True, slots=True)
class Parameters:
    """The amendable parameters of a network."""

    coop_limits: Limits
    member_limits: Limits
    foundation_share_bp: int
    quorum_bp: int
    threshold_bp: int
    voting_period_us: int
    replication: int
    apps: tuple[AppPin, ...] = ()
    rules_grace_us: int = DEFAULT_RULES_GRACE_US
    members_vote: bool = False
    """Members of the electorate's co-ops vote too (``governance``: quorum stays over co-ops)."""
    app_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    session_timeout_us: int = DEFAULT_SESSION_TIMEOUT_US
    """The cap on a payment offer's expiry: a payee declines an offer that expires later."""
    clock_tolerance_us: int = DEFAULT_CLOCK_TOLERANCE_US
    """How far apart payer's and payee's clocks may be (expiry, and the body's timestamp)."""

    def __post_init__(self) -> None:
        if not 0 <= self.foundation_share_bp <= MAX_FOUNDATION_SHARE_BP:
            raise SchemaError("foundation_share_bp must be 0 to 5000 (0-50 %)")
        if not 1 <= self.quorum_bp <= BASIS_POINTS:
            raise SchemaError("quorum_bp must be 1 to 10000")
        if not 1 <= self.threshold_bp <= BASIS_POINTS:
            raise SchemaError("threshold_bp must be 1 to 10000")
        if not 1 <= self.voting_period_us <= 366 * 86_400 * 10**6:
            raise SchemaError("voting_period_us must be positive and at most a year")
        if not 1 <= self.replication <= 100:
            raise SchemaError("replication must be 1 to 100")
        if len({app.id for app in self.apps}) != len(self.apps):
            raise SchemaError("an app id appears twice")
        if not 1 <= self.rules_grace_us <= 366 * 86_400 * 10**6:
            raise SchemaError("rules_grace_us must be positive and at most a year")
        if type(self.members_vote) is not bool:
            raise SchemaError("members_vote must be true or false")
        if not 1_000_000 <= self.session_timeout_us <= 3_600 * 10**6:
            raise SchemaError("session_timeout_us must be 1 s to 1 hour")
        if not 0 <= self.clock_tolerance_us <= 3_600 * 10**6:
            raise SchemaError("clock_tolerance_us must be 0 to 1 hour")
        if not isinstance(self.app_config, MappingProxyType):
            object.__setattr__(self, "app_config", _read_app_config(dict(self.app_config)))

    def to_value(self) -> dict[str, Any]:
        return {
            "coop_limits": self.coop_limits.to_value(),
            "member_limits": self.member_limits.to_value(),
            "foundation_share_bp": self.foundation_share_bp,
            "quorum_bp": self.quorum_bp,
            "threshold_bp": self.threshold_bp,
            "voting_period_us": self.voting_period_us,
            "replication": self.replication,
            "apps": [app.to_value() for app in self.apps],
            # written only when they differ from their defaults, so charters made before
            # they existed keep their bytes (and their network id)
            **(
                {}
                if self.rules_grace_us == DEFAULT_RULES_GRACE_US
                else {"rules_grace_us": self.rules_grace_us}
            ),
            **({"members_vote": True} if self.members_vote else {}),
            **({"app_config": dict(self.app_config)} if self.app_config else {}),
            **(
                {}
                if self.session_timeout_us == DEFAULT_SESSION_TIMEOUT_US
                else {"session_timeout_us": self.session_timeout_us}
            ),
            **(
                {}
                if self.clock_tolerance_us == DEFAULT_CLOCK_TOLERANCE_US
                else {"clock_tolerance_us": self.clock_tolerance_us}
            ),
        }

    @classmethod
    def from_value(cls, value: Any) -> Parameters:
        m = map_value(value, "parameters", set(_PARAM_READERS) - _DEFAULTED, _DEFAULTED)
        params = cls(**{name: read(m[name]) for name, read in _PARAM_READERS.items() if name in m})
        if params.to_value() != m:  # one encoding per value: a default is left out, never written
            raise SchemaError("parameters spell out a default value; leave it out")
        return params

    def amended(self, name: str, value: Any) -> Parameters:
        """A copy with parameter ``name`` set from its CBOR ``value``; ``SchemaError`` if invalid.

        ``app_config/<app id>`` sets (or, with null, removes) one app's configuration.
        """
        app, slash, app_id = name.partition("/")
        if app == "app_config" and slash:
            config = dict(self.app_config)
            if value is None:
                config.pop(app_id, None)
            else:
                config[app_id] = value
            return dataclasses.replace(self, app_config=_read_app_config(config))
        if name not in _PARAM_READERS:
            raise SchemaError(f"{name!r} is not an amendable parameter")
        return dataclasses.replace(self, **{name: _PARAM_READERS[name](value)})

    def app_settings(self, app_id: str) -> Any:
        """The configuration the rules give ``app_id`` (any CBOR value), or None."""
        return self.app_config.get(app_id)


def _read_int(value: Any) -> int:
    if type(value) is not int:
        raise SchemaError("expected an integer")
    return value


def _read_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise SchemaError("expected true or false")
    return value


def _read_apps(value: Any) -> tuple[AppPin, ...]:
    if type(value) is not list or len(value) > 64:
        raise SchemaError("apps must be a list of at most 64 apps")
    return tuple(AppPin.from_value(item) for item in value)


def _read_app_config(value: Any) -> Mapping[str, Any]:
    """Per-app configuration: app id -> any canonical CBOR value the app reads itself."""
    if type(value) is not dict or len(value) > 64:
        raise SchemaError("app_config must be a map of at most 64 apps")
    for app_id, config in value.items():
        if type(app_id) is not str or not 1 <= len(app_id) <= 31:
            raise SchemaError("app_config is keyed by app id")
        if len(encoding.encode(config)) > _MAX_APP_CONFIG:
            raise SchemaError(f"app_config of {app_id} is over {_MAX_APP_CONFIG} bytes")
    return MappingProxyType(dict(sorted(value.items())))


_PARAM_READERS: Final[Mapping[str, Any]] = {
    "coop_limits": lambda v: Limits.from_value(v, "coop_limits"),
    "member_limits": lambda v: Limits.from_value(v, "member_limits"),
    "foundation_share_bp": _read_int,
    "quorum_bp": _read_int,
    "threshold_bp": _read_int,
    "voting_period_us": _read_int,
    "replication": _read_int,
    "apps": _read_apps,
    "rules_grace_us": _read_int,
    "members_vote": _read_bool,
    "app_config": _read_app_config,
    "session_timeout_us": _read_int,
    "clock_tolerance_us": _read_int,
}
_DEFAULTED: Final = frozenset(
    {"rules_grace_us", "members_vote", "app_config", "session_timeout_us", "clock_tolerance_us"}
)
AMENDABLE: Final = frozenset(_PARAM_READERS)
"""The parameter names an amendment may set."""


@dataclass(frozen=True, slots=True)
class FoundingCoop:
    """A co-op named in the charter: registered from the network's start."""

    agent: AgentKey
    legal_name: str
    registration: str

    def to_value(self) -> dict[str, Any]:
        return {
            "agent": self.agent.to_bytes(),
            "legal_name": self.legal_name,
            "registration": self.registration,
        }

    @classmethod
    def from_value(cls, value: Any) -> FoundingCoop:
        m = map_value(value, "founding co-op", {"agent", "legal_name", "registration"})
        return cls(
            hash_field(m, "agent", AgentKey),
            str_field(m, "legal_name", _NAME_MAX, 1),
            str_field(m, "registration", _NAME_MAX, 1),
        )


@dataclass(frozen=True, slots=True)
class Charter:
    """The founding rule-set; ``network_id`` is the hash of its canonical bytes."""

    name: str
    currency: str
    scale: int
    founding: tuple[FoundingCoop, ...]
    params: Parameters
    created_at: int
    foundation: AgentKey | None = None

    def __post_init__(self) -> None:
        if not self.founding:
            raise SchemaError("a charter names at least one founding co-op")
        agents = [coop.agent for coop in self.founding]
        if len(set(agents)) != len(agents):
            raise SchemaError("a founding co-op appears twice")
        if not 0 <= self.scale <= 8:
            raise SchemaError("scale (minor-unit digits) must be 0 to 8")

    def to_value(self) -> dict[str, Any]:
        return {
            "conode_charter": 1,
            "name": self.name,
            "currency": self.currency,
            "scale": self.scale,
            "founding": [coop.to_value() for coop in self.founding],
            "params": self.params.to_value(),
            "created_at": self.created_at,
            "foundation": None if self.foundation is None else self.foundation.to_bytes(),
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes whose hash is the network id."""
        return encoding.encode(self.to_value())

    @property
    def network_id(self) -> CharterHash:
        """The network id: the charter's hash."""
        return CharterHash.of(self.to_bytes())

    @classmethod
    def from_value(cls, value: Any) -> Charter:
        fields = {
            "conode_charter",
            "name",
            "currency",
            "scale",
            "founding",
            "params",
            "created_at",
            "foundation",
        }
        m = map_value(value, "charter", fields)
        if m["conode_charter"] != 1:
            raise SchemaError("unknown charter format version")
        return cls(
            name=str_field(m, "name", _NAME_MAX, 1),
            currency=str_field(m, "currency", 12, 1),
            scale=int_field(m, "scale", 0, 8),
            founding=tuple(FoundingCoop.from_value(v) for v in list_field(m, "founding", 1000)),
            params=Parameters.from_value(m["params"]),
            created_at=int_field(m, "created_at", 0),
            foundation=opt_hash_field(m, "foundation", AgentKey),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Charter:
        """Read a charter's canonical bytes; ``EncodingError`` if malformed."""
        return cls.from_value(encoding.decode(data))

    def founding_coop(self, agent: AgentKey) -> FoundingCoop | None:
        """The founding co-op with this key, if any."""
        return next((coop for coop in self.founding if coop.agent == agent), None)

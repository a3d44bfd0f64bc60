"""The exchange's names and its part of the rules: ``app_config["exchange"]``, read once per value.

Shared by the offer rules (``entries``) and the grant rules (``grants``), so
neither imports the other's module to learn a type name or the configuration
in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from conode.apps.sdk import Context, Text
from conode.validation.entries import MAX_AMOUNT
from conode.validation.schema import SchemaError
from conode.validation.verdict import Invalid

__all__ = [
    "APP_ID",
    "CATEGORY_LINK",
    "CATEGORY_PATTERN",
    "DAY_US",
    "DEFAULT_MAX_EXPIRY_DAYS",
    "GRANT",
    "LISTINGS",
    "MAX_CATEGORIES",
    "MAX_EXPIRY_DAYS_LIMIT",
    "MAX_GRANT_EXPIRY_MONTHS",
    "OFFER",
    "SHARE",
    "UPDATE",
    "VERSION",
    "WANT",
    "ExchangeConfig",
    "config_in_force",
    "in_subtree",
    "read_config",
]

APP_ID: Final = "exchange"
VERSION: Final = "0.2.0"
"""0.2.0: one grant line per co-op (a high-water mark of its offered value), its monthly
re-estimate owed before it pays (``due``)."""
OFFER: Final = "exchange/offer"
WANT: Final = "exchange/want"
UPDATE: Final = "exchange/update"
GRANT: Final = "exchange/grant"
SHARE: Final = "exchange/share"
CATEGORY_LINK: Final = "exchange/category"
LISTINGS: Final = (OFFER, WANT)
"""The items an update or a category link may name."""

DAY_US: Final = 86_400_000_000
DEFAULT_MAX_EXPIRY_DAYS: Final = 365
MAX_EXPIRY_DAYS_LIMIT: Final = 366
"""The longest maximum expiry a configuration may set: an item is renewed at least once a year."""
MAX_CATEGORIES: Final = 2_000
MAX_GRANT_EXPIRY_MONTHS: Final = 1_200
"""The longest grant expiry a configuration may set (a century): beyond it, leave the switch off."""

_SEGMENT: Final = r"[a-z0-9]+(-[a-z0-9]+)*"
CATEGORY_PATTERN: Final = rf"{_SEGMENT}(/{_SEGMENT}){{0,5}}"
"""A category path: 1 to 6 segments of ``a-z0-9`` words joined by ``-``, e.g. ``food/bakery``."""
CATEGORY: Final = Text(120, min_len=1, pattern=CATEGORY_PATTERN)


def in_subtree(category: str, root: str) -> bool:
    """True if ``category`` is ``root`` or below it (``food/bakery`` is in ``food``)."""
    return category == root or category.startswith(root + "/")


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """The exchange's part of the rules: ``app_config["exchange"]`` in the charter, amendable.

    CBOR shape (every key optional; unknown keys are ignored, so a newer
    configuration does not stop older code)::

        {"categories": ["food", "food/bakery", "services/repair", ...],   # absent: any category
         "max_expiry_days": 365,                                          # 1 to 366
         "issues_credit": true,         # the engine's switch: the exchange may move credit at all
         "grant_cap": 50000,            # the most a co-op's grant line stands at (minor units);
                                        # absent: no grants at all
         "grant_expiry_months": 6}      # a grant line whose last positive grant is this many
                                        # months old may be cut (``grants``: basis ``expire``);
                                        # absent or 0: grants never expire

    ``categories`` lists the tree by its paths; a path's parents are in the
    tree too (listing ``food/bakery`` allows ``food``). ``issues_credit`` is
    read by the engine for every app (``credit-app``); it is kept here so
    that a configuration round-trips.
    """

    categories: tuple[str, ...] | None = None
    max_expiry_days: int = DEFAULT_MAX_EXPIRY_DAYS
    issues_credit: bool = False
    grant_cap: int | None = None
    grant_expiry_months: int = 0

    @property
    def max_expiry_us(self) -> int:
        return self.max_expiry_days * DAY_US

    def allows(self, category: str) -> bool:
        """True if ``category`` is a node of the tree (always, with no tree configured)."""
        if self.categories is None:
            return True
        return any(in_subtree(listed, category) for listed in self.categories)

    def to_value(self) -> dict[str, Any]:
        """The CBOR value to put in ``app_config/exchange`` (an amendment's ``value``)."""
        value: dict[str, Any] = {}
        if self.categories is not None:
            value["categories"] = list(self.categories)
        if self.max_expiry_days != DEFAULT_MAX_EXPIRY_DAYS:
            value["max_expiry_days"] = self.max_expiry_days
        if self.issues_credit:
            value["issues_credit"] = True
        if self.grant_cap is not None:
            value["grant_cap"] = self.grant_cap
        if self.grant_expiry_months:
            value["grant_expiry_months"] = self.grant_expiry_months
        return value


def read_config(settings: Any) -> ExchangeConfig:
    """The configuration in ``settings`` (``rules.params.app_settings("exchange")``; None: defaults).

    ``ValueError`` naming what is wrong. Deterministic: a validator maps the
    error to ``Invalid("config")``.
    """
    if settings is None:
        return ExchangeConfig()
    if not isinstance(settings, Mapping):
        raise ValueError("app_config/exchange must be a map")
    categories = settings.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
            raise ValueError(f"categories must be a list of at most {MAX_CATEGORIES} paths")
        for i, path in enumerate(categories):
            try:
                CATEGORY.read(path, f"categories[{i}]")
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
        categories = tuple(categories)
    days = settings.get("max_expiry_days", DEFAULT_MAX_EXPIRY_DAYS)
    if type(days) is not int or not 1 <= days <= MAX_EXPIRY_DAYS_LIMIT:
        raise ValueError(f"max_expiry_days must be an integer from 1 to {MAX_EXPIRY_DAYS_LIMIT}")
    issues = settings.get("issues_credit", False)
    if type(issues) is not bool:
        raise ValueError("issues_credit must be true or false")
    cap = settings.get("grant_cap")
    if cap is not None and (type(cap) is not int or not 0 <= cap <= MAX_AMOUNT):
        raise ValueError(f"grant_cap must be an integer from 0 to {MAX_AMOUNT} (minor units)")
    months = settings.get("grant_expiry_months", 0)
    if type(months) is not int or not 0 <= months <= MAX_GRANT_EXPIRY_MONTHS:
        raise ValueError(
            f"grant_expiry_months must be an integer from 0 (never) to {MAX_GRANT_EXPIRY_MONTHS}"
        )
    return ExchangeConfig(categories, days, issues, cap, months)


_read_configs: dict[int, tuple[Any, ExchangeConfig | str]] = {}
"""Configurations already read, by the id of the settings value (kept alive here, so an id is
never reused for another value while cached): every record under the same rules shares one."""


def config_in_force(ctx: Context) -> ExchangeConfig | Invalid:
    """The configuration of the rules in force for the record judged; ``Invalid("config")`` if malformed."""
    settings = ctx.rules.params.app_settings(APP_ID)
    cached = _read_configs.get(id(settings))
    if cached is None or cached[0] is not settings:
        try:
            cached = (settings, read_config(settings))
        except ValueError as exc:
            cached = (settings, str(exc))
        if len(_read_configs) >= 16:
            _read_configs.clear()
        _read_configs[id(settings)] = cached
    config = cached[1]
    if isinstance(config, str):
        return Invalid("config", f"the exchange configuration in force is malformed: {config}")
    return config

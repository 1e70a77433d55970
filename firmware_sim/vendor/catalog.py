"""Catalog of the vendor sandbox: entries, a default catalog and a TOML/JSON loader.

A catalog file lists items under ``[[item]]`` (TOML) or ``{"items": [...]}`` (JSON)::

    [[item]]
    sku = "TN-2420"
    name = "Toner cartridge TN-2420, 3,000 pages"
    price = "64.90"
    currency = "EUR"
    lead_time_days = 2.0
    lead_time_sd_days = 0.5
    pack_size = 1
    unit = "cartridge"
    substitutes = ["TN-2410"]
    free_shipping_threshold = "29.00"
    shipping_fee = "3.95"
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One product as the vendor sells it (prices in ``currency``, two decimals)."""

    sku: str
    name: str
    price: Decimal
    currency: str = "EUR"
    lead_time_days: float = 2.0
    lead_time_sd_days: float = 0.5
    pack_size: int = 1
    unit: str = "count"
    substitutes: tuple[str, ...] = field(default_factory=tuple)
    free_shipping_threshold: Decimal = Decimal("29.00")
    shipping_fee: Decimal = Decimal("3.95")

    def __post_init__(self) -> None:
        if not SKU_RE.match(self.sku):
            raise ValueError(f"bad sku {self.sku!r}")
        if self.price <= 0 or self.pack_size < 1 or self.lead_time_days <= 0:
            raise ValueError(f"{self.sku}: price, pack_size and lead_time_days must be > 0")
        if self.lead_time_sd_days < 0 or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"{self.sku}: bad lead_time_sd_days or currency")


def _entry(sku: str, name: str, price: str, **kw: Any) -> CatalogEntry:
    return CatalogEntry(sku=sku, name=name, price=Decimal(price), **kw)


# The SKUs of the scenarios in firmware_sim/scenarios, so closed-loop runs find them all.
# Units and pack sizes match the devices: printers report percent of one cartridge, the
# fridge scale grams, egg trays and CGM boxes counts.
_GROCERY = {"free_shipping_threshold": Decimal("40.00"), "shipping_fee": Decimal("4.90")}
DEFAULT_CATALOG: tuple[CatalogEntry, ...] = (
    _entry(
        "TN-2410",
        "Toner cartridge TN-2410, 1,200 pages",
        "39.90",
        lead_time_days=2.0,
        lead_time_sd_days=0.5,
        unit="cartridge",
        substitutes=("TN-2420",),
    ),
    _entry(
        "TN-2420",
        "Toner cartridge TN-2420, 3,000 pages",
        "64.90",
        lead_time_days=2.0,
        lead_time_sd_days=0.5,
        unit="cartridge",
        substitutes=("TN-2410",),
    ),
    _entry(
        "TN-3480",
        "Toner cartridge TN-3480, 8,000 pages",
        "119.00",
        lead_time_days=2.0,
        lead_time_sd_days=0.5,
        unit="cartridge",
    ),
    _entry(
        "DR-2400",
        "Drum unit DR-2400, 12,000 pages",
        "89.00",
        lead_time_days=3.0,
        lead_time_sd_days=1.0,
        unit="drum",
    ),
    _entry(
        "DR-3400",
        "Drum unit DR-3400, 30,000 pages",
        "139.00",
        lead_time_days=3.0,
        lead_time_sd_days=1.0,
        unit="drum",
    ),
    _entry(
        "MILK-1L",
        "Whole milk 1 l",
        "1.19",
        lead_time_days=1.0,
        lead_time_sd_days=0.3,
        pack_size=1000,
        unit="g",
        substitutes=("MILK-1L-ORGANIC",),
        **_GROCERY,
    ),
    _entry(
        "MILK-1L-ORGANIC",
        "Organic whole milk 1 l",
        "1.59",
        lead_time_days=1.0,
        lead_time_sd_days=0.3,
        pack_size=1000,
        unit="g",
        **_GROCERY,
    ),
    _entry(
        "EGGS-10",
        "Eggs, box of 10",
        "3.29",
        lead_time_days=1.0,
        lead_time_sd_days=0.3,
        pack_size=10,
        unit="count",
        substitutes=("EGGS-12",),
        **_GROCERY,
    ),
    _entry(
        "EGGS-12",
        "Eggs, box of 12",
        "3.89",
        lead_time_days=1.0,
        lead_time_sd_days=0.3,
        pack_size=12,
        unit="count",
        substitutes=("EGGS-10",),
        **_GROCERY,
    ),
    _entry(
        "CGM-G7-3",
        "CGM sensors, 10 days, box of 3",
        "219.00",
        lead_time_days=3.0,
        lead_time_sd_days=1.0,
        pack_size=3,
        unit="sensor",
    ),
    _entry(
        "STRIPS-50",
        "Blood glucose test strips, 50",
        "24.50",
        lead_time_days=2.0,
        lead_time_sd_days=0.5,
        pack_size=50,
        unit="count",
    ),
)


def _decimal(raw: Any, where: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"{where}: not a number")
    try:
        value = Decimal(str(raw)).quantize(CENT)
    except InvalidOperation as err:
        raise ValueError(f"{where}: not a number") from err
    return value


def entry_from_mapping(raw: Mapping[str, Any]) -> CatalogEntry:
    """Build an entry from a catalog file record; raises ValueError on bad fields."""
    known = set(CatalogEntry.__dataclass_fields__)
    unknown = set(raw) - known
    sku = str(raw.get("sku", "?"))
    if unknown:
        raise ValueError(f"{sku}: unknown fields {sorted(unknown)}")
    kw: dict[str, Any] = dict(raw)
    for money in ("price", "free_shipping_threshold", "shipping_fee"):
        if money in kw:
            kw[money] = _decimal(kw[money], f"{sku}.{money}")
    if "substitutes" in kw:
        kw["substitutes"] = tuple(str(s) for s in kw["substitutes"])
    try:
        return CatalogEntry(**kw)
    except TypeError as err:
        raise ValueError(f"{sku}: missing fields") from err


def load_catalog(path: Path) -> tuple[CatalogEntry, ...]:
    """Read a catalog from a ``.toml`` or ``.json`` file."""
    data = path.read_bytes()
    if path.suffix == ".json":
        items = json.loads(data).get("items", [])
    else:
        items = tomllib.loads(data.decode()).get("item", [])
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path.name}: no items")
    return validate_catalog(entry_from_mapping(item) for item in items)


def validate_catalog(entries: Iterable[CatalogEntry]) -> tuple[CatalogEntry, ...]:
    """Check SKUs are unique and substitutes exist; returns the entries as a tuple."""
    result = tuple(entries)
    skus = {e.sku for e in result}
    if len(skus) != len(result):
        raise ValueError("duplicate sku in catalog")
    for e in result:
        missing = set(e.substitutes) - skus
        if missing:
            raise ValueError(f"{e.sku}: unknown substitutes {sorted(missing)}")
    return result

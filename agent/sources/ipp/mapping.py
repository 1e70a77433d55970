"""Pure mapping from Get-Printer-Attributes output to the agent's consumable readings.

- ``marker-names``/``marker-levels``/``marker-types``/``marker-low-levels``/
  ``marker-high-levels`` when the printer publishes markers that know something, else
  ``printer-supply`` entries (``index=1;class=...;type=toner;unit=percent;
  maxcapacity=100;level=80;``) named by ``printer-supply-description``. One consumable
  per marker or supply, id slugified from its name ("Black Toner" -> ``black-toner``).
- Levels become percent remaining. Other units are scaled by ``maxcapacity``. Waste
  receptacles report how full they are (CUPS reads them that way), so their remaining
  share is ``100 - level``.
- RFC 3805 special values: -3 -> ``some_remaining``; -2 (unknown, often asleep) and -1
  (other) -> ``unknown``. A printer whose supplies are all unknown is reported asleep.
- LOW: a level at or under its ``marker-low-levels`` entry, or a ``*-low`` style
  ``printer-state-reasons`` keyword (suffix ``-report``/``-warning``/``-error`` stripped)
  for the supply's family; a reason names a family, not a cartridge, so it marks the
  unmeasured members and the lowest measured one.
- ``printer-impressions-completed`` (or pages/sheets completed) -> ``counters["pages"]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.domain import CoarseState, Unit
from agent.sources.ipp.codec import IppAttribute
from agent.wire.device import MAX_CONSUMABLES, Consumable

PAGE_COUNTERS = (
    "printer-impressions-completed",
    "printer-pages-completed",
    "printer-media-sheets-completed",
)
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_REASON_SUFFIXES = ("-report", "-warning", "-error")
_LOW_ENDINGS = ("-low", "-almost-empty", "-near-eol", "-almost-full")
_EMPTY_ENDINGS = ("-empty", "-life-over", "-full")
_SEVERITY = {CoarseState.EMPTY: 3, CoarseState.LOW: 2}


@dataclass(slots=True, frozen=True)
class Supply:
    """One marker or supply, normalised: ``level`` is percent remaining or None."""

    id: str
    family: str  # type keyword in kebab case: toner, ink-cartridge, opc, waste-toner
    raw_level: int
    level: float | None
    low_level: float | None
    waste: bool


@dataclass(slots=True, frozen=True)
class PrinterReading:
    """The pure mapping's result, before it is stamped with device id, seq and time."""

    consumables: list[Consumable]
    asleep: bool
    pages: int | None
    fw: str | None
    make_and_model: str | None


def slugify(text: str, limit: int = 64) -> str:
    """Lower-case ``text`` to an id matching agent.wire.device's pattern ('' if nothing left)."""
    return _SLUG_RE.sub("-", text.lower()).strip("-")[:limit].strip("-")


def _kebab(keyword: str) -> str:
    return _CAMEL_RE.sub("-", keyword).lower()


def _values(attrs: Mapping[str, IppAttribute], name: str) -> list[object]:
    attr = attrs.get(name)
    return list(attr.values) if attr is not None else []


def _ints(attrs: Mapping[str, IppAttribute], name: str) -> list[int | None]:
    return [v if isinstance(v, int) and not isinstance(v, bool) else None
            for v in _values(attrs, name)]


def _strs(attrs: Mapping[str, IppAttribute], name: str) -> list[str]:
    out = []
    for v in _values(attrs, name):
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        out.append(v if isinstance(v, str) else "")
    return out


def _first_str(attrs: Mapping[str, IppAttribute], name: str) -> str | None:
    values = _strs(attrs, name)
    return values[0] if values and values[0] else None


def _at(seq: list[int | None], i: int) -> int | None:
    return seq[i] if i < len(seq) else None


def _unique_ids(names: list[str], fallbacks: list[str]) -> list[str]:
    ids: list[str] = []
    for name, fallback in zip(names, fallbacks, strict=True):
        base = slugify(name) or slugify(fallback) or "supply"
        candidate, n = base, 2
        while candidate in ids:
            suffix = f"-{n}"
            candidate, n = base[: 64 - len(suffix)] + suffix, n + 1
        ids.append(candidate)
    return ids


def _percent(raw: int, waste: bool) -> float | None:
    if raw < 0:
        return None
    pct = min(float(raw), 100.0)
    return 100.0 - pct if waste else pct


def supplies_from_markers(attrs: Mapping[str, IppAttribute]) -> list[Supply]:
    """One Supply per ``marker-levels`` entry (IPP marker-* are percent already)."""
    levels = _ints(attrs, "marker-levels")
    names = _strs(attrs, "marker-names")
    types = [_kebab(t) for t in _strs(attrs, "marker-types")]
    lows = _ints(attrs, "marker-low-levels")
    highs = _ints(attrs, "marker-high-levels")
    families = [types[i] if i < len(types) and types[i] else "marker" for i in range(len(levels))]
    ids = _unique_ids(
        [names[i] if i < len(names) else "" for i in range(len(levels))],
        [f"{families[i]}-{i + 1}" for i in range(len(levels))],
    )
    out = []
    for i, raw in enumerate(levels):
        raw = -2 if raw is None else raw
        waste = families[i].startswith("waste")
        if waste:
            high = _at(highs, i)
            low_level = 100.0 - high if high is not None and 0 < high <= 100 else None
        else:
            low = _at(lows, i)
            low_level = float(low) if low is not None and 0 <= low <= 100 else None
        out.append(Supply(ids[i], families[i], raw, _percent(raw, waste), low_level, waste))
    return out


def parse_supply_entry(text: str) -> dict[str, str]:
    """Split one ``printer-supply`` value (``key=value;`` pairs) into a dict."""
    entry: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            entry[key.strip().lower()] = value.strip()
    return entry


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def supplies_from_printer_supply(attrs: Mapping[str, IppAttribute]) -> list[Supply]:
    """One Supply per ``printer-supply`` value, scaled to percent by ``maxcapacity``."""
    entries = [parse_supply_entry(s) for s in _strs(attrs, "printer-supply")]
    descriptions = _strs(attrs, "printer-supply-description")
    families = [_kebab(e.get("type", "")) or "supply" for e in entries]
    fallbacks = []
    for e, fam in zip(entries, families, strict=True):
        colorant = e.get("colorantname", "")
        fallbacks.append(f"{colorant}-{fam}" if colorant and colorant != "unknown" else fam)
    ids = _unique_ids(
        [descriptions[i] if i < len(descriptions) else "" for i in range(len(entries))],
        fallbacks,
    )
    out = []
    for i, e in enumerate(entries):
        raw = _int_or(e.get("level"), -2)
        maxcap = _int_or(e.get("maxcapacity"), -2)
        waste = e.get("class") == "receptacleThatIsFilled" or families[i].startswith("waste")
        if raw < 0:
            level = None
        elif maxcap > 0:
            level = _percent(round(100 * raw / maxcap), waste)
        elif e.get("unit", "percent") == "percent":
            level = _percent(raw, waste)
        else:
            # A count in some unit with no known capacity: only "empty or not" is known.
            raw, level = (-3 if raw > 0 else 0), (None if raw > 0 else 0.0)
        out.append(Supply(ids[i], families[i], raw, level, None, waste))
    return out


def _reason_targets(word: str, supplies: list[Supply]) -> list[Supply]:
    """Supplies a reason's family word ("toner", "supply", "waste", ...) is about."""
    if word == "supply":
        return [s for s in supplies if not s.waste]
    if word == "waste":
        return [s for s in supplies if s.waste]
    return [s for s in supplies if s.family == word or s.family.startswith(word + "-")]


def reason_states(reasons: list[str], supplies: list[Supply]) -> dict[str, CoarseState]:
    """LOW/EMPTY states that ``printer-state-reasons`` put on individual supplies."""
    states: dict[str, CoarseState] = {}
    for reason in reasons:
        for suffix in _REASON_SUFFIXES:
            reason = reason.removesuffix(suffix)
        state = None
        if reason.endswith(_LOW_ENDINGS):
            state = CoarseState.LOW
        elif reason.endswith(_EMPTY_ENDINGS):
            state = CoarseState.EMPTY
        if state is None:
            continue
        word = reason.removeprefix("marker-").split("-")[0]
        targets = _reason_targets(word, supplies)
        measured = [s for s in targets if s.level is not None]
        hit = [s for s in targets if s.level is None]
        if measured and not any(_level_state(s) in (state, CoarseState.EMPTY) for s in measured):
            lowest = min(s.level for s in measured if s.level is not None)
            hit += [s for s in measured if s.level == lowest]
        for s in hit:
            if _SEVERITY[state] > _SEVERITY.get(states.get(s.id, CoarseState.OK), 0):
                states[s.id] = state
    return states


def _level_state(s: Supply) -> CoarseState:
    if s.level is None:
        return CoarseState.SOME_REMAINING if s.raw_level == -3 else CoarseState.UNKNOWN
    if s.level <= 0:
        return CoarseState.EMPTY
    if s.low_level is not None and s.level <= s.low_level:
        return CoarseState.LOW
    return CoarseState.OK


def map_printer(attrs: Mapping[str, IppAttribute]) -> PrinterReading:
    """Turn Get-Printer-Attributes output into consumables (see the module docstring)."""
    supplies = supplies_from_markers(attrs)
    if not any(s.raw_level not in (-1, -2) for s in supplies):
        # No markers, or markers that know nothing: the Printer-MIB view may know more.
        fallback = supplies_from_printer_supply(attrs)
        if fallback and (not supplies or any(s.raw_level not in (-1, -2) for s in fallback)):
            supplies = fallback
    supplies = supplies[:MAX_CONSUMABLES]
    pages = None
    for name in PAGE_COUNTERS:
        found = [v for v in _ints(attrs, name) if v is not None and v >= 0]
        if found:
            pages = found[0]
            break
    from_reasons = reason_states(_strs(attrs, "printer-state-reasons"), supplies)
    consumables = []
    for s in supplies:
        state = _level_state(s)
        reason = from_reasons.get(s.id)
        if reason is not None and _SEVERITY[reason] > _SEVERITY.get(state, 0):
            state = reason
        consumables.append(Consumable(
            id=s.id, level=s.level, unit=Unit.PERCENT, state=state,
            counters={"pages": pages} if pages is not None else None,
        ))
    asleep = bool(supplies) and all(s.level is None and s.raw_level != -3 for s in supplies)
    fw = _first_str(attrs, "printer-firmware-string-version")
    return PrinterReading(consumables, asleep, pages, fw[:32] if fw else None,
                          _first_str(attrs, "printer-make-and-model"))

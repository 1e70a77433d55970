"""Mapping printer attributes to consumables: both attribute families, special values, LOW."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.domain import CoarseState, Unit
from agent.sources.ipp.codec import (
    TAG_INTEGER,
    TAG_KEYWORD,
    TAG_NAME,
    TAG_OCTET_STRING,
    TAG_TEXT,
    IppAttribute,
    decode_response,
)
from agent.sources.ipp.mapping import map_printer, parse_supply_entry, slugify
from agent.sources.ipp.source import default_device_id, http_url
from agent.wire.device import ID_PATTERN, MAX_CONSUMABLES, Consumable

FIXTURES = Path(__file__).parent / "fixtures" / "ipp"
Attrs = dict[str, IppAttribute]


def markers(
    names: list[str], levels: list[int], types: list[str] | None = None,
    lows: list[int] | None = None, highs: list[int] | None = None,
    reasons: list[str] | None = None,
) -> Attrs:
    attrs = {
        "marker-names": IppAttribute("marker-names", TAG_NAME, list(names)),
        "marker-levels": IppAttribute("marker-levels", TAG_INTEGER, list(levels)),
        "marker-types": IppAttribute(
            "marker-types", TAG_KEYWORD, list(types or ["toner"] * len(levels))
        ),
    }
    if lows is not None:
        attrs["marker-low-levels"] = IppAttribute("marker-low-levels", TAG_INTEGER, list(lows))
    if highs is not None:
        attrs["marker-high-levels"] = IppAttribute("marker-high-levels", TAG_INTEGER, list(highs))
    if reasons is not None:
        attrs["printer-state-reasons"] = IppAttribute(
            "printer-state-reasons", TAG_KEYWORD, list(reasons)
        )
    return attrs


def supplies(entries: list[str], descriptions: list[str] | None = None) -> Attrs:
    attrs = {"printer-supply": IppAttribute(
        "printer-supply", TAG_OCTET_STRING, [e.encode() for e in entries]
    )}
    if descriptions is not None:
        attrs["printer-supply-description"] = IppAttribute(
            "printer-supply-description", TAG_TEXT, list(descriptions)
        )
    return attrs


def by_id(attrs: Attrs) -> dict[str, Consumable]:
    return {c.id: c for c in map_printer(attrs).consumables}


def recorded(name: str) -> Attrs:
    return decode_response((FIXTURES / name).read_bytes()).printer_attributes()


def test_recorded_printer_supply_only_printer() -> None:
    reading = map_printer(recorded("ippeveprinter-default.ipp"))
    got = {c.id: c for c in reading.consumables}
    assert list(got) == ["toner-waste-tank", "black-toner"]
    # The waste tank is 97 % full: 3 % of its room is left, and the printer says so.
    assert got["toner-waste-tank"].level == 3.0
    assert got["toner-waste-tank"].state is CoarseState.LOW
    assert got["black-toner"].level == 3.0
    assert got["black-toner"].state is CoarseState.LOW  # from toner-low-report
    assert all(c.unit is Unit.PERCENT for c in reading.consumables)
    assert not reading.asleep and reading.pages is None
    assert reading.make_and_model == "Example Printer"


def test_recorded_marker_printer_with_drum_and_page_counter() -> None:
    reading = map_printer(recorded("ippeveprinter-markers.ipp"))
    got = {c.id: c for c in reading.consumables}
    assert (got["black-toner"].level, got["black-toner"].state) == (80.0, CoarseState.OK)
    assert (got["cyan-toner"].level, got["cyan-toner"].state) == (45.0, CoarseState.OK)
    assert got["imaging-drum"].level is None
    assert got["imaging-drum"].state is CoarseState.SOME_REMAINING
    assert reading.pages == 1234
    assert all(c.counters == {"pages": 1234} for c in got.values())
    assert not reading.asleep


@pytest.mark.parametrize(
    ("raw", "level", "state"),
    [
        (55, 55.0, CoarseState.OK),
        (10, 10.0, CoarseState.LOW),  # at marker-low-levels
        (11, 11.0, CoarseState.OK),
        (0, 0.0, CoarseState.EMPTY),
        (104, 100.0, CoarseState.OK),  # over-full gauges are clamped, not rejected
        (-1, None, CoarseState.UNKNOWN),  # "other"
        (-2, None, CoarseState.UNKNOWN),
        (-3, None, CoarseState.SOME_REMAINING),
        (-7, None, CoarseState.UNKNOWN),
    ],
)
def test_marker_levels_and_rfc3805_special_values(
    raw: int, level: float | None, state: CoarseState
) -> None:
    got = by_id(markers(["Black", "Drum"], [raw, -3], lows=[10, 5]))["black"]
    assert (got.level, got.state) == (level, state)


def test_all_unknown_is_asleep_but_some_remaining_is_a_reading() -> None:
    assert map_printer(markers(["A", "B"], [-2, -2])).asleep
    assert map_printer(markers(["A", "B"], [-2, -1])).asleep
    assert not map_printer(markers(["A", "B"], [-2, -3])).asleep
    assert not map_printer(markers(["A", "B"], [-2, 40])).asleep
    assert not map_printer({}).asleep and map_printer({}).consumables == []


def test_waste_markers_report_room_left_with_high_level_as_low_threshold() -> None:
    got = by_id(markers(["Black", "Waste"], [60, 92], types=["toner", "waste-toner"],
                        lows=[5, 0], highs=[100, 90]))
    assert got["waste"].level == 8.0
    assert got["waste"].state is CoarseState.LOW  # 92 % full is past the 90 % mark


@pytest.mark.parametrize(
    "reason", ["toner-low", "toner-low-report", "toner-low-warning", "toner-low-error"]
)
def test_state_reason_marks_the_lowest_member_of_its_family(reason: str) -> None:
    got = by_id(markers(["Black", "Cyan", "Drum"], [50, 30, 70],
                        types=["toner", "toner-cartridge", "opc"], reasons=[reason]))
    assert got["cyan"].state is CoarseState.LOW
    assert got["black"].state is CoarseState.OK
    assert got["drum"].state is CoarseState.OK


def test_state_reason_already_explained_by_a_level_marks_nothing_else() -> None:
    got = by_id(markers(["Black", "Cyan"], [8, 30], lows=[10, 10], reasons=["toner-low-report"]))
    assert got["black"].state is CoarseState.LOW
    assert got["cyan"].state is CoarseState.OK


def test_state_reason_marks_unmeasured_supplies() -> None:
    got = by_id(markers(["Drum", "Black"], [-3, 60], types=["opc", "toner"],
                        reasons=["opc-near-eol-warning"]))
    assert (got["drum"].level, got["drum"].state) == (None, CoarseState.LOW)
    assert got["black"].state is CoarseState.OK


def test_generic_and_empty_reasons() -> None:
    got = by_id(markers(["Black", "Cyan", "Waste"], [40, 20, 50],
                        types=["ink", "ink", "waste-ink"],
                        reasons=["marker-supply-low-report", "marker-waste-full-error"]))
    assert got["cyan"].state is CoarseState.LOW
    assert got["black"].state is CoarseState.OK
    assert got["waste"].state is CoarseState.EMPTY
    empty = by_id(markers(["Black", "Cyan"], [4, 20], reasons=["toner-empty", "toner-low"]))
    assert empty["black"].state is CoarseState.EMPTY


def test_unrelated_reasons_change_nothing() -> None:
    got = by_id(markers(["Black"], [40], reasons=["none", "media-low", "media-empty-error",
                                                  "door-open", "toner-low-unknown"]))
    assert got["black"].state is CoarseState.OK


def test_printer_supply_units_are_converted_to_percent() -> None:
    got = by_id(supplies([
        "index=1;class=supplyThatIsConsumed;type=toner;unit=tenthsOfGrams;maxcapacity=2000;"
        "level=500;colorantname=black;",
        "index=2;class=supplyThatIsConsumed;type=inkCartridge;unit=percent;level=64;",
        "index=3;class=supplyThatIsConsumed;type=staples;unit=items;maxcapacity=-2;level=30;",
        "index=4;class=supplyThatIsConsumed;type=staples;unit=items;maxcapacity=-2;level=0;",
        "index=5;class=receptacleThatIsFilled;type=wasteInk;unit=percent;maxcapacity=100;"
        "level=-3;",
        "index=6;class=supplyThatIsConsumed;type=toner;unit=percent;maxcapacity=100;level=x;",
    ], ["Black Toner", "Photo Ink", "Staples", "Staples", "Waste", "Broken"]))
    assert got["black-toner"].level == 25.0
    assert got["photo-ink"].level == 64.0
    assert (got["staples"].level, got["staples"].state) == (None, CoarseState.SOME_REMAINING)
    assert (got["staples-2"].level, got["staples-2"].state) == (0.0, CoarseState.EMPTY)
    assert got["waste"].state is CoarseState.SOME_REMAINING
    assert (got["broken"].level, got["broken"].state) == (None, CoarseState.UNKNOWN)


def test_printer_supply_without_descriptions_is_named_from_colorant_and_type() -> None:
    got = by_id(supplies([
        "index=1;type=tonerCartridge;level=70;maxcapacity=100;colorantname=magenta;",
        "index=2;type=wasteToner;class=receptacleThatIsFilled;level=10;maxcapacity=100;"
        "colorantname=unknown;",
        "index=3;level=50;",
    ]))
    assert list(got) == ["magenta-toner-cartridge", "waste-toner", "supply"]
    assert got["waste-toner"].level == 90.0


def test_markers_win_when_both_families_are_published() -> None:
    attrs = {**markers(["Black Toner"], [70]), **supplies(["index=1;type=toner;level=65;"],
                                                          ["Other Name"])}
    assert list(by_id(attrs)) == ["black-toner"]
    only_supplies = {**markers([], []), **supplies(["index=1;type=toner;level=65;"], ["T"])}
    assert list(by_id(only_supplies)) == ["t"]
    # Markers that know nothing do not hide supplies that do...
    blind = {**markers(["Black Toner"], [-2]), **supplies(["index=1;type=toner;level=65;"],
                                                          ["Black Toner"])}
    assert by_id(blind)["black-toner"].level == 65.0
    # ...but when both know nothing, the printer is asleep either way.
    asleep = {**markers(["Black Toner"], [-2]), **supplies(["index=1;level=-2;"], ["X"])}
    assert map_printer(asleep).asleep and list(by_id(asleep)) == ["black-toner"]


def test_duplicate_and_unusable_names_get_unique_valid_ids() -> None:
    names = ["Black", "Black", "Black", "", "!!!", "Schwarz (XL) – 2000 Seiten"]
    got = list(by_id(markers(names, [50] * len(names))))
    assert got == ["black", "black-2", "black-3", "toner-4", "toner-5",
                   "schwarz-xl-2000-seiten"]


def test_more_supplies_than_the_protocol_allows_are_cut() -> None:
    reading = map_printer(markers([f"S{i}" for i in range(40)], [50] * 40))
    assert len(reading.consumables) == MAX_CONSUMABLES


@given(st.lists(st.text(max_size=80), min_size=1, max_size=MAX_CONSUMABLES))
def test_ids_always_match_the_protocol_pattern_and_are_unique(names: list[str]) -> None:
    ids = [c.id for c in map_printer(markers(names, [50] * len(names))).consumables]
    assert all(re.match(ID_PATTERN, i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_parse_supply_entry_tolerates_spacing_case_and_junk() -> None:
    assert parse_supply_entry(" Level = 5 ;TYPE=toner;junk;;=x;") == {
        "level": "5", "type": "toner", "": "x"
    }


def test_slugify() -> None:
    assert slugify("Black Toner") == "black-toner"
    assert slugify("  --Cyan__Ink--  ") == "cyan-ink"
    assert slugify("x" * 70) == "x" * 64


def test_device_id_and_http_url_from_the_printer_uri() -> None:
    assert default_device_id("ipp://HP-Office.local:631/ipp/print") == (
        "hp-office-local-631-ipp-print"
    )
    assert default_device_id("ipp://192.168.1.20/printers/laser") == (
        "192-168-1-20-631-printers-laser"
    )
    assert re.match(ID_PATTERN, default_device_id("ipp://" + "a" * 200 + "/x"))
    assert default_device_id("ipp://p:99999/x") == "p-99999-x"
    assert default_device_id("ipp://[::1/x") == "1-x"
    assert http_url("ipp://printer.local/ipp/print") == "http://printer.local:631/ipp/print"
    assert http_url("ipps://printer.local:8443/ipp/print") == (
        "https://printer.local:8443/ipp/print"
    )
    assert http_url("ipp://[fe80::1]:631") == "http://[fe80::1]:631/ipp/print"


_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), st.text(max_size=40),
    st.binary(max_size=40), st.tuples(st.integers(), st.integers()),
    st.dictionaries(st.text(max_size=5), st.lists(st.integers(), max_size=2), max_size=2),
    st.sampled_from([b"index=1;type=toner;level=5000000000;maxcapacity=3;",
                     b"level=-3;class=receptacleThatIsFilled;", b"level=7;unit=items;",
                     "level=0;maxcapacity=0;", "toner-low-report", "marker-waste-full"]),
)
_NAMES = st.sampled_from([
    "marker-names", "marker-types", "marker-levels", "marker-low-levels",
    "marker-high-levels", "printer-supply", "printer-supply-description",
    "printer-state-reasons", "printer-impressions-completed", "printer-firmware-string-version",
    "printer-make-and-model",
])


@given(st.dictionaries(_NAMES, st.lists(_VALUE, max_size=6), max_size=11))
def test_any_attribute_values_map_to_valid_consumables_or_nothing(
    raw: dict[str, list[object]],
) -> None:
    attrs = {name: IppAttribute(name, TAG_INTEGER, list(values))  # type: ignore[arg-type]
             for name, values in raw.items()}
    reading = map_printer(attrs)
    for c in reading.consumables:
        assert re.match(ID_PATTERN, c.id)
        assert c.level is None or 0 <= c.level <= 100
        assert c.state is not None

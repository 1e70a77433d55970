"""``replenish printers``: try a network printer over IPP and list the configured ones.

    replenish printers add ipp://192.168.1.20/ipp/print --name office   # reads it once
    replenish printers list --check

``add`` does not edit the settings file: it reads the printer once, shows the supplies
it found and prints the ``[[printers]]`` block to paste. Exit code 0 when the printer
answered with supply levels, 3 when it did not (asleep, unreachable, garbage), 2 for a
malformed URI or name.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError

from agent.config import DEFAULT_CONFIG_PATH, PrinterSettings, Settings, plain_reason
from agent.domain import JsonObject
from agent.errors import ConfigError
from agent.sources.ipp.source import (
    DEFAULT_TIMEOUT_S,
    IppPrinterSource,
    PollResult,
    PollStatus,
    default_device_id,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("printers", help="try and list IPP network printers")
    actions = parser.add_subparsers(dest="printers_action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add", help="read a printer once and print its settings block",
        description="Reads the printer's supply levels once over IPP and prints the "
                    "[[printers]] block to add to the settings file.",
    )  # fmt: skip
    add.add_argument("uri", metavar="URI", help="e.g. ipp://192.168.1.20:631/ipp/print")
    add.add_argument("--name", help="device id to use (default: derived from the URI)")
    add.add_argument("--interval", type=int, default=300, metavar="S",
                     help="poll interval in seconds (default 300)")
    add.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                     help=f"seconds to wait for the printer (default {DEFAULT_TIMEOUT_S:g})")
    add.add_argument("--json", action="store_true", help="machine-readable output")
    add.set_defaults(func=_add)

    listing = actions.add_parser("list", help="printers in the settings file")
    listing.add_argument("--check", action="store_true", help="read each printer once")
    listing.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)


def read_once(printer: PrinterSettings, timeout_s: float) -> tuple[str, PollResult]:
    """Poll ``printer`` once; returns its device id and the result."""
    with IppPrinterSource(printer, timeout_s=timeout_s) as source:
        return source.device_id, source.poll(datetime.now(UTC))


def result_data(device_id: str, printer: PrinterSettings, result: PollResult) -> JsonObject:
    """One printer's poll as plain data (what ``--json`` prints)."""
    data: JsonObject = {
        "device_id": device_id,
        "uri": printer.uri,
        "status": result.status.value,
        "detail": result.detail,
        "model": result.make_and_model,
        "consumables": [],
    }
    if result.state is not None:
        data["consumables"] = [c.model_dump(mode="json", exclude_none=True)
                               for c in result.state.consumables]
    return data


def render(device_id: str, result: PollResult) -> str:
    """Human-readable lines for one printer's poll."""
    lines = [f"{device_id}: {result.status.value} ({result.detail})"]
    if result.make_and_model:
        lines.append(f"  model: {result.make_and_model}")
    pages = None
    for c in result.state.consumables if result.state is not None else []:
        level = f"{c.level:5.0f} %" if c.level is not None else "    - "
        lines.append(f"  {c.id:<28} {level}  {c.state.value if c.state else ''}")
        pages = (c.counters or {}).get("pages", pages)
    if pages is not None:
        lines.append(f"  pages printed: {pages}")
    return "\n".join(lines)


def toml_block(printer: PrinterSettings) -> str:
    """The ``[[printers]]`` block for the settings file (JSON strings are valid TOML)."""
    lines = ["[[printers]]", f"uri = {json.dumps(printer.uri)}"]
    if printer.name:
        lines.append(f"name = {json.dumps(printer.name)}")
    lines.append(f"poll_interval_s = {printer.poll_interval_s}")
    return "\n".join(lines)


def _printer_settings(args: argparse.Namespace) -> PrinterSettings:
    try:
        return PrinterSettings(uri=args.uri, name=args.name, poll_interval_s=args.interval)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "-"
        raise ConfigError("command line", key, plain_reason(first)) from None


def _add(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    printer = _printer_settings(args)
    device_id, result = read_once(printer, args.timeout)
    data = result_data(device_id, printer, result)
    # An asleep printer did answer: the block is right, only the levels must wait.
    answered = result.status in (PollStatus.OK, PollStatus.ASLEEP)
    if args.json:
        data["toml"] = toml_block(printer) if answered else None
        print(json.dumps(data, indent=2))
    else:
        print(render(device_id, result))
        if answered:
            print(f"\nAdd this to the settings file (default {DEFAULT_CONFIG_PATH}) and "
                  "restart the agent:\n")
            print(toml_block(printer))
        else:
            print("\nNot added: check the URI (ipp://HOST[:PORT]/PATH) and that the printer "
                  "is on and reachable.")
    return 0 if result.status is PollStatus.OK else 3


def _list(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    settings = settings_loader()
    rows: list[JsonObject] = []
    lines: list[str] = []
    worst = 0
    for printer in settings.printers:
        if args.check:
            device_id, result = read_once(printer, args.timeout)
            row = result_data(device_id, printer, result)
            lines.append(render(device_id, result))
            worst = max(worst, 0 if result.status is PollStatus.OK else 3)
        else:
            device_id = printer.name or default_device_id(printer.uri)
            row = {"device_id": device_id, "uri": printer.uri}
            lines.append(f"{device_id}: {printer.uri} every {printer.poll_interval_s} s")
        row["poll_interval_s"] = printer.poll_interval_s
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return worst
    if not rows:
        print(f"{settings.source}: no [[printers]] configured")
    for line in lines:
        print(line)
    return worst

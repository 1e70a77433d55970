"""The IPP source against a real IPP Everywhere printer (CUPS ``ippeveprinter``).

Jobs printed with ``ipptool`` run ``fixtures/ipp/deplete.sh``, which lowers the marker
levels and reports them back to the printer; the poller's readings must follow, and the
forecast built from them must move. The ``/supplies`` web form swaps a cartridge.
Unreachable and junk-answering "printers" give a status, no reading, and a growing backoff.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main as cli
from agent.config import PrinterSettings
from agent.domain import CoarseState, Unit
from agent.sources.ipp.source import IppPrinterSource, PollResult, PollStatus
from agent.wire.device import EventType, StateMessage
from tests.integration.ipp_fixtures import (
    DEPLETE_COMMAND,
    MARKERS_CONF,
    EvePrinter,
    free_port,
    start_printer,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def levels(result: PollResult) -> dict[str, float | None]:
    assert result.status is PollStatus.OK, result.detail
    assert result.state is not None
    return {c.id: c.level for c in result.state.consumables}


def states(result: PollResult) -> dict[str, CoarseState | None]:
    assert result.state is not None
    return {c.id: c.state for c in result.state.consumables}


def source_for(uri: str, interval: int = 60) -> IppPrinterSource:
    return IppPrinterSource(PrinterSettings(uri=uri, name="office", poll_interval_s=interval),
                            timeout_s=5.0)


@pytest.fixture
def default_printer(tmp_path: Path) -> Iterator[EvePrinter]:
    """ippeveprinter with its stock supplies: printer-supply only, no marker-* at all."""
    with start_printer(tmp_path / "printer") as printer:
        yield printer


@pytest.fixture
def marker_printer(tmp_path: Path) -> Iterator[tuple[EvePrinter, Path]]:
    """A marker-* printer (markers.conf: 80 %, 45 %, drum -3) whose jobs use 10 % each."""
    state_file = tmp_path / "levels"
    state_file.write_text("80,45,-3\n")
    env = {"REPLENISH_SUPPLY_STATE": str(state_file), "REPLENISH_SUPPLY_STEP": "10"}
    with start_printer(tmp_path / "printer", attributes=MARKERS_CONF, command=DEPLETE_COMMAND,
                       extra_env=env) as printer:
        yield printer, state_file


def test_printer_supply_only_printer_is_read(default_printer: EvePrinter) -> None:
    with source_for(default_printer.uri) as src:
        result = src.poll(T0)
    # Stock ippeveprinter: waste tank 25 % full, black toner at 75 %.
    assert levels(result) == {"toner-waste-tank": 75.0, "black-toner": 75.0}
    assert states(result) == {"toner-waste-tank": CoarseState.OK, "black-toner": CoarseState.OK}
    assert result.make_and_model == "Example Printer"
    assert result.next_poll_in_s == 60


def test_supplies_form_cartridge_change_is_detected(default_printer: EvePrinter) -> None:
    with source_for(default_printer.uri) as src:
        default_printer.set_supplies([40, 20])
        worn = src.poll(T0)
        default_printer.set_supplies([40, 3])
        low = src.poll(T0 + DAY)
        default_printer.set_supplies([40, 100])
        fresh = src.poll(T0 + 2 * DAY)
    assert levels(worn)["black-toner"] == 20.0 and worn.events == []
    # The printer raises toner-low-report on its own when its toner runs low.
    assert (levels(low)["black-toner"], states(low)["black-toner"]) == (3.0, CoarseState.LOW)
    assert low.events == []
    assert levels(fresh)["black-toner"] == 100.0
    assert states(fresh)["black-toner"] is CoarseState.OK
    assert [(e.type, e.consumable_id) for e in fresh.events] == [
        (EventType.CARTRIDGE_REPLACED, "black-toner")
    ]
    assert fresh.state is not None and fresh.events[0].seq > fresh.state.seq


def test_real_depletion_is_followed_and_moves_the_forecast(
    marker_printer: tuple[EvePrinter, Path],
) -> None:
    from agent.forecast import ConsumableSpec, Observation, forecast

    printer, _ = marker_printer
    spec = ConsumableSpec(unit=Unit.PERCENT, capacity=100.0, pack_size=100.0)
    readings: list[StateMessage] = []
    with source_for(printer.uri) as src:
        first = src.poll(T0)
        assert levels(first) == {"black-toner": 80.0, "cyan-toner": 45.0, "imaging-drum": None}
        assert states(first)["imaging-drum"] is CoarseState.SOME_REMAINING
        assert first.state is not None
        assert {c.counters["pages"] for c in first.state.consumables if c.counters} == {1234}
        readings.append(first.state)
        for day in range(1, 8):  # one job a day, each uses 10 % of each toner
            printer.print_job()
            result = src.poll(T0 + day * DAY)
            assert result.state is not None and result.events == []
            readings.append(result.state)

    black = [next(c for c in r.consumables if c.id == "black-toner") for r in readings]
    cyan = [next(c for c in r.consumables if c.id == "cyan-toner") for r in readings]
    assert [c.level for c in black] == [80, 70, 60, 50, 40, 30, 20, 10]
    assert [c.level for c in cyan] == [45, 35, 25, 15, 5, 0, 0, 0]
    assert black[-1].state is CoarseState.LOW  # 10 % is the printer's marker-low-level
    assert [c.state for c in cyan[3:6]] == [CoarseState.OK, CoarseState.LOW, CoarseState.EMPTY]
    drum = {next(c for c in r.consumables if c.id == "imaging-drum").state for r in readings}
    assert drum == {CoarseState.SOME_REMAINING}
    assert [r.seq for r in readings] == sorted({r.seq for r in readings})

    def forecast_after(n: int) -> tuple[float, float]:
        obs = [Observation(ts=r.ts, level=c.level, state=c.state)
               for r, c in zip(readings[:n], black[:n], strict=True)]
        fc = forecast(obs, spec, readings[n - 1].ts)
        assert fc.usable and fc.level is not None and fc.rate_per_day is not None
        p50 = fc.time_to_empty_days[1]
        assert p50 is not None
        assert fc.level == pytest.approx(black[n - 1].level, abs=3)
        assert fc.rate_per_day == pytest.approx(10.0, rel=0.2)
        return fc.level, p50

    early_level, early_p50 = forecast_after(4)
    late_level, late_p50 = forecast_after(8)
    assert late_level < early_level
    assert late_p50 < early_p50
    assert early_p50 == pytest.approx(5.0, abs=1.0)  # 50 % left at 10 %/day
    assert late_p50 == pytest.approx(1.0, abs=1.0)


def test_asleep_printer_gives_no_reading_until_it_wakes(
    marker_printer: tuple[EvePrinter, Path],
) -> None:
    printer, state_file = marker_printer
    with source_for(printer.uri, interval=60) as src:
        assert levels(src.poll(T0))["black-toner"] == 80.0
        state_file.write_text("-2,-2,-2\n")  # the print command now reports "unknown"
        printer.print_job()
        asleep = [src.poll(T0 + i * DAY) for i in (1, 2, 3)]
        state_file.write_text("100,45,-3\n")
        printer.print_job()  # the job itself uses 10 %
        awake = src.poll(T0 + 4 * DAY)
    assert [r.status for r in asleep] == [PollStatus.ASLEEP] * 3
    assert all(r.state is None for r in asleep)
    assert [r.next_poll_in_s for r in asleep] == [120, 240, 480]
    assert levels(awake) == {"black-toner": 90.0, "cyan-toner": 35.0, "imaging-drum": None}
    assert awake.next_poll_in_s == 60
    assert [e.consumable_id for e in awake.events] == []  # 80 -> 90 is below the jump


def test_closed_port_is_unreachable_and_backs_off() -> None:
    with source_for(f"ipp://127.0.0.1:{free_port()}/ipp/print", interval=30) as src:
        results = [src.poll(T0 + i * DAY) for i in range(4)]
    assert {r.status for r in results} == {PollStatus.UNREACHABLE}
    assert all(r.state is None and r.events == [] for r in results)
    assert [r.next_poll_in_s for r in results] == [60, 120, 240, 480]


class _JunkHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a 200 that claims to be IPP but is not."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"\x01\x02<html>definitely not ipp</html>" * 3
        self.send_response(200)
        self.send_header("Content-Type", "application/ipp")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def junk_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JunkHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_garbage_answer_is_a_bad_response_and_backs_off(junk_server: int) -> None:
    with source_for(f"ipp://127.0.0.1:{junk_server}/ipp/print", interval=30) as src:
        results = [src.poll(T0 + i * DAY) for i in range(3)]
    assert {r.status for r in results} == {PollStatus.BAD_RESPONSE}
    assert all(r.state is None for r in results)
    assert [r.next_poll_in_s for r in results] == [60, 120, 240]


@pytest.fixture
def raw_junk_port() -> Iterator[int]:
    """A TCP server that answers anything with bytes that are not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"\x00\xffSSH-2.0-nope\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_non_http_answer_is_a_bad_response(raw_junk_port: int) -> None:
    with source_for(f"ipp://127.0.0.1:{raw_junk_port}/ipp/print") as src:
        result = src.poll(T0)
    assert (result.status, result.state) == (PollStatus.BAD_RESPONSE, None)


def _replenish(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``replenish`` entry point in-process (a fresh interpreter costs seconds)."""
    argv = ["--config", str(config)] if config is not None else []
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([*argv, *args])
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_printers_add_reads_the_printer_and_prints_the_block(
    marker_printer: tuple[EvePrinter, Path], tmp_path: Path,
) -> None:
    printer, _ = marker_printer
    out = _replenish("printers", "add", printer.uri, "--name", "office")
    assert out.returncode == 0, out.stderr
    assert "office: ok (3 supplies)" in out.stdout
    assert "black-toner" in out.stdout and "some_remaining" in out.stdout
    assert "pages printed: 1234" in out.stdout
    block = out.stdout[out.stdout.index("[[printers]]"):]
    # The printed block is a valid settings file, and list --check reads it back.
    config = tmp_path / "agent.toml"
    config.write_text(block)
    listed = _replenish("printers", "list", "--check", "--json", config=config)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["device_id"], r["status"]) for r in rows] == [("office", "ok")]
    assert {c["id"]: c.get("level") for c in rows[0]["consumables"]} == {
        "black-toner": 80, "cyan-toner": 45, "imaging-drum": None,
    }


def test_printers_add_refuses_an_unreachable_printer() -> None:
    out = _replenish("printers", "add", f"ipp://127.0.0.1:{free_port()}/ipp/print", "--json")
    assert out.returncode == 3
    data = json.loads(out.stdout)
    assert (data["status"], data["toml"], data["consumables"]) == ("unreachable", None, [])
    bad = _replenish("printers", "add", "http://printer/ipp/print")
    assert bad.returncode == 2 and "uri" in bad.stderr

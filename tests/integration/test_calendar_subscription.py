"""Calendar subscriptions against a real local HTTP server (pytest-httpserver).

The server answers like a CalDAV server's published-calendar URL (Nextcloud's
``/remote.php/dav/public-calendars/<token>?export``, Google's secret ``basic.ics``):
``text/calendar`` with ``ETag`` and ``Last-Modified``, ``304`` to a matching
conditional GET (RFC 9110 sections 13.1.1-13.1.3).
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.cli.main import main
from agent.logs import redact
from agent.sources.calendar.away import away_periods
from agent.sources.calendar.subscription import CalendarSubscriptions
from agent.storage.ledger import Ledger

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent.parent / "fixtures" / "calendar"
WEEKLY = (FIXTURES / "outlook_weekly_windows_tz.ics").read_text(encoding="utf-8")
NOW = datetime(2026, 9, 20, tzinfo=UTC)
SECRET_PATH = "/remote.php/dav/public-calendars/Zq8sT0pS3cr3tT0k3n"


class CalendarServer:
    """Serves one calendar with validators; counts requests and conditional hits."""

    def __init__(self, text: str) -> None:
        self.text, self.etag, self.requests, self.not_modified = text, '"v1"', 0, 0
        self.status = 200
        self.delay_s = 0.0

    def __call__(self, request: Request) -> Response:
        self.requests += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.status != 200:
            return Response("Internal Server Error", status=self.status)
        if request.headers.get("If-None-Match") == self.etag:
            self.not_modified += 1
            return Response(status=304, headers={"ETag": self.etag})
        return Response(self.text, content_type="text/calendar; charset=utf-8",
                        headers={"ETag": self.etag,
                                 "Last-Modified": "Tue, 15 Sep 2026 10:15:00 GMT"})


@pytest.fixture
def served(httpserver: HTTPServer) -> CalendarServer:
    server = CalendarServer(WEEKLY)
    httpserver.expect_request(SECRET_PATH).respond_with_handler(server)
    return server


def setup(tmp_path: Path, httpserver: HTTPServer) -> tuple[CalendarSubscriptions, Ledger, str]:
    subs = CalendarSubscriptions(tmp_path / "calendars")
    url = httpserver.url_for(SECRET_PATH)
    subs.add("family", url)
    return subs, Ledger.open(tmp_path / "agent.db"), url


def test_subscribe_fetch_conditional_get_and_secret_kept_out(
        tmp_path: Path, httpserver: HTTPServer, served: CalendarServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    subs, ledger, url = setup(tmp_path, httpserver)
    assert (subs.dir / "family.url").stat().st_mode & 0o777 == 0o600
    assert subs.dir.stat().st_mode & 0o777 == 0o700

    first = subs.refresh("family", ledger, NOW)
    assert (first.status, first.added) == ("updated", 3)
    assert len(away_periods(ledger)) == 3

    again = subs.refresh("family", ledger, NOW)
    assert (again.status, again.added, again.removed) == ("unchanged", 0, 0)
    assert served.not_modified == 1 and served.requests == 2
    assert len(away_periods(ledger)) == 3
    ledger.close()

    token = "Zq8sT0pS3cr3tT0k3n"
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("agent")]
    assert any("calendar.refresh name=family" in m for m in ours)
    assert not any(token in m for m in ours)
    # httpx logs URLs at INFO: the agent keeps it at WARNING and redacts the URL anyway.
    assert token not in redact(f"HTTP Request: GET {url}")
    db = sqlite3.connect(tmp_path / "agent.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert token not in dump and "calendar:family" in dump
    assert token not in (subs.dir / "family.json").read_text()


def test_server_down_or_not_a_calendar_keeps_the_last_good_copy(
        tmp_path: Path, httpserver: HTTPServer, served: CalendarServer) -> None:
    subs, ledger, _ = setup(tmp_path, httpserver)
    assert subs.refresh("family", ledger, NOW).status == "updated"

    served.status = 500
    down = subs.refresh("family", ledger, NOW)
    assert (down.status, down.reason) == ("failed", "HTTP 500")
    served.status, served.etag, served.text = 200, '"v2"', "<html>Log in</html>"
    bad = subs.refresh("family", ledger, NOW)
    assert bad.status == "failed" and "iCalendar" in bad.reason
    assert subs.state("family")["failures"] == 2
    assert len(away_periods(ledger)) == 3  # absences unchanged
    assert subs.last_good("family") == WEEKLY

    served.text = WEEKLY
    assert subs.refresh("family", ledger, NOW).status == "updated"
    assert subs.state("family")["failures"] == 0
    ledger.close()


def test_unreachable_and_slow_servers_fail_within_the_timeout(
        tmp_path: Path, httpserver: HTTPServer, served: CalendarServer) -> None:
    subs, ledger, _ = setup(tmp_path, httpserver)
    served.delay_s = 1.0
    slow = subs.refresh("family", ledger, NOW, timeout_s=0.2)
    assert (slow.status, slow.reason) == ("failed", "ReadTimeout")
    subs.add("gone", "http://127.0.0.1:9/calendar.ics")  # discard port: nothing listens
    gone = subs.refresh("gone", ledger, NOW, timeout_s=0.5)
    assert (gone.status, gone.reason) == ("failed", "ConnectError")
    ledger.close()


def test_a_moved_or_deleted_occurrence_goes_and_past_ones_stay(
        tmp_path: Path, httpserver: HTTPServer, served: CalendarServer) -> None:
    subs, ledger, _ = setup(tmp_path, httpserver)
    assert subs.refresh("family", ledger, NOW).added == 3
    # The household cancels the series after its first weekend: COUNT=4 becomes COUNT=1.
    served.text, served.etag = WEEKLY.replace("COUNT=4", "COUNT=1"), '"v2"'
    later = datetime(2026, 10, 5, tzinfo=UTC)  # the first weekend is over
    res = subs.refresh("family", ledger, later)
    assert (res.added, res.removed) == (0, 2)
    [kept] = away_periods(ledger)
    assert kept.start == datetime(2026, 10, 2, 15, 0, tzinfo=UTC)
    ledger.close()


def test_cli_subscribe_from_stdin_list_refresh_unsubscribe(
        tmp_path: Path, httpserver: HTTPServer, served: CalendarServer,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "agent.db"}"\n')
    monkeypatch.setenv("REPLENISH_NOW", "2026-09-20T00:00:00+00:00")
    monkeypatch.setattr("sys.stdin", io.StringIO(httpserver.url_for(SECRET_PATH) + "\n"))

    def cli(*argv: str) -> tuple[int, str]:
        code = main(["--config", str(config), *argv])
        return code, capsys.readouterr().out

    code, out = cli("away", "subscribe", "-", "--name", "family")
    assert code == 0 and "3 absences added" in out and "Zq8sT0" not in out
    assert (tmp_path / "calendars" / "family.url").exists()
    code, out = cli("away", "refresh")
    assert code == 0 and "family: unchanged" in out
    [row] = json.loads(cli("away", "subscriptions", "--json")[1])
    assert row["name"] == "family" and row["failures"] == 0 and row["etag"] == '"v1"'
    assert cli("away", "unsubscribe", "family")[0] == 0
    assert json.loads(cli("away", "list", "--json")[1]) == []
    assert cli("away", "subscribe", "ftp://example.invalid/x.ics")[0] != 0

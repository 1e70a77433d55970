"""The web app's Away page manages calendar subscriptions through the same functions as
``replenish away subscribe`` (agent.app.calendars), against a real local HTTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from starlette.testclient import TestClient

from agent.sources.calendar.away import away_periods
from agent.storage.ledger import Ledger
from agent.web import server
from agent.web.app import create_app
from tests.integration.test_calendar_subscription import SECRET_PATH, CalendarServer, served
from tests.vendor_fake import FakeVendor
from tests.web_helpers import PASSWORD, VIEWER_PASSWORD, seed, set_passwords, web_settings

pytestmark = pytest.mark.integration
NOW = datetime(2026, 9, 20, tzinfo=UTC)
__all__ = ["served"]  # the fixture, shared with the CLI's subscription tests


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    db = tmp_path / "agent.db"
    seed(db, NOW - timedelta(days=30), FakeVendor().client().catalog)
    settings = web_settings(tmp_path, db)
    set_passwords(settings)
    app = create_app(settings, server.paths(settings).password, b"k" * 32, clock=lambda: NOW)
    with TestClient(app, base_url="http://gateway.test") as c:
        yield c


def _login(client: TestClient, password: str = PASSWORD) -> str:
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    assert client.post("/login", data={"login_token": token[1], "password": password},
                       follow_redirects=False).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/away").text)
    assert csrf is not None
    return csrf[1]


def test_subscribe_list_refresh_and_unsubscribe_on_the_away_page(
        client: TestClient, tmp_path: Path, httpserver: HTTPServer,
        served: CalendarServer) -> None:
    csrf = _login(client)
    url = httpserver.url_for(SECRET_PATH)
    bad = client.post("/away/calendars", data={"csrf": csrf, "name": "my family!",
                                               "url": url})
    assert bad.status_code == 400 and 'id="err-name"' in bad.text
    bad = client.post("/away/calendars", data={"csrf": csrf, "name": "family",
                                               "url": "ftp://example.invalid/x.ics"})
    assert bad.status_code == 400 and 'id="err-url"' in bad.text and "http(s)://" in bad.text
    ok = client.post("/away/calendars", data={"csrf": csrf, "name": "family", "url": url})
    assert ok.status_code == 200 and "calendar family: updated, 3 absences added" in ok.text
    assert "Zq8sT0" not in ok.text  # the secret URL is never shown back
    assert (tmp_path / "calendars" / "family.url").read_text().strip() == url
    page = client.get("/away").text
    row = page.split('id="calendar-family"')[1].split("</tr>")[0]
    assert "never" not in row and "2026-09-20 00:00" in row  # fetched now
    ledger = Ledger.open(tmp_path / "agent.db")
    assert len(away_periods(ledger)) == 3
    ledger.close()
    again = client.post("/away/calendars/refresh", data={"csrf": csrf})
    assert again.status_code == 200 and "calendar family: unchanged" in again.text
    assert served.not_modified == 1
    gone = client.post("/away/calendars/family/remove", data={"csrf": csrf})
    assert gone.status_code == 200 and "family unsubscribed" in gone.text
    assert "No calendar subscriptions." in gone.text
    ledger = Ledger.open(tmp_path / "agent.db")
    assert away_periods(ledger) == []  # its coming absences went with it
    ledger.close()
    assert client.post("/away/calendars/family/remove",
                       data={"csrf": csrf}).status_code == 404


def test_a_failed_fetch_is_reported_and_the_viewer_cannot_subscribe(
        client: TestClient, httpserver: HTTPServer, served: CalendarServer) -> None:
    csrf = _login(client)
    served.status = 500
    out = client.post("/away/calendars", data={"csrf": csrf, "name": "family",
                                               "url": httpserver.url_for(SECRET_PATH)})
    assert out.status_code == 200 and "fetch failed" in out.text
    assert "Failures" in out.text and ">1 <small>" in out.text
    client.cookies.clear()
    csrf = _login(client, VIEWER_PASSWORD)
    refused = client.post("/away/calendars", data={"csrf": csrf, "name": "other",
                                                   "url": httpserver.url_for(SECRET_PATH)})
    assert refused.status_code == 403
    assert 'id="calendar-add"' not in client.get("/away").text

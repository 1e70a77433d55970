"""The web app's handlers through Starlette's TestClient, on a real SQLite file seeded by
the real store, ledger and planner (the vendor is the in-memory fake behind httpx)."""

from __future__ import annotations

import re
import sqlite3
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.errors import ConfigError
from agent.storage.ledger import Ledger, State
from agent.web import auth, server
from agent.web.app import CSP, create_app
from tests.vendor_fake import CATALOG, T0, FakeVendor
from tests.web_helpers import PASSWORD, VIEWER_PASSWORD, seed, set_passwords, web_settings

XSS = "<script>alert(1)</script>"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[TestClient, Path, Clock]]:
    db = tmp_path / "agent.db"
    vendor = FakeVendor()
    monkeypatch.setitem(CATALOG, "TONER-TN2420",
                        {**CATALOG["TONER-TN2420"], "name": f"Toner {XSS}"})
    now = seed(db, T0, vendor.client().catalog)
    settings = web_settings(tmp_path, db, login_attempts=3)
    set_passwords(settings)
    clock = Clock(now + timedelta(minutes=5))
    app = create_app(settings, server.paths(settings).password, b"k" * 32, clock=clock)
    with TestClient(app, base_url="http://gateway.test") as client:
        yield client, db, clock


def login(client: TestClient, password: str = PASSWORD) -> int:
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token is not None
    return client.post("/login", data={"login_token": token[1], "password": password},
                       follow_redirects=False).status_code


def csrf(client: TestClient, path: str = "/orders") -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert m is not None
    return m[1]


def proposal(client: TestClient) -> tuple[int, str]:
    text = client.get("/orders").text
    m = re.search(r'action="/orders/(\d+)/approve">.*?name="ref" value="([^"]+)"', text)
    assert m is not None, text
    return int(m[1]), m[2]


def intents(db: Path) -> list[tuple[int, State]]:
    ledger = Ledger.open(db)
    try:
        return [(i.id, i.state) for i in ledger.intents()]
    finally:
        ledger.close()


def test_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    seed(db, T0, FakeVendor().client().catalog)
    with pytest.raises(ConfigError, match="set-password"):
        server.build(web_settings(tmp_path, db))


def test_password_file_is_private_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "state" / "web-password"
    auth.set_password(path, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD not in path.read_text() and "scrypt$" in path.read_text()
    assert auth.login_role(auth.read_passwords(path), PASSWORD) == "household"
    assert auth.login_role(auth.read_passwords(path), PASSWORD + "x") is None
    with pytest.raises(ConfigError, match="at least 8"):
        auth.set_password(path, "short")


def test_the_server_checks_logins_in_a_child_process(
        web: tuple[TestClient, Path, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt's 16 MiB must never be taken inside the server: with the in-process scrypt
    # broken, logins still work (and a wrong password is still wrong).
    def no_scrypt(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("scrypt ran inside the web process")

    monkeypatch.setattr(auth.hashlib, "scrypt", no_scrypt)
    client, _, _ = web
    assert login(client, "wrong password") == 401
    assert login(client, VIEWER_PASSWORD) == 303
    assert login(client) == 303


def test_child_check_refuses_malformed_hashes_and_reports_a_dead_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    stored = auth.hash_password(PASSWORD)
    slot = asyncio.Semaphore(1)
    assert asyncio.run(auth.check_in_child(PASSWORD, stored, slot)) is True
    assert asyncio.run(auth.check_in_child("x" + PASSWORD, stored, slot)) is False
    assert asyncio.run(auth.check_in_child(PASSWORD, "scrypt$oops", slot)) is False
    monkeypatch.setattr(auth.sys, "executable", "/bin/false")
    with pytest.raises(auth.HashError, match="exit 1"):
        asyncio.run(auth.check_in_child(PASSWORD, stored, slot))


def test_missing_session_redirects_and_refuses_posts(web: tuple[TestClient, Path, Clock]
                                                     ) -> None:
    client, db, _ = web
    before = intents(db)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.post("/orders/1/approve", data={"csrf": "x", "ref": "x"}).status_code == 401
    client.cookies.set("replenish_session", "eyJyIjoiaG91c2Vob2xkIn0.bad")
    forged = client.post("/orders/1/approve", data={"ref": "x"})
    assert forged.status_code == 401
    assert intents(db) == before


def test_post_without_the_csrf_token_changes_nothing(web: tuple[TestClient, Path, Clock]
                                                      ) -> None:
    client, db, _ = web
    assert login(client) == 303
    intent_id, ref = proposal(client)
    for data in ({"ref": ref}, {"ref": ref, "csrf": "wrong"}):
        resp = client.post(f"/orders/{intent_id}/approve", data=data)
        assert resp.status_code == 403 and "out of date" in resp.text
    assert intents(db) == [(intent_id, State.PROPOSED)]


def test_login_rate_limit_blocks_even_the_right_password(
        web: tuple[TestClient, Path, Clock]) -> None:
    client, _, _ = web
    assert [login(client, "wrong password") for _ in range(3)] == [401, 401, 401]
    assert login(client) == 429
    assert client.get("/", follow_redirects=False).status_code == 303


def test_home_lists_the_consumable_with_headers(web: tuple[TestClient, Path, Clock]) -> None:
    client, _, _ = web
    assert login(client) == 303
    resp = client.get("/")
    assert resp.status_code == 200 and "printer-1 / black" in resp.text
    assert "1 order waiting" in resp.text and "confirm" in resp.text
    assert resp.headers["content-security-policy"] == CSP and "script-src" not in CSP
    assert "<script" not in resp.text  # the pages carry no JavaScript at all
    cookie = next(h for k, h in resp.request.headers.items() if k == "cookie")
    assert "replenish_session=" in cookie


def test_approve_twice_queues_once_and_shows_terms_first(
        web: tuple[TestClient, Path, Clock]) -> None:
    client, db, clock = web
    assert login(client) == 303
    page = client.get("/orders").text
    assert "54.90 EUR each" in page and "TONER-TN2420" in page and "Arrival" in page
    # The expected arrival before approval: the lead time the decision used (the fake
    # vendor quotes 2 days, sd 0.5: p90 2.6 days), counted from now.
    likely = (clock.now + timedelta(days=2)).strftime("%Y-%m-%d")
    latest = (clock.now + timedelta(days=2.64)).strftime("%Y-%m-%d")
    tail = f", by {latest} at the latest" if latest != likely else ""
    assert f"if approved now: about {likely}{tail}" in page
    assert "lead time 2.0 days" in page
    intent_id, ref = proposal(client)
    token = csrf(client)
    first = client.post(f"/orders/{intent_id}/approve", data={"csrf": token, "ref": ref})
    second = client.post(f"/orders/{intent_id}/approve", data={"csrf": token, "ref": ref})
    assert first.status_code == 200 and "approved" in first.text
    assert second.status_code == 200 and "already approved" in second.text
    assert intents(db) == [(intent_id, State.QUEUED)]
    ledger = Ledger.open(db)
    kinds = [r.kind for r in ledger.audit_records()]
    ledger.close()
    assert kinds.count("order_approved") == 1


def test_stale_proposals_are_refused_with_the_reason(
        web: tuple[TestClient, Path, Clock]) -> None:
    client, db, clock = web
    assert login(client) == 303
    intent_id, ref = proposal(client)
    token = csrf(client)
    changed = client.post(f"/orders/{intent_id}/approve", data={"csrf": token, "ref": "p1-0"})
    assert changed.status_code == 409 and "changed since you saw it" in changed.text
    clock.now += timedelta(hours=49)
    expired = client.post(f"/orders/{intent_id}/approve", data={"csrf": token, "ref": ref})
    assert expired.status_code == 409 and "expired" in expired.text
    assert intents(db) == [(intent_id, State.PROPOSED)]
    ledger = Ledger.open(db)
    refused = [r.fields()["result"] for r in ledger.audit_records()
               if r.kind == "household_command_refused"]
    ledger.close()
    assert len(refused) == 2 and "expired" in refused[1]


def test_vendor_and_device_strings_are_escaped(web: tuple[TestClient, Path, Clock]) -> None:
    client, db, _ = web
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO devices (device_id, kind, first_seen, last_seen, last_seq, fw) "
                 "VALUES (?, 'other', 0, 0, 0, ?)", (f"dev{XSS}", XSS))
    conn.commit()
    conn.close()
    assert login(client) == 303
    for path in ("/orders", "/devices"):
        text = client.get(path).text
        assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_viewer_can_look_but_not_act(web: tuple[TestClient, Path, Clock]) -> None:
    client, db, _ = web
    assert login(client, VIEWER_PASSWORD) == 303
    page = client.get("/orders").text
    assert "54.90" in page and "Approve</button>" not in page
    intent_id, state = intents(db)[0]
    token = csrf(client, "/")
    resp = client.post(f"/orders/{intent_id}/approve", data={"csrf": token, "ref": "x"})
    assert resp.status_code == 403 and intents(db) == [(intent_id, state)]


def test_consent_form_validates_each_field_and_summarises(
        web: tuple[TestClient, Path, Clock]) -> None:
    client, db, _ = web
    assert login(client) == 303
    token = csrf(client, "/consent")
    bad = client.post("/consent", data={"csrf": token, "consumable": "printer-1/black",
                                        "mode": "auto", "skus": "", "max_price": "abc",
                                        "max_qty": "0", "expires": "2020-01-01"})
    assert bad.status_code == 400
    for field, text in (("skus", "at least one allowed SKU"), ("max_price", "not an amount"),
                        ("max_qty", "whole number"), ("expires", "in the future")):
        assert re.search(rf'id="err-{field}">[^<]*{text}', bad.text), field
    good = client.post("/consent", data={"csrf": token, "consumable": "printer-1/black",
                                         "mode": "auto", "skus": "TONER-TN2420",
                                         "max_price": "60", "max_qty": "1", "budget": "120",
                                         "expires": "2027-12-31"})
    assert good.status_code == 200
    assert "may order printer-1/black without asking until 2027-12-31" in good.text
    ledger = Ledger.open(db)
    c = ledger.consent("printer-1/black")
    ledger.close()
    assert c is not None and c.mode.value == "auto" and c.mandate is not None
    assert str(c.mandate.max_unit_price) == "60" and c.mandate.max_quantity == 1


def test_away_audit_consumable_and_devices_pages(web: tuple[TestClient, Path, Clock]) -> None:
    client, db, _ = web
    assert login(client) == 303
    token = csrf(client, "/away")
    bad = client.post("/away", data={"csrf": token, "start": "2026-04-10", "end": "soon"})
    assert bad.status_code == 400 and 'id="err-end"' in bad.text
    ok = client.post("/away", data={"csrf": token, "start": "2026-04-10",
                                    "end": "2026-04-12", "label": "Easter"})
    assert ok.status_code == 200 and "Easter" in ok.text
    verify = client.get("/audit/verify").text
    assert re.search(r"Chain OK: \d+ records verified", verify)
    assert "away_added" in client.get("/audit?kind=away_added").text
    plot = client.get("/c/printer-1/black").text
    assert "<svg" in plot and 'class="history"' in plot and 'class="band"' in plot
    assert "OK" in client.get("/devices").text
    assert "integrity ok" in client.get("/devices?integrity=1").text
    assert client.get("/c/printer-1/nothing").status_code == 404


def test_consumable_page_says_what_the_agent_learned(
        web: tuple[TestClient, Path, Clock]) -> None:
    from agent.storage.learned import LearnedRow, save_learned

    client, db, clock = web
    assert login(client) == 303
    conn = sqlite3.connect(db, isolation_level=None)
    save_learned(conn, [
        LearnedRow("consumable:printer-1/black", "low_level", 9.0, 10.0, 3),
        LearnedRow("consumable:printer-1/black", "realised_service", 0.75, 0.98, 4),
        LearnedRow("consumable:printer-1/black", "yield_per_pack", None, None, 0),
        LearnedRow("sku:TONER-TN2420", "lead_time_p90", 4.25, None, 6),
        LearnedRow("sku:OTHER", "lead_time_p90", 9.0, None, 6)], clock.now)
    conn.close()
    page = client.get("/c/printer-1/black").text
    section = page[page.index('id="learned"'):page.index("Planned orders")]
    assert "Nothing yet" not in section
    assert "LOW at about 9 percent, seen 3 times (it started from 10)" in section
    assert "75% of our 4 deliveries arrived before it ran out against a target of 98%" \
        in section
    assert "4.2 days from sending to delivery, from 6 delivered orders" in section
    assert "Yield" not in section and "9.0 days" not in section  # unknown value; other SKU


def test_pages_show_the_agents_stored_forecasts_and_flag_old_ones(
        web: tuple[TestClient, Path, Clock]) -> None:
    client, db, clock = web
    assert login(client) == 303
    home = client.get("/").text
    assert "forecast from" not in home and "not forecast yet" not in home
    page = client.get("/c/printer-1/black").text
    assert "decision pass of" in page and 'class="band"' in page
    clock.now += timedelta(hours=7)  # the agent's pass stopped: say so on the home page
    assert "is the agent running?" in client.get("/").text
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM forecasts")
    conn.close()
    assert "not forecast yet" in client.get("/").text
    assert "not forecast yet" in client.get("/c/printer-1/black").text
    conn = sqlite3.connect(db)  # the agent has not migrated yet after an upgrade
    with conn:
        conn.execute("DROP TABLE forecasts")
    conn.close()
    assert "not forecast yet" in client.get("/").text


def test_cli_sets_the_password_and_refuses_to_serve_without_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from agent.cli.main import main

    db = tmp_path / "agent.db"
    seed(db, T0, FakeVendor().client().catalog)
    config = tmp_path / "agent.toml"
    config.write_text(f'[storage]\npath = "{db}"\n[web]\nhost = "127.0.0.1"\nport = 1\n')
    assert main(["--config", str(config), "web"]) == 2  # no password: refuses to start
    assert "set-password" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", str(config), "web", "set-password", "--stdin"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--config", str(config), "web", "set-password", "--stdin"]) == 0
    stored = tmp_path / "web-password"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert auth.login_role(auth.read_passwords(stored), PASSWORD) == "household"
    assert main(["--config", str(config), "web", "url"]) == 0
    assert "http://127.0.0.1:1/" in capsys.readouterr().out

"""The household web app in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; nothing is downloaded), against the real
``replenish web`` process and the vendor sandbox over HTTP.

The flow: log in, see the proposal the real planner made from the sandbox catalog, approve
it, let the real dispatcher send it (twice: still exactly one order at the sandbox), set
an ``auto`` mandate, add an away period, open the consumable's plot and verify the audit
chain. Screenshots at phone (360 px) and desktop widths go to ``docs/web/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer

from agent.app.dispatcher import Dispatcher
from agent.storage.ledger import Ledger, State
from agent.vendor.client import VendorClient
from firmware_sim.vendor import VendorSandbox
from tests.integration.ipp_fixtures import free_port
from tests.integration.vendor_helpers import TOKEN
from tests.waiting import wait_until
from tests.web_helpers import PASSWORD, seed, set_passwords, web_settings

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "web"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
WIDTHS = {"phone": (360, 1400), "desktop": (1280, 1000)}


@pytest.fixture
def web_server(tmp_path: Path, sandbox: VendorSandbox) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "agent.db"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    with VendorClient(sandbox.url, TOKEN) as client:
        seed(db, t0, client.catalog, sku="TN-2420", vendor_name="sandbox")
    token = tmp_path / "vendor-token"
    token.write_text(TOKEN)
    settings = web_settings(tmp_path, db)
    set_passwords(settings)
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[storage]\npath = "{db}"\n[vendor]\nbase_url = "{sandbox.url}"\n'
        f'token_file = "{token}"\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
        f'password_file = "{tmp_path / "web-password"}"\n'
        f'session_key_file = "{tmp_path / "web-key"}"\n')
    env = {k: v for k, v in os.environ.items() if k != "REPLENISH_NOW"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "--config", str(config),
                             "web"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def serving() -> bool:
            try:
                return httpx.get(f"{url}/login", timeout=1).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_until(serving, timeout=30.0, what="the web server", every=0.1)
        yield url, db
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("install chromium and chromium-driver (.ci/ensure-packages.sh)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(30)
    # A click that navigates returns before the next page is there: element lookups wait
    # for it (the first home page can take seconds while the forecasts warm up).
    driver.implicitly_wait(15)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, (w, h) in WIDTHS.items():
        driver.set_window_size(w, h)  # type: ignore[attr-defined]
        driver.save_screenshot(str(SHOTS / f"{name}-{label}.png"))  # type: ignore[attr-defined]
    driver.set_window_size(*WIDTHS["desktop"])  # type: ignore[attr-defined]


def text(driver: object, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)  # type: ignore[attr-defined]


def shows(driver: object, css: str, expected: str, timeout: float = 15.0) -> None:
    """Wait until the element at ``css`` shows ``expected``. After a click the browser
    keeps the old page (with the last outcome) until the form's POST has answered."""

    def seen() -> str:
        try:
            return text(driver, css)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    wait_until(lambda: expected in seen(), timeout=timeout, what=seen)


def test_household_flow_in_a_real_browser(web_server: tuple[str, Path], browser: object,
                                          sandbox: VendorSandbox,
                                          httpserver: HTTPServer) -> None:
    url, db = web_server
    d = browser
    d.get(f"{url}/")  # type: ignore[attr-defined]
    assert d.current_url.endswith("/login")  # type: ignore[attr-defined]
    shoot(d, "login")
    d.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    d.find_element(By.ID, "login").click()  # type: ignore[attr-defined]
    WebDriverWait(d, 30).until(lambda drv: not drv.current_url.endswith("/login"))
    shows(d, "main", "printer-1 / black")
    shoot(d, "home")

    d.get(f"{url}/orders")  # type: ignore[attr-defined]
    ledger = Ledger.open(db)
    [proposal] = ledger.intents([State.PROPOSED])
    card = text(d, f"#proposal-{proposal.id}")
    assert "TN-2420" in card and f"{proposal.unit_price} EUR each" in card
    assert "if approved now: about" in card  # the expected arrival before approval
    shoot(d, "orders")
    d.find_element(By.ID, f"approve-{proposal.id}").click()  # type: ignore[attr-defined]
    shows(d, "#outcome", "approved")
    assert ledger.intent(proposal.id).state is State.QUEUED

    with VendorClient(sandbox.url, TOKEN) as client:
        dispatcher = Dispatcher(ledger, client, vendor_name="sandbox")
        now = datetime.now(UTC)
        dispatcher.run_once(now)
        dispatcher.run_once(now + timedelta(minutes=1))
    assert len(sandbox.orders()) == 1  # one tap, one order
    placed = ledger.intent(proposal.id)
    assert placed.state is State.PLACED and placed.order_id
    d.get(f"{url}/orders")  # type: ignore[attr-defined]
    shows(d, f"#order-{proposal.id}", placed.order_id)

    d.get(f"{url}/consent?c=printer-1/black")  # type: ignore[attr-defined]
    form = d.find_element(By.CSS_SELECTOR, "#consent-1 form")  # type: ignore[attr-defined]
    form.find_element(By.NAME, "mode").send_keys("auto")
    for name, value in (("skus", "TN-2420"), ("max_price", "70"), ("max_qty", "1"),
                        ("budget", "150")):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    shoot(d, "consent")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    shows(d, "#outcome", "may order printer-1/black without asking")
    assert ledger.mode("printer-1/black").value == "auto"

    d.get(f"{url}/away")  # type: ignore[attr-defined]
    start = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    end = (datetime.now(UTC) + timedelta(days=17)).date().isoformat()
    d.find_element(By.ID, "away-start").send_keys(start)  # type: ignore[attr-defined]
    d.find_element(By.ID, "away-end").send_keys(end)  # type: ignore[attr-defined]
    d.find_element(By.ID, "away-add").click()  # type: ignore[attr-defined]
    shows(d, "#away-periods", start)
    assert len(ledger.away_periods()) == 1
    # A calendar subscription, as `replenish away subscribe` makes it, from a real server.
    first = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y%m%d")
    last = (datetime.now(UTC) + timedelta(days=35)).strftime("%Y%m%d")
    httpserver.expect_request("/cal/family.ics").respond_with_data(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:trip-1\r\nDTSTAMP:{first}T000000Z\r\nDTSTART;VALUE=DATE:{first}\r\n"
        f"DTEND;VALUE=DATE:{last}\r\nSUMMARY:Vacation\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        content_type="text/calendar")
    d.find_element(By.ID, "calendar-name").send_keys("family")  # type: ignore[attr-defined]
    d.find_element(By.ID, "calendar-url").send_keys(  # type: ignore[attr-defined]
        httpserver.url_for("/cal/family.ics"))
    d.find_element(By.ID, "calendar-add").click()  # type: ignore[attr-defined]
    shows(d, "#outcome", "calendar family: updated, 1 absences added")
    shows(d, "#calendar-family", "family")
    assert len(ledger.away_periods()) == 2
    shoot(d, "away")

    d.get(f"{url}/")  # type: ignore[attr-defined]
    d.find_element(By.LINK_TEXT, "printer-1 / black").click()  # type: ignore[attr-defined]
    plot = d.find_element(By.CSS_SELECTOR, "#plot svg")  # type: ignore[attr-defined]
    assert plot.size["width"] > 300 and plot.find_elements(By.CSS_SELECTOR, "polyline")
    assert text(d, "#learned")  # what the agent learned (or that it has nothing yet)
    shoot(d, "consumable")

    d.get(f"{url}/audit")  # type: ignore[attr-defined]
    d.find_element(By.ID, "verify").click()  # type: ignore[attr-defined]
    assert text(d, "#verify-result").startswith("Chain OK")
    shoot(d, "audit")
    d.get(f"{url}/devices")  # type: ignore[attr-defined]
    shows(d, "#devices", "printer-1")
    shoot(d, "devices")
    ledger.close()

"""A weekly recurring absence in a subscribed calendar, end to end.

The Outlook export (RRULE weekly, COUNT=4, one EXDATE, a Windows time zone) is served
over HTTP like a published calendar; ``replenish away subscribe`` stores the URL, the
service's calendar job fetches it; the fridge (firmware_sim, replenish/v1 over the real
Mosquitto) drinks its milk at home and not while away; the agent orders milk on ``auto``
from the sandbox over HTTP, on simulated time as ``make demo`` does. No milk is delivered
during any of the three weekends away, and the household never runs out at home.
"""

from __future__ import annotations

import contextlib
import io
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from agent.app.service import AgentService
from agent.cli.main import main as replenish
from agent.config import load_settings
from agent.sources.calendar.away import away_periods
from agent.sources.calendar.ics import parse_ics
from agent.storage.ledger import Ledger
from firmware_sim.broker import LocalBroker
from firmware_sim.demo import advance_world, cli, wait_ingested, write_config
from firmware_sim.household.live import LivePublisher
from firmware_sim.household.scenario import Household
from firmware_sim.vendor import VendorSandbox, catalog_for, deliver_to
from firmware_sim.vendor.faults import SimClock

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "calendar" / "outlook_weekly_windows_tz.ics"
START = datetime(2026, 9, 21, 0, 0, tzinfo=UTC)
STEP = timedelta(hours=6)
PATH = "/remote.php/dav/public-calendars/Wk9x2TzQ?export"


def scenario(away: list[tuple[datetime, datetime]]) -> dict[str, object]:
    return {
        "name": "weekends-away", "seed": 4, "start": START.isoformat(), "people": 3,
        "utc_offset_hours": 2, "lead_time": {"mean_days": 1.0, "sd_days": 0.2},
        "away": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in away],
        "devices": [{
            "id": "fridge-1", "kind": "fridge", "report_every_minutes": 60,
            "milk": {"sku": "MILK-1L", "capacity": 3000, "pack_size": 1000,
                     "initial": 2200, "shelf_life_days": 10},  # only the agent buys milk
        }],
    }


def test_every_weekend_away_stops_milk_deliveries(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ics = FIXTURE.read_text(encoding="utf-8")
    httpserver.expect_request("/remote.php/dav/public-calendars/Wk9x2TzQ").respond_with_data(
        ics, content_type="text/calendar; charset=utf-8")
    away = [(e.start, e.end) for e in parse_ics(ics)]
    assert len(away) == 3  # Oct 2, 9 and 23: the 16th is an EXDATE
    household = Household.from_scenario(scenario(away))
    clock = SimClock(START)
    users = {"agent": secrets.token_urlsafe(12), "household": secrets.token_urlsafe(12),
             "fridge-1": secrets.token_urlsafe(12)}
    token = secrets.token_urlsafe(16)
    state = tmp_path / "state"
    with LocalBroker(state / "broker", users=users) as broker, VendorSandbox(
            token=token, catalog=catalog_for(household), clock=clock,
            on_delivered=deliver_to(household)) as vendor:
        config = write_config(state, broker, vendor, token)
        monkeypatch.setattr("sys.stdin", io.StringIO(httpserver.url_for(PATH) + "\n"))
        with contextlib.redirect_stdout(io.StringIO()):
            assert replenish(["--config", str(config), "away", "subscribe", "-",
                              "--name", "family"]) == 0
        service = AgentService(load_settings(config), clock=clock.now)
        service.start(background_jobs=False)
        try:
            service.sources.refresh_calendars()  # the scheduled job, run by hand
            ledger = Ledger.open(service.settings.storage.path)
            try:
                assert [(a.start, a.end) for a in away_periods(ledger)] == away
            finally:
                ledger.close()
            with LivePublisher(household, broker.host, broker.port,
                               {"fridge-1": users["fridge-1"]}) as publisher:
                now, consented = START, False
                while now < START + timedelta(days=36):
                    now = advance_world(clock, vendor, publisher, STEP)
                    wait_ingested(service)
                    if not consented:
                        assert cli(config, "consent", "set", "fridge-1/milk", "auto", "--sku",
                                   "MILK-1L", "--max-price", "3", "--max-qty", "3",
                                   "--budget", "60", now=now, quiet=True)[0] == 0
                        consented = True
                    service.decide()
                    service.dispatch()
        finally:
            service.shutdown()
        orders = vendor.orders()
    delivered = [o.delivered_at for o in orders if o.delivered_at is not None]
    assert len(delivered) >= 4, orders  # milk kept coming between the weekends
    for at in delivered:
        assert not any(a <= at < b for a, b in away), (at, away)
    # Timed to arrive on the return (the lead time is a day): the weekend moved them.
    assert any(b <= at <= b + timedelta(days=1, hours=12) for at in delivered for _, b in away)
    fridge = household.device("fridge-1")
    outs = [(a, b) for a, b in fridge.stockouts("milk") if a >= START + timedelta(days=2)]
    assert not [(a, b) for a, b in outs if not household.is_away(a)], outs

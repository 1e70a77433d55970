"""A household database for the web tests, made by the real store, ledger and planner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from agent.app.planner import Catalog, Planner
from agent.config import Settings
from agent.consent import Mode
from agent.domain import DeviceKind, Unit
from agent.storage.forecasts import save_forecasts
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.web import auth
from agent.wire.device import Consumable, StateMessage

PASSWORD = "correct horse battery"
VIEWER_PASSWORD = "viewer only please"


def seed(db: Path, t0: datetime, catalog: Catalog, *, sku: str = "TONER-TN2420",
         device: str = "printer-1", vendor_name: str = "shop") -> datetime:
    """30 days of a toner falling 3 % a day to 6 %, consent ``confirm``, one planner pass
    (which proposes an order and stores its forecasts); returns the time of that pass."""
    now = t0 + timedelta(days=30)
    with Store(db) as store:
        store.write_batch([StateMessage(
            device_id=device, seq=day, ts=t0 + timedelta(days=day), kind=DeviceKind.PRINTER,
            consumables=[Consumable(id="black", level=max(0.0, 6.0 + 3.0 * (30 - day)),
                                    unit=Unit.PERCENT, capacity=100, sku=sku)])
            for day in range(31)], received_at=now.timestamp())
        ledger = Ledger.open(db)
        try:
            ledger.set_consent(f"{device}/black", Mode.CONFIRM, None, t0)
            report = Planner(store, ledger, catalog, vendor_name=vendor_name).run_once(now)
            save_forecasts(ledger.conn, report.forecasts)  # as AgentService.decide does
        finally:
            ledger.close()
    return now


def web_settings(tmp_path: Path, db: Path, **web: object) -> Settings:
    return Settings(storage={"path": db}, web={"password_file": tmp_path / "web-password",
                                               "session_key_file": tmp_path / "web-key",
                                               **web})


def set_passwords(settings: Settings) -> None:
    from agent.web.server import paths

    auth.set_password(paths(settings).password, PASSWORD)
    auth.set_password(paths(settings).password, VIEWER_PASSWORD, "viewer")


Clock = Callable[[], datetime]

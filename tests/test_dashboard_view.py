"""One dashboard view: ``status``, the household topics and the web home page agree."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agent.app.planner import Planner
from agent.cli.commands.status import _no_catalog, collect
from agent.consent import Mode
from agent.household.views import consumable_states, consumable_views
from agent.storage.forecasts import load_forecasts, save_forecasts
from agent.storage.ledger import Ledger
from agent.storage.store import Store
from agent.web.data import home_rows
from tests.test_status_command import NOW, config


def test_status_mqtt_and_web_show_the_same_consumable(tmp_path: Path) -> None:
    config(tmp_path)
    db = tmp_path / "agent.db"
    with Store(db) as store:
        ledger = Ledger.open(db)
        try:
            ledger.set_consent("printer-1/black", Mode.CONFIRM, None, NOW)
            forecasts = Planner(store, ledger, _no_catalog, vendor_name="-").outlook(NOW)
            [view] = consumable_views(store.devices(), store.consumables(), ledger, forecasts)
            [status] = collect(store, ledger, NOW).to_json()["consumables"]  # type: ignore[misc]
            [state] = consumable_states([view])
            # The web app reads the forecasts the decision pass stored, not its own.
            save_forecasts(ledger.conn, forecasts)
            [web] = home_rows(store, ledger, NOW, load_forecasts(store.conn))
        finally:
            ledger.close()
    p10, p50, _ = view.days_left
    assert p50 is not None and p10 is not None
    assert (view.key, view.mode, view.level, view.readings) == ("printer-1/black", "confirm",
                                                               40.0, 31)
    assert (status["mode"], status["days_left"], status["days_left_p10"]) == ("confirm", p50,
                                                                            p10)
    assert (state.mode, state.days_left, state.days_left_p10, state.level) == (
        "confirm", p50, p10, 40.0)
    assert (web.mode, web.p50, web.p10, web.level) == ("confirm", p50, p10, 40.0)
    assert state.updated_at == web.last_ts == view.updated_at
    assert view.updated_at is not None and view.updated_at <= NOW + timedelta(seconds=1)

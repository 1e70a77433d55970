"""The acknowledgement link in a caregiver's message, through the web app."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from agent.app.alerting import AlertPass, message, notifier_of
from agent.config import Settings
from agent.storage.alerts import AlertLedger
from agent.storage.store import Store
from agent.web import server
from agent.web.app import create_app
from agent.wire.device import EventMessage
from tests.web_helpers import set_passwords

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def test_the_link_shows_the_alert_and_only_a_post_acknowledges_it(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.write_batch([EventMessage(device_id="watch-1", seq=1, ts=T0,  # type: ignore[arg-type]
                                        type="fall_alert")], received_at=T0.timestamp())
    settings = Settings.model_validate({
        "storage": {"path": db},
        "alerts": {"ack_url_base": "https://gateway.example:8470", "contacts": [],
                   "rules": []},
        "web": {"password_file": tmp_path / "web-password",
                "session_key_file": tmp_path / "web-key"}})
    ledger = AlertLedger.open(db)
    (alert_id,) = ledger.absorb_events({"fall_alert": timedelta(minutes=30)}, T0)
    alert = ledger.alert(alert_id)
    ledger.close()
    alerts = AlertPass(settings.alerts, lambda: AlertLedger.open(db),
                       notifier_of(settings.alerts), ack_key_path=tmp_path / "ack-key")
    settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(
        update={"ack_key_file": tmp_path / "ack-key"})})
    link = alerts.link(alert_id)
    assert link is not None and link.startswith(
        f"https://gateway.example:8470/alerts/{alert_id}/ack?t=")
    assert link in message(alert, "Flat 3", link)[1]
    token = link.rsplit("t=", 1)[1]
    assert oct((tmp_path / "ack-key").stat().st_mode & 0o777) == "0o600"

    set_passwords(settings)
    app = create_app(settings, server.paths(settings).password, b"k" * 32,
                     clock=lambda: T0 + timedelta(minutes=3))
    with TestClient(app, base_url="http://gateway.test") as client:
        assert client.get(f"/alerts/{alert_id}/ack?t={'0' * 32}").status_code == 403
        assert client.get(f"/alerts/{alert_id + 1}/ack?t={token}").status_code == 403
        page = client.get(f"/alerts/{alert_id}/ack?t={token}")
        assert page.status_code == 200 and "watch-1" in page.text and 'id="ack"' in page.text
        # Opening the link (a mail scanner, a link preview) acknowledges nothing.
        check = AlertLedger.open(db)
        assert check.alert(alert_id).acked_at is None
        check.close()
        forged = client.post(f"/alerts/{alert_id}/ack", data={"t": "x" * 32, "by": "eve"})
        assert forged.status_code == 403
        done = client.post(f"/alerts/{alert_id}/ack", data={"t": token, "by": "Anna"})
        assert done.status_code == 200 and re.search(r"acknowledged by link:Anna", done.text)
    check = AlertLedger.open(db)
    assert check.alert(alert_id).acked_by == "link:Anna"
    assert "alert_acknowledged" in [r.kind for r in check.audit_records()]
    check.close()

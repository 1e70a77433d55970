"""Order now from the web app: the consumable page's button, against the real sandbox."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.config import Settings
from agent.consent import Mode
from agent.storage.ledger import Ledger, State
from agent.storage.store import Store
from agent.web import server
from agent.web.app import create_app
from agent.wire.device import Consumable, StateMessage
from firmware_sim.vendor import VendorSandbox
from tests.integration.vendor_helpers import TOKEN
from tests.vendor_fake import T0
from tests.web_helpers import PASSWORD, set_passwords

pytestmark = pytest.mark.integration


def test_the_order_now_button_proposes_once_with_the_current_price(
        tmp_path: Path, sandbox: VendorSandbox) -> None:
    db = tmp_path / "agent.db"
    with Store(db) as store:
        store.write_batch([StateMessage.model_validate({
            "device_id": "printer-1", "seq": 1, "ts": T0.isoformat(), "kind": "printer",
            "consumables": [Consumable(id="black", level=4, unit="percent",  # type: ignore[arg-type]
                                       sku="TN-2420").model_dump()]})],
            received_at=T0.timestamp())
    token = tmp_path / "vendor-token"
    token.write_text(TOKEN)
    settings = Settings(storage={"path": db}, vendor={"base_url": sandbox.url,  # type: ignore[arg-type]
                                                      "token_file": token},
                        web={"password_file": tmp_path / "web-password",  # type: ignore[arg-type]
                             "session_key_file": tmp_path / "web-key"})
    set_passwords(settings)
    ledger = Ledger.open(db)
    ledger.set_consent("printer-1/black", Mode.CONFIRM, None, T0)
    ledger.close()
    app = create_app(settings, server.paths(settings).password, b"k" * 32,
                     clock=lambda: T0 + timedelta(minutes=5))
    with TestClient(app, base_url="http://gateway.test") as client:
        page = client.get("/login")
        login = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert login is not None
        assert client.post("/login", data={"login_token": login[1], "password": PASSWORD},
                           follow_redirects=False).status_code == 303
        page = client.get("/c/printer-1/black").text
        assert 'action="/c/printer-1/black/order-now"' in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        first = client.post("/c/printer-1/black/order-now",
                            data={"csrf": csrf[1], "quantity": "2"})
        second = client.post("/c/printer-1/black/order-now",
                             data={"csrf": csrf[1], "quantity": "2"})
        missing = client.post("/c/printer-1/black/order-now", data={"quantity": "2"})
    assert first.status_code == 200 and "proposed 2 x" in first.text and "64.90" in first.text
    assert second.status_code == 200 and "already on its way" in second.text
    assert missing.status_code == 403  # no CSRF token: nothing changes
    ledger = Ledger.open(db)
    intents = ledger.intents()
    ledger.close()
    assert [(i.state, i.quantity) for i in intents] == [(State.PROPOSED, 2)]
    assert "requested by the household via web" in (intents[0].reason or "")
    assert sandbox.orders() == []  # a proposal: nothing reaches the vendor before approval

"""What the outbox's unit tests share: the toner they order and its ``auto`` mandate."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from agent.consent import Mandate, Mode
from agent.storage.ledger import Ledger
from tests.vendor_fake import T0

CID = "printer-1/black"
PRE_NOTICE = timedelta(hours=6)


def grant(ledger: Ledger, max_price: str = "60") -> int:
    """``auto`` for :data:`CID`: the toner, up to ``max_price`` each, two packs, 200 a month."""
    mandate = Mandate(skus=("TONER-TN2420",), vendor="shop", max_unit_price=Decimal(max_price),
                      max_quantity=2, monthly_budget=Decimal("200"),
                      expires_at=T0 + timedelta(days=30))
    return ledger.set_consent(CID, Mode.AUTO, mandate, T0)

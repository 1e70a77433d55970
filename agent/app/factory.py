"""The one place that builds the vendor client and the dispatcher from settings.

The service, the CLI and the web app all use these, so a setting added to
``[vendor]`` reaches every caller (the CLI's own copy once dropped ``vendor.name``,
``poll_interval_min`` and ``settle_s``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from agent.app.dispatcher import Dispatcher
from agent.config import Settings, read_secret
from agent.storage.ledger import Ledger
from agent.vendor.client import VendorClient

log = logging.getLogger(__name__)


def vendor_client(settings: Settings) -> VendorClient | None:
    """The vendor client, or None without a token (orders then stay proposals)."""
    vs = settings.vendor
    token = read_secret(vs.token_file, "vendor.token_file")
    if token is None:
        return None
    return VendorClient(vs.base_url, token, timeout=vs.timeout_s, deadline_s=vs.deadline_s)


def dispatcher(settings: Settings, ledger: Ledger, client: VendorClient) -> Dispatcher:
    """The outbox dispatcher: every caller gets the same vendor settings."""
    vs = settings.vendor
    return Dispatcher(ledger, client, vendor_name=vs.name, test_mode=vs.test_mode,
                      poll_interval=timedelta(minutes=vs.poll_interval_min),
                      settle=timedelta(seconds=vs.settle_s),
                      unknown_give_up=timedelta(hours=vs.unknown_give_up_h))

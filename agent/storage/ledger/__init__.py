"""Consent, purchase intents (the outbox), household notes and the audit chain.

``base`` holds the connection and the audit chain, ``rows`` the typed rows, ``notes``
feedback, snoozes and away periods, ``ledger`` consents and intents.
"""

from agent.storage.ledger.ledger import Ledger
from agent.storage.ledger.rows import (
    FEEDBACK_KINDS,
    LIVE,
    OPEN,
    PENDING,
    Consent,
    DecidedBy,
    Intent,
    ReminderRow,
    State,
    VendorAnswer,
)

__all__ = ["FEEDBACK_KINDS", "LIVE", "OPEN", "PENDING", "Consent", "DecidedBy", "Intent",
           "Ledger", "ReminderRow", "State", "VendorAnswer"]

"""The fields of the dispatcher's canonical ``order.*`` log lines, typed so a line cannot
lose an id (the support runbook greps them: docs/operations.md)."""

from __future__ import annotations

from typing import TypedDict


class EndedLine(TypedDict):
    """The fields every canonical ``order.*`` line of an ended order carries."""

    consumable: str
    sku: str
    order_id: str | None
    audit_id: int | None
    status: str | None
    intent: int


class PlacedLine(EndedLine):
    """... and of a placed (or rejected) one."""

    quantity: int
    attempt: int
    via: str

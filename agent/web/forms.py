"""Server-side validation of the consent and away forms: a message per field.

The values end up in the same :class:`agent.consent.Mandate` the CLI builds (its own
checks run too), so the web cannot grant anything the CLI would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from agent.consent import Mandate, Mode, parse_consumable
from agent.errors import ConsentError
from agent.sources.calendar.away import parse_day_or_time

MAX_FIELD = 200


@dataclass(slots=True)
class Form:
    """The submitted values (echoed back on error) and the errors keyed by field."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _money(form: Form, name: str) -> Decimal | None:
    text = form.values.get(name, "").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        form.errors[name] = "not an amount (use digits, e.g. 24.50)"
        return None
    if not value.is_finite() or value < 0:
        form.errors[name] = "must be zero or more"
        return None
    return value


def _count(form: Form, name: str) -> int | None:
    text = form.values.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1 or int(text) > 1000:
        form.errors[name] = "a whole number from 1 to 1000"
        return None
    return int(text)


def consent_form(values: dict[str, str], now: datetime) -> tuple[Form, str, Mode,
                                                                Mandate | None]:
    """Validate a consent form; the mandate only for ``auto`` (or when SKUs are given)."""
    form = Form({k: v[:MAX_FIELD] for k, v in values.items()})
    key = form.values.get("consumable", "")
    try:
        key = parse_consumable(key)
    except (ConsentError, ValueError) as err:
        form.errors["consumable"] = str(err) or "DEVICE/CONSUMABLE"
    try:
        mode = Mode(form.values.get("mode", ""))
    except ValueError:
        form.errors["mode"] = f"one of {', '.join(m.value for m in Mode)}"
        mode = Mode.MONITOR
    skus = tuple(s.strip() for s in form.values.get("skus", "").replace(",", " ").split()
                 if s.strip())
    price = _money(form, "max_price")
    qty = _count(form, "max_qty")
    budget = _money(form, "budget")
    expires = None
    if text := form.values.get("expires", "").strip():
        try:
            expires = parse_day_or_time(text, end=True)
        except ConsentError as err:
            form.errors["expires"] = str(err)
        else:
            if expires <= now:
                form.errors["expires"] = "must be in the future"
    if mode is Mode.AUTO and not skus:
        form.errors["skus"] = "auto needs at least one allowed SKU"
    mandate = None
    if skus and form.ok:
        try:
            mandate = Mandate(skus, form.values.get("vendor", "").strip() or None, price, qty,
                              budget, expires)
        except ConsentError as err:
            target = ("max_price" if "price" in str(err) else
                      "budget" if "budget" in str(err) else "skus")
            form.errors[target] = str(err)
    return form, key, mode, mandate


def summary(key: str, mode: Mode, m: Mandate | None) -> str:
    """One sentence: what the agent may now do without asking."""
    if mode is Mode.MONITOR:
        return f"The agent only watches {key}; it never orders or proposes."
    if mode is Mode.REMIND:
        return f"The agent reminds you when {key} runs low; it never orders."
    if mode is Mode.CONFIRM or m is None:
        return f"The agent proposes orders for {key}; nothing is bought until you approve."
    limits = [f"only {' or '.join(m.skus)}"]
    if m.max_unit_price is not None:
        limits.append(f"at most {m.max_unit_price} per pack")
    if m.max_quantity is not None:
        limits.append(f"at most {m.max_quantity} pack{'s' if m.max_quantity != 1 else ''} "
                      "per order")
    if m.monthly_budget is not None:
        limits.append(f"at most {m.monthly_budget} a month")
    # An expiry day is stored as the end of that day (the next midnight): show the day.
    last = m.expires_at - timedelta(seconds=1) if m.expires_at else None
    until = f" until {last:%Y-%m-%d}" if last else ""
    return (f"The agent may order {key} without asking{until}: {', '.join(limits)}; "
            "you can cancel each order during its notice period.")


MAX_URL = 2000


def calendar_form(values: dict[str, str]) -> tuple[Form, str, str]:
    """Name and URL of a new subscription; the URL (a secret) is never echoed back."""
    name = values.get("name", "").strip()[:MAX_FIELD]
    url = values.get("url", "").strip()
    form = Form({"name": name})
    if not name:
        form.errors["name"] = "required: letters, digits, '-' or '_'"
    if not url:
        form.errors["url"] = "required: the calendar's secret iCal address"
    elif len(url) > MAX_URL:
        form.errors["url"] = f"longer than {MAX_URL} characters"
    return form, name, url


def away_form(values: dict[str, str]) -> tuple[Form, datetime | None, datetime | None]:
    form = Form({k: v[:MAX_FIELD] for k, v in values.items()})
    start = end = None
    for name, is_end in (("start", False), ("end", True)):
        text = form.values.get(name, "").strip()
        if not text:
            form.errors[name] = "required (YYYY-MM-DD)"
            continue
        try:
            when = parse_day_or_time(text, end=is_end)
        except ConsentError as err:
            form.errors[name] = str(err)
            continue
        if is_end:
            end = when
        else:
            start = when
    if start and end and end <= start:
        form.errors["end"] = "must be on or after the first day"
    return form, start, end

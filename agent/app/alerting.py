"""The alert pass: stored urgent events -> alerts -> caregivers, until acknowledged.

Runs every ``alerts.interval_s`` on the scheduler (one pass at a time). Each pass folds
new events into alerts, asks the pure escalation rule who is due, sends, and records
every attempt before the next one, so a SIGKILL at any point costs at most one repeated
message, never a lost alert (at-least-once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from agent.config import AlertSettings, Settings, resolve_secret_path
from agent.escalation import AlertView, Rule, due_contacts, retry_delay
from agent.household.discovery import alert_discovery
from agent.keyfile import signing_key
from agent.logs import canonical
from agent.notify.apprise import AppriseNotifier, Delivery
from agent.storage.alerts import TEST_ALERT, AlertLedger, AlertRow
from agent.wire.household import ALERTS_TOPIC, EventKind, Outgoing, event, event_message

log = logging.getLogger(__name__)

TITLES = {
    "fall_alert": "Fall alert",
    "sensor_failed": "Sensor failed",
    "low_battery": "Battery low",
    TEST_ALERT: "Test alert",
}


def rules_of(settings: AlertSettings) -> dict[str, Rule]:
    return {
        r.event: Rule(
            event=r.event, contacts=tuple(r.contacts),
            renotify_after=timedelta(minutes=r.renotify_after_min),
            escalate_after=timedelta(minutes=r.escalate_after_min),
            fold_window=timedelta(minutes=r.fold_window_min),
        )
        for r in settings.rules
    }


def notifier_of(settings: AlertSettings, state_dir: Path | None = None) -> AppriseNotifier:
    files = {c.name: resolve_secret_path(c.url_file) for c in settings.contacts}
    return AppriseNotifier(files, settings.send_timeout_s, state_dir=state_dir)


ACK_KEY_FILE = "alert-ack-key"


def ack_key_path(settings: AlertSettings, state_dir: Path) -> Path:
    return settings.ack_key_file or state_dir / ACK_KEY_FILE


def ack_key(path: Path) -> bytes:
    """The key that signs acknowledgement links, created (0600) on first use."""
    return signing_key(path)


def ack_token(key: bytes, alert_id: int) -> str:
    """Who holds the link may acknowledge that one alert, nothing else."""
    return hmac.new(key, f"alert-ack:{alert_id}".encode(), hashlib.sha256).hexdigest()[:32]


def ack_token_ok(key: bytes, alert_id: int, token: str) -> bool:
    return hmac.compare_digest(ack_token(key, alert_id), token)


def message(alert: AlertRow, label: str, link: str | None = None) -> tuple[str, str]:
    """Title and body: device, type, time and the household label; no readings."""
    title = f"{TITLES.get(alert.type, alert.type)}: {label}"
    when = alert.raised_at.strftime("%Y-%m-%d %H:%M UTC")
    more = f" ({alert.events} events)" if alert.events > 1 else ""
    body = (f"{alert.device_id} reported {alert.type.replace('_', ' ')} at {when}{more}. "
            f"Acknowledge with: replenish alerts ack {alert.id} "
            f"(or MQTT command 'ack' with ref a{alert.id}).")
    if link:
        body += f" Or open: {link}"
    return title, body


class AlertPass:
    """One pass over the alert queue (see module docstring)."""

    def __init__(self, settings: AlertSettings, open_ledger: Callable[[], AlertLedger],
                 notifier: AppriseNotifier,
                 publish: Callable[[Outgoing], None] | None = None,
                 ack_key_path: Path | None = None) -> None:
        self.ack_key_path = ack_key_path
        self.settings = settings
        self.rules = rules_of(settings)
        self.open_ledger = open_ledger
        self.notifier = notifier
        self.publish = publish
        self._announced = False
        self._ack_key: bytes | None = None

    def link(self, alert_id: int) -> str | None:
        """The acknowledgement link, where the web app is reachable (``ack_url_base``)."""
        base = self.settings.ack_url_base
        if base is None or self.ack_key_path is None:
            return None
        if self._ack_key is None:
            self._ack_key = ack_key(self.ack_key_path)
        token = ack_token(self._ack_key, alert_id)
        return f"{base.rstrip('/')}/alerts/{alert_id}/ack?t={token}"

    def _test_due(self, view: AlertView, now: datetime) -> list[str]:
        """A test alert goes once to every contact, so each channel is checked."""
        due = []
        for contact in self.notifier.url_files:
            mine = [s for s in view.sends if s.contact == contact]
            if any(s.ok for s in mine):
                continue
            if not mine or now - max(s.at for s in mine) >= retry_delay(len(mine)):
                due.append(contact)
        return due

    def _test_complete(self, ledger: AlertLedger, alert_id: int) -> bool:
        reached = {s.contact for s in ledger.sends([alert_id])[alert_id] if s.ok}
        return reached >= set(self.notifier.url_files)

    def run_once(self, now: datetime) -> int:
        """Fold events, send what is due; returns the number of messages sent."""
        if self.publish is not None and not self._announced:
            self.publish(alert_discovery([*self.rules, TEST_ALERT]))
            self._announced = True
        ledger = self.open_ledger()
        try:
            for alert_id in ledger.absorb_events(
                    {e: r.fold_window for e, r in self.rules.items()}, now):
                self._announce(ledger.alert(alert_id))
            alerts = ledger.open_alerts()
            sends = ledger.sends(a.id for a in alerts)
            sent = 0
            for alert in alerts:
                view = AlertView(raised_at=alert.raised_at, acknowledged=False,
                                 sends=sends[alert.id])
                if alert.type == TEST_ALERT:
                    due = self._test_due(view, now)
                elif alert.type in self.rules:
                    due = due_contacts(self.rules[alert.type], view, now)
                else:
                    due = []  # its rule was removed: kept, shown, not sent
                for contact in due:
                    sent += self._send(ledger, alert, contact, now)
                if alert.type == TEST_ALERT and self._test_complete(ledger, alert.id):
                    ledger.acknowledge(alert.id, "agent:test-complete", now)
            return sent
        finally:
            ledger.close()

    def _send(self, ledger: AlertLedger, alert: AlertRow, contact: str, now: datetime) -> int:
        title, body = message(alert, self.settings.household_label, self.link(alert.id))
        result: Delivery = self.notifier.send(contact, title, body)
        ledger.record_send(alert.id, contact, result.ok, result.error, now)
        canonical(log, "alert.sent" if result.ok else "alert.send_failed",
                  level=logging.INFO if result.ok else logging.WARNING, alert=alert.id,
                  type=alert.type, device=alert.device_id, contact=contact,
                  outcome="ok" if result.ok else result.error)
        return 1 if result.ok else 0

    def _announce(self, alert: AlertRow) -> None:
        if self.publish is None:
            return
        title, body = message(alert, self.settings.household_label)
        self.publish(event_message(event(EventKind.ALERT, alert.raised_at, body,
                                         device_id=alert.device_id, ref=f"a{alert.id}")))
        payload = {"event_type": alert.type, "alert": alert.id, "device": alert.device_id,
                   "at": alert.raised_at.isoformat()}
        self.publish(Outgoing(ALERTS_TOPIC, json.dumps(payload).encode(), False))


def alert_pass_for(settings: Settings, publish: Callable[[Outgoing], None] | None,
                   ) -> AlertPass | None:
    """The service's alert pass, or None when no rule is configured; ``publish`` puts
    alerts on the household topics too (None without the household link)."""
    alerts = settings.alerts
    if not alerts.rules:
        return None
    path = settings.storage.path
    return AlertPass(alerts, lambda: AlertLedger.open(path),
                     notifier_of(alerts, state_dir=path.parent), publish,
                     ack_key_path=ack_key_path(alerts, path.parent))

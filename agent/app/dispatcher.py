"""The outbox dispatcher: sends purchase intents to the vendor exactly once.

Each pass (:meth:`Dispatcher.run_once`) re-reads the ledger and, per due intent:

* ``queued``: fetch the catalog, re-authorize against the consent as it stands *now*
  (a changed price, product or pack size turns it into a proposal; a revoked or expired
  consent cancels it), commit the attempt (``sending``), then call ``place_order`` with
  the intent's one idempotency key;
* ``sending``: the outcome of an earlier attempt is unknown (timeout, 5xx, crash): look
  the order up by key first, and resend the same body with the same key only if the
  vendor has none and consent still allows it; otherwise keep looking (an empty lookup
  is not "never committed") until ``unknown_give_up``, then ``lost`` (ask the household);
  a final 4xx to a resend ends the intent ``failed``;
* ``placed``: follow the order's status until it is delivered, cancelled or rejected; a
  404 for the order makes it ``lost``.

Retries wait :func:`agent.vendor.client.backoff_delay` (jittered, 429 ``Retry-After`` as a
floor); the client enforces each call's overall deadline. Nothing here sleeps: the next
attempt time is written to the ledger, so a restart continues where the last pass
stopped. Each outcome is one canonical line (``order.placed``, ``order.retry``,
``order.rejected``, ``order.cancelled``, ``order.reproposed``, ``order.delivered``) with
the audit record that allowed or ended the order; the ledger logs ``order.queued`` and
the cancellations it makes itself (household, consent changes).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from agent.app.order_lines import EndedLine, PlacedLine
from agent.consent import (
    Authorization,
    Mode,
    Proposal,
    Verdict,
    authorize,
    may_resend,
    may_send_approved,
)
from agent.errors import ConsentError, VendorError, VendorFinal, VendorRetryable
from agent.logs import canonical
from agent.storage.ledger import PENDING, Consent, DecidedBy, Intent, Ledger, State, VendorAnswer
from agent.vendor.client import CatalogItem, Order, OrderRequest, OrderStatus, backoff_delay

log = logging.getLogger(__name__)

DEFAULT_VENDOR = "sandbox"
DEFAULT_POLL_INTERVAL = timedelta(hours=1)
# A resend is held back at least this long after the last attempt: by then the earlier
# request has surely ended at the vendor, so a lookup by key sees its result.
DEFAULT_SETTLE = timedelta(seconds=30)
# An unknown outcome that may not be resent is looked up (with a growing gap) this long
# after the last attempt; then the household is asked and the intent becomes ``lost``.
# It is never turned into "not ordered" by a timer, and never re-ordered under a new key.
DEFAULT_UNKNOWN_GIVE_UP = timedelta(hours=48)

Backoff = Callable[[int, float | None], float]


class VendorApi(Protocol):
    """The part of :class:`agent.vendor.client.VendorClient` the dispatcher uses."""

    def catalog(self, sku: str) -> CatalogItem: ...
    def place_order(
        self, request: OrderRequest, idempotency_key: str, *, attempt: int | None = None
    ) -> Order: ...
    def get_order(self, order_id: str) -> Order: ...
    def find_by_key(self, idempotency_key: str) -> Order | None: ...
    def cancel(self, order_id: str) -> Order: ...


@dataclass(slots=True)
class PassReport:
    """What one dispatcher pass did (for logs, tests and the demo)."""

    sent: int = 0
    placed: int = 0
    rejected: int = 0
    reproposed: int = 0
    cancelled: int = 0
    retries: int = 0
    followed: int = 0
    delivered: int = 0
    failed: int = 0


class Dispatcher:
    """Sends due intents from the ledger through a vendor client."""

    def __init__(
        self,
        ledger: Ledger,
        vendor: VendorApi,
        *,
        vendor_name: str = DEFAULT_VENDOR,
        test_mode: bool = False,
        poll_interval: timedelta = DEFAULT_POLL_INTERVAL,
        settle: timedelta = DEFAULT_SETTLE,
        unknown_give_up: timedelta = DEFAULT_UNKNOWN_GIVE_UP,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.vendor = vendor
        self.vendor_name = vendor_name
        self.test_mode = test_mode
        self.poll_interval = poll_interval
        self.settle = settle
        self.unknown_give_up = unknown_give_up
        self._rng = rng or random.Random()
        self._backoff = backoff or (lambda attempt, after: backoff_delay(attempt, self._rng,
                                                                         after))

    # ---- one pass ---------------------------------------------------------------------

    def run_once(self, now: datetime) -> PassReport:
        """Act on every due intent once; returns what happened."""
        report = PassReport()
        expired = self.ledger.expire_mandates(now)
        if expired:
            log.info("outbox.expired consumables=%s", ",".join(expired))
        for it in self.ledger.due(now):
            if it.vendor != self.vendor_name:
                continue  # another vendor's dispatcher (one per vendor client) sends it
            try:
                if it.state is State.QUEUED:
                    self._send_first(it, now, report)
                elif it.state is State.SENDING:
                    self._reconcile(it, now, report)
                else:
                    self._follow(it, now, report)
            except VendorRetryable as err:
                report.retries += 1
                wait = self._backoff(max(0, it.attempts - 1), err.retry_after)
                self.ledger.retry_later(it.id, now + timedelta(seconds=wait),
                                        f"retrying: {err}", now)
                self._log_retry(self.ledger.intent(it.id), err, wait)
            except VendorFinal as err:
                self._final(it, err, now, report)
        return report

    @staticmethod
    def _log_retry(it: Intent, err: VendorRetryable, wait: float) -> None:
        if it.state is State.PLACED:
            # Following a placed order is not an order retry: the order stands.
            log.warning("outbox.follow intent=%d retry in %.0fs: %s", it.id, wait, err)
            return
        # sending: an order call may have reached the vendor; queued: nothing was sent.
        outcome = "unknown" if it.state is State.SENDING else "not_sent"
        canonical(log, "order.retry", level=logging.WARNING, consumable=it.consumable,
                  sku=it.sku, reason=str(err), audit_id=it.audit_id, status=err.status,
                  outcome=outcome, attempt=it.attempts, intent=it.id, retry_in=round(wait))

    def _final(self, it: Intent, err: VendorFinal, now: datetime, report: PassReport) -> None:
        if it.state is State.PLACED and err.status == 404:
            self._lost(it, DecidedBy.VENDOR, f"the vendor no longer knows order {it.order_id}",
                       now)
            return
        if it.state in (State.PLACED, State.SENDING):
            # An order exists or may exist: a refused lookup (a revoked token, say) must
            # not end our record of it, so keep looking at the polling pace.
            log.error("outbox.lookup intent=%d refused: %s", it.id, err)
            self.ledger.retry_later(it.id, now + self.poll_interval, str(err), now)
            return
        self._refused(it, err, now, report)

    def _refused(self, it: Intent, err: VendorFinal, now: datetime, report: PassReport) -> None:
        """The vendor answered the order (or its catalog) with a final 4xx: the intent
        ends, and the household hears of it (a ``problem`` event for ``failed``)."""
        report.failed += 1
        done = self.ledger.finish(it.id, State.FAILED, str(err), now, "order_failed",
                                  DecidedBy.VENDOR)
        canonical(log, "order.rejected", level=logging.ERROR, consumable=done.consumable,
                  sku=done.sku, reason=str(err), quantity=done.quantity,
                  audit_id=done.audit_id, status=err.status, outcome="failed",
                  attempt=done.attempts, intent=done.id)

    def _lost(self, it: Intent, by: DecidedBy, why: str, now: datetime) -> None:
        """Nobody can tell whether this order stands: ask the household (``problem``
        event, ``doctor`` warning); it holds the consumable until the household decides."""
        done = self.ledger.finish(
            it.id, State.LOST, f"{why}: ask the vendor about key {it.idem_key}, then "
            f"replenish orders cancel {it.id} to order again", now, "order_lost", by)
        canonical(log, "order.lost", level=logging.WARNING, consumable=done.consumable,
                  sku=done.sku, reason=why, order_id=done.order_id, audit_id=done.audit_id,
                  attempt=done.attempts, intent=done.id)

    def _cancelled(self, it: Intent, why: str, now: datetime, report: PassReport) -> None:
        report.cancelled += 1
        done = self.ledger.finish(it.id, State.CANCELLED, why, now, "order_cancelled",
                                  DecidedBy.CONSENT)
        canonical(log, "order.cancelled", consumable=done.consumable, sku=done.sku,
                  reason=why, order_id=done.order_id, audit_id=done.audit_id,
                  attempt=done.attempts, intent=done.id)

    # ---- queued: first send -----------------------------------------------------------

    def _send_first(self, it: Intent, now: datetime, report: PassReport) -> None:
        offer = self.vendor.catalog(it.sku)
        it = self.ledger.intent(it.id)  # consent may have changed during the catalog call
        if it.state is not State.QUEUED:
            return
        consent = self.ledger.consent(it.consumable)
        auth, allowed_by = self._authorize(it, consent, offer, now)
        if auth.verdict in (Verdict.NOTHING, Verdict.REMIND):
            self._cancelled(it, auth.why, now, report)
            return
        if auth.verdict is Verdict.PROPOSE:
            report.reproposed += 1
            shown = self._current_offer(offer)
            shown_it = self.ledger.repropose(it.id, Proposal(
                it.consumable, it.vendor, shown.sku, it.quantity, shown.pack_size, shown.price,
                shown.name, shown.currency), auth.reasons, now)
            canonical(log, "order.reproposed", consumable=it.consumable, sku=shown_it.sku,
                      reason=auth.why, quantity=shown_it.quantity,
                      audit_id=shown_it.audit_id, outcome="proposed", intent=it.id)
            return
        if offer.price != it.unit_price:
            # Within the mandate; the ceiling sent is the price just checked.
            it = self.ledger.reprice(it.id, offer.price, now)
        self._place(it, allowed_by, consent.audit_id if consent else None, now, report)

    def _current_offer(self, offer: CatalogItem) -> CatalogItem:
        """What the household should be shown: the substitute when the SKU is out."""
        if offer.availability.value != "in_stock" and offer.substitutes:
            try:
                return self.vendor.catalog(offer.substitutes[0])
            except VendorError as err:
                log.warning("outbox.substitute_lookup_failed reason=%s", type(err).__name__)
        return offer

    def _authorize(self, it: Intent, consent: Consent | None, offer: CatalogItem,
                   now: datetime) -> tuple[Authorization, int]:
        mode = consent.mode if consent else Mode.MONITOR
        if it.mode is Mode.AUTO:
            spent = self.ledger.spent_this_month(it.consumable, now, exclude=it.id)
            mandate = consent.mandate if consent else None
            return (authorize(mandate, mode, it.proposal, offer, spent, now),
                    consent.audit_id if consent else 0)
        return may_send_approved(it.proposal, offer, mode), it.audit_id or 0

    def _place(self, it: Intent, allowed_by: int, consent_seen: int | None, now: datetime,
               report: PassReport) -> None:
        sent = self.ledger.mark_sending(it.id, allowed_by, now, now + self.settle,
                                        consent_seen)
        if sent is None:
            log.info("outbox.held intent=%d: consent or intent changed; next pass decides",
                     it.id)
            return
        it = sent
        report.sent += 1
        try:
            order = self.vendor.place_order(self._request(it), self._key(it),
                                            attempt=it.attempts)
        except VendorFinal as err:
            if err.status in (401, 403):
                raise  # our credentials, not an answer about this order: keep looking
            # A final answer for this key (a replayed 404 for a withdrawn SKU, say): the
            # vendor stored it, so every resend would get it again.
            self._refused(it, err, now, report)
            return
        self._placed(it, order, now, report, "send")

    def _request(self, it: Intent) -> OrderRequest:
        return OrderRequest(sku=it.sku, quantity=it.quantity, max_unit_price=it.unit_price,
                            test=self.test_mode, client_ref=f"intent-{it.id}",
                            allow_substitute=False)

    def _key(self, it: Intent) -> str:
        """The idempotency key of every attempt: the one minted with the intent."""
        return it.idem_key

    def _placed(self, it: Intent, order: Order, now: datetime, report: PassReport,
                via: str) -> None:
        """Record the vendor's order; ``via`` says how we learnt of it (send or lookup)."""
        answer = VendorAnswer(
            id=order.id, status=order.status.value, total=order.total,
            cancel_until=order.cancel_until, expected_delivery=order.expected_delivery,
            reject_reason=order.reject_reason)
        done = self.ledger.mark_placed(it.id, answer, now, now + self.poll_interval)
        common: PlacedLine = {
            "consumable": done.consumable, "sku": done.sku, "quantity": done.quantity,
            "order_id": order.id, "audit_id": done.audit_id, "status": order.status.value,
            "attempt": done.attempts, "intent": done.id, "via": via}
        if done.state is State.REJECTED:
            report.rejected += 1
            canonical(log, "order.rejected", level=logging.ERROR, outcome="rejected",
                      reason=order.reject_reason, **common)
        else:
            report.placed += 1
            canonical(log, "order.placed", outcome="placed", **common)

    # ---- sending: outcome unknown ----------------------------------------------------

    def _reconcile(self, it: Intent, now: datetime, report: PassReport) -> None:
        found = self._lookup(it)
        if found is not None:
            self._placed(it, found, now, report, "lookup")
            return
        consent = self.ledger.consent(it.consumable)
        mode = consent.mode if consent else Mode.MONITOR
        spent = self.ledger.spent_this_month(it.consumable, now, exclude=it.id)
        if consent is None or consent.audit_id > (it.audit_id or 0):
            # Consent changed (revoked, re-granted, expired) after this order was sent:
            # what allowed it is gone, so it is never resent, only looked up.
            auth = Authorization(Verdict.NOTHING, ("consent changed after sending",))
        else:
            auth = may_resend(consent.mandate, mode, it.mode, it.proposal, spent, now)
        if auth.verdict is not Verdict.PLACE:
            self._keep_looking(it, auth.why, now)
            return
        allowed_by = consent.audit_id if consent and it.mode is Mode.AUTO else it.audit_id
        self._place(it, allowed_by or 0, consent.audit_id if consent else None, now, report)

    def _keep_looking(self, it: Intent, why: str, now: datetime) -> None:
        """Not resent, and not "never ordered" either: the spec does not promise that an
        empty lookup means the POST never committed (a held POST may commit later). Look
        the key up again, the gap doubling from ``settle`` up to ``poll_interval``, until
        the vendor answers or ``unknown_give_up`` after the last attempt."""
        since = it.last_sent_at or now
        if now - since >= self.unknown_give_up:
            hours = self.unknown_give_up.total_seconds() / 3600
            self._lost(it, DecidedBy.AGENT, f"no answer for this order's key in {hours:g} h "
                       f"and not resent ({why})", now)
            return
        gap = min(max(self.settle, now - since), self.poll_interval)
        self.ledger.retry_later(it.id, now + gap, f"outcome unknown, not resent: {why}", now)
        log.info("outbox.unknown intent=%d not resent (%s); lookup again in %.0fs",
                 it.id, why, gap.total_seconds())

    def _lookup(self, it: Intent) -> Order | None:
        """The vendor's order for this intent's key (it outlives the key's replay window)."""
        return self.vendor.find_by_key(it.idem_key)

    # ---- placed: follow until delivery -------------------------------------------------

    def _follow(self, it: Intent, now: datetime, report: PassReport) -> None:
        if it.order_id is None:
            return
        order = self.vendor.get_order(it.order_id)
        report.followed += 1
        delivered = next((h.at for h in order.history if h.status is OrderStatus.DELIVERED),
                         None)
        done = self.ledger.update_status(it.id, order.status.value, order.expected_delivery,
                                         delivered, now + self.poll_interval, now)
        if done.state is State.DELIVERED:
            report.delivered += 1
        self._log_ended(done, "by vendor")

    @staticmethod
    def _log_ended(it: Intent, by: str) -> None:
        """The canonical line for a placed order the vendor reports ended."""
        fields: EndedLine = {
            "consumable": it.consumable, "sku": it.sku, "order_id": it.order_id,
            "audit_id": it.audit_id, "status": it.order_status, "intent": it.id}
        if it.state is State.DELIVERED:
            canonical(log, "order.delivered", quantity=it.quantity, **fields)
        elif it.state is State.CANCELLED:
            canonical(log, "order.cancelled", reason=f"cancelled {by}", **fields)
        elif it.state is State.REJECTED:
            canonical(log, "order.rejected", level=logging.ERROR, reason=f"rejected {by}",
                      outcome="rejected", **fields)

    # ---- household actions -------------------------------------------------------------

    def cancel(self, intent_id: int, now: datetime) -> Intent:
        """Cancel an order: before sending in the ledger, after sending at the vendor."""
        it = self.ledger.intent(intent_id)
        if it.state in PENDING:
            return self.ledger.cancel_pending(intent_id, now)
        if it.state is State.SENDING:
            raise ConsentError(f"order {intent_id} is being sent; try again in a minute")
        if it.state is State.LOST:
            done = self.ledger.cancel_lost(intent_id, now)
            self._log_ended(done, "by the household (lost order)")
            return done
        if it.state is not State.PLACED or it.order_id is None:
            raise ConsentError(f"order {intent_id} is {it.state.value}; nothing to cancel")
        try:
            order = self.vendor.cancel(it.order_id)
        except VendorFinal as err:
            raise ConsentError(f"vendor refused to cancel order {intent_id}: {err}") from err
        self.ledger.record("order_cancel_requested", it.consumable,
                           {"intent": it.id, "order": it.order_id, "by": "household"}, now)
        done = self.ledger.update_status(it.id, order.status.value, None, None,
                                         now + self.poll_interval, now, DecidedBy.HOUSEHOLD)
        self._log_ended(done, "at the household's request")
        return done

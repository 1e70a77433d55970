"""The repeat loop of the decision pass: learn from the household's own history, store
it (the ``learned`` table), and plan with it.

Learned only from what the gateway sees: a consumable's readings (yield and LOW
threshold, :func:`agent.forecast.learn.learn`) and our own orders in the ledger (lead
time per vendor SKU, realised service per consumable). Priors are the declared yield, the
declared LOW threshold, the vendor's lead time and the configured service level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from agent.forecast import Away, ConsumableSpec, Delivery, Observation
from agent.forecast.learn import Learned, learn
from agent.forecast.service import realised_service, service_target
from agent.policy import LeadTime
from agent.storage.learned import LearnedRow, load_learned, save_learned
from agent.storage.ledger import Ledger, State


def _service_history(ledger: Ledger, key: str) -> tuple[list[Delivery], list[datetime]]:
    """Our delivered orders of one consumable and when each was sent."""
    dels: list[Delivery] = []
    sent: list[datetime] = []
    for it in ledger.intents([State.DELIVERED], key):
        if it.delivered_at is not None and it.first_sent_at is not None:
            dels.append(Delivery(it.delivered_at, float(it.quantity)))
            sent.append(it.first_sent_at)
    return dels, sent


def _keep_more_cycles(new: Learned, stored: list[LearnedRow]) -> Learned:
    """A value resting on more cycles than this pass saw (older cycles fell out of the
    readings it reads) is kept until a pass sees as many."""
    old = {r.name: r for r in stored}
    y, lo = old.get("yield_per_pack"), old.get("low_level")
    out = new
    if y is not None and y.value is not None and y.cycles > new.yield_cycles:
        out = dataclasses.replace(out, yield_per_pack=y.value, yield_cycles=y.cycles)
    if lo is not None and lo.value is not None and lo.cycles > new.low_cycles:
        out = dataclasses.replace(out, low_level=lo.value, low_cycles=lo.cycles)
    return out


def apply_learning(ledger: Ledger, key: str, spec: ConsumableSpec, obs: list[Observation],
                   sku: str | None, lead: LeadTime, target: float, now: datetime,
                   away: Sequence[Away] = ()) -> tuple[ConsumableSpec, float, str]:
    """The spec and service level to plan with, and a note of what was learned (empty:
    nothing yet); the learned values are written to the ``learned`` table."""
    subject = f"consumable:{key}"
    got = _keep_more_cycles(learn(obs, spec), load_learned(ledger.conn, subject))
    good, total = realised_service(obs, spec, *_service_history(ledger, key), away)
    service = service_target(target, good, total)
    rows = [LearnedRow(subject, "yield_per_pack", got.yield_per_pack, spec.yield_per_pack,
                       got.yield_cycles),
            LearnedRow(subject, "low_level", got.low_level, spec.low_level, got.low_cycles),
            LearnedRow(subject, "burst_ratio", got.burst_ratio, None, 0),
            LearnedRow(subject, "realised_service", good / total if total else None, target,
                       total),
            LearnedRow(subject, "planned_service", service, target, total)]
    if sku is not None and lead.observed:
        s = f"sku:{sku}"
        rows += [LearnedRow(s, f"lead_time_p{q}", lead.quantile(q / 100), None,
                            len(lead.observed)) for q in (50, 90, 98)]
    save_learned(ledger.conn, rows, now)
    notes = []
    if got.yield_cycles:
        notes.append(f"yield {got.yield_per_pack:.0f} per pack from {got.yield_cycles} cycles")
    if got.burst_ratio:
        notes.append(f"busy weeks: per-day variance {got.burst_ratio:.2g}x the rate squared")
    if got.low_cycles and got.low_level is not None:
        notes.append(f"LOW at {got.low_level:.3g} from {got.low_cycles} cycles")
    if lead.observed:
        notes.append(f"lead p50 {lead.quantile(0.5):.1f} d p90 {lead.quantile(0.9):.1f} d "
                     f"from {len(lead.observed)} deliveries")
    if total:
        notes.append(f"service {good}/{total}, planning at {service:.3f}")
    return got.apply(spec), service, ", ".join(notes)

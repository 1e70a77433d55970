"""The page handlers. Reads go through :mod:`agent.web.data` (read-only connection);
every change goes through :mod:`agent.app.actions` or the ledger method the CLI calls,
on a short-lived read-write ledger connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agent.app import actions, calendars, factory
from agent.app.dispatcher import Dispatcher
from agent.app.order_now import Outcome, order_now_for
from agent.consent import Mode
from agent.domain import ConsumableKey
from agent.errors import ConfigError, ConsentError
from agent.ops import doctor
from agent.sources.calendar.subscription import FetchResult
from agent.storage.ledger import FEEDBACK_KINDS, OPEN, Ledger, State
from agent.storage.store import consumable_key
from agent.vendor.client import VendorClient
from agent.web import data, forms, plot

if TYPE_CHECKING:
    from agent.web.app import Handler, WebContext
    from agent.web.auth import Session

AUDIT_PAGE = 200


@contextmanager
def writer(ctx: WebContext) -> Iterator[Ledger]:
    """A read-write ledger for one change."""
    ledger = Ledger.open(ctx.db)
    try:
        yield ledger
    finally:
        ledger.close()


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def home(request: Request, ctx: WebContext, session: Session) -> Response:
    now = ctx.clock()
    with data.reader(ctx.db) as (store, ledger):
        rows = data.home_rows(store, ledger, now, data.forecasts(store))
        waiting = len(ledger.intents([State.PROPOSED]))
    return ctx.render(request, "home.html", session=session, rows=rows, waiting=waiting,
                      now=now)


def _orders_page(request: Request, ctx: WebContext, session: Session, status: int = 200,
                 **extra: Any) -> Response:
    now = ctx.clock()
    with data.reader(ctx.db) as (_, ledger):
        props = data.proposals(ledger, now, ctx.ttl)
        active = [i for i in ledger.intents(OPEN) if i.state is not State.PROPOSED]
        done = [i for i in ledger.intents([State.DELIVERED, State.CANCELLED, State.REJECTED,
                                           State.FAILED])][-20:][::-1]
    return ctx.render(request, "orders.html", status, session=session, proposals=props,
                      active=active, done=done, feedback=FEEDBACK_KINDS, **extra)


async def orders(request: Request, ctx: WebContext, session: Session) -> Response:
    return _orders_page(request, ctx, session)


def _intent_id(request: Request) -> int:
    return int(request.path_params["intent_id"])


def _vendor(ctx: WebContext, why: str) -> VendorClient:
    client = factory.vendor_client(ctx.settings)
    if client is None:
        raise ConfigError(ctx.settings.source, "vendor.token_file", why)
    return client


def _dispatcher(ctx: WebContext, ledger: Ledger) -> Dispatcher:
    return factory.dispatcher(ctx.settings, ledger,
                              _vendor(ctx, "needed to cancel at the vendor"))


async def order_action(request: Request, ctx: WebContext, session: Session) -> Response:
    values = await _form(request)
    verb = request.path_params["verb"]
    now = ctx.clock()
    intent_id = _intent_id(request)
    with writer(ctx) as ledger:
        if verb == "approve":
            out = actions.approve(ledger, intent_id, values.get("ref", ""), now, ctx.ttl)
        elif verb == "cancel":
            out = actions.cancel(ledger, intent_id, now, lambda: _dispatcher(ctx, ledger))
        elif verb == "snooze":
            days = values.get("days", "1")
            hours = 24 * int(days) if days in ("1", "3", "7") else 24
            out = actions.snooze(ledger, intent_id, now, now + timedelta(hours=hours))
        elif verb == "report" and values.get("kind") in FEEDBACK_KINDS:
            try:
                rid = ledger.report(intent_id, values["kind"], now)
                out = actions.Outcome(True, f"order {intent_id}: {values['kind']} recorded "
                                            f"(audit {rid})")
            except ConsentError as err:
                out = actions.Outcome(False, str(err))
        else:
            out = actions.Outcome(False, f"unknown action {verb!r}")
    return _orders_page(request, ctx, session, 200 if out.ok else 409, outcome=out)


def _consent_page(request: Request, ctx: WebContext, session: Session, status: int = 200,
                  **extra: Any) -> Response:
    with data.reader(ctx.db) as (store, ledger):
        consents = {c.consumable: c for c in ledger.consents()}
        keys = sorted({*(consumable_key(c) for c in store.consumables(counts=False)),
                       *consents})
    rows = [(k, consents.get(k)) for k in keys]
    summaries = {k: forms.summary(k, c.mode if c else Mode.MONITOR, c.mandate if c else None)
                 for k, c in rows}
    return ctx.render(request, "consent.html", status, session=session, rows=rows,
                      modes=list(Mode), summaries=summaries, one_second=timedelta(seconds=1),
                      selected=request.query_params.get(
                          "c", ""), **extra)


async def consent(request: Request, ctx: WebContext, session: Session) -> Response:
    return _consent_page(request, ctx, session)


async def consent_set(request: Request, ctx: WebContext, session: Session) -> Response:
    now = ctx.clock()
    form, key, mode, mandate = forms.consent_form(await _form(request), now)
    if not form.ok:
        return _consent_page(request, ctx, session, 400, form=form)
    try:
        with writer(ctx) as ledger:
            rid = ledger.set_consent(key, mode, mandate, now)
    except ConsentError as err:
        form.errors["mode"] = str(err)
        return _consent_page(request, ctx, session, 400, form=form)
    return _consent_page(request, ctx, session, outcome=actions.Outcome(
        True, f"{forms.summary(key, mode, mandate)} (audit {rid})"))


def _away_page(request: Request, ctx: WebContext, session: Session, status: int = 200,
               **extra: Any) -> Response:
    with data.reader(ctx.db) as (_, ledger):
        periods = ledger.away_periods()
    return ctx.render(request, "away.html", status, session=session, periods=periods,
                      calendars=calendars.subscriptions(ctx.settings), **extra)


def _fetched(results: list[FetchResult]) -> actions.Outcome:
    parts = [f"calendar {r.name}: fetch failed ({r.reason}); last good copy kept"
             if r.status == "failed" else
             f"calendar {r.name}: {r.status}, {r.added} absences added, {r.removed} removed"
             for r in results]
    return actions.Outcome(all(r.status != "failed" for r in results),
                           "; ".join(parts) or "no calendar subscriptions")


def _refresh(ctx: WebContext, names: list[str] | None) -> list[FetchResult]:
    with writer(ctx) as ledger:
        return calendars.refresh(ctx.settings, ledger, ctx.clock(), names)


async def calendar_add(request: Request, ctx: WebContext, session: Session) -> Response:
    """``replenish away subscribe``: store the URL (0600), then fetch it at once."""
    form, name, url = forms.calendar_form(await _form(request))
    if form.ok:
        try:
            calendars.subscribe(ctx.settings, name, url)
        except ConsentError as err:
            form.errors["name" if "name" in str(err) else "url"] = str(err)
    if not form.ok:
        return _away_page(request, ctx, session, 400, calendar_form=form)
    # The fetch waits on the network (up to calendar.deadline_s): off the event loop.
    results = await run_in_threadpool(_refresh, ctx, [name])
    return _away_page(request, ctx, session, outcome=_fetched(results))


async def calendar_refresh(request: Request, ctx: WebContext, session: Session) -> Response:
    out = _fetched(await run_in_threadpool(_refresh, ctx, None))
    return _away_page(request, ctx, session, 200 if out.ok else 502, outcome=out)


async def calendar_remove(request: Request, ctx: WebContext, session: Session) -> Response:
    name = request.path_params["name"]
    try:
        with writer(ctx) as ledger:
            calendars.unsubscribe(ctx.settings, ledger, name, ctx.clock())
    except ConsentError as err:
        return _away_page(request, ctx, session, 404, outcome=actions.Outcome(False, str(err)))
    return _away_page(request, ctx, session, outcome=actions.Outcome(
        True, f"calendar {name} unsubscribed; its coming absences removed"))


async def away(request: Request, ctx: WebContext, session: Session) -> Response:
    return _away_page(request, ctx, session)


async def away_add(request: Request, ctx: WebContext, session: Session) -> Response:
    form, start, end = forms.away_form(await _form(request))
    if not form.ok or start is None or end is None:
        return _away_page(request, ctx, session, 400, form=form)
    label = form.values.get("label", "").strip()[:60] or "away"
    with writer(ctx) as ledger:
        away_id = ledger.add_away(start, end, label, "web", ctx.clock())
    return _away_page(request, ctx, session, outcome=actions.Outcome(
        True, f"away {away_id}: {start:%Y-%m-%d} to {end - timedelta(seconds=1):%Y-%m-%d}"))


async def away_remove(request: Request, ctx: WebContext, session: Session) -> Response:
    away_id = int(request.path_params["away_id"])
    with writer(ctx) as ledger:
        ok = ledger.remove_away(away_id, ctx.clock())
    return _away_page(request, ctx, session, 200 if ok else 404, outcome=actions.Outcome(
        ok, f"away {away_id} removed" if ok else f"no away period {away_id}"))


async def audit(request: Request, ctx: WebContext, session: Session) -> Response:
    kind = request.query_params.get("kind", "")
    who = request.query_params.get("consumable", "")
    with data.reader(ctx.db) as (_, ledger):
        records = ledger.audit_records()
        verify = ledger.verify_audit() if request.url.path.endswith("/verify") else None
    kinds = sorted({r.kind for r in records})
    shown = [r for r in records if kind in ("", r.kind) and who in ("", r.consumable or "")]
    return ctx.render(request, "audit.html", session=session, records=shown[::-1][:AUDIT_PAGE],
                      total=len(shown), kinds=kinds, kind=kind, consumable=who, verify=verify)


async def consumable(request: Request, ctx: WebContext, session: Session) -> Response:
    key = str(ConsumableKey(request.path_params['device'], request.path_params['item']))
    now = ctx.clock()
    with data.reader(ctx.db) as (store, ledger):
        row = data.find_consumable(store, key, now)
        if row is None:
            return ctx.render(request, "error.html", 404, session=session,
                              message=f"no consumable {key}")
        fc = data.forecasts(store, key).get(key)
        history = data.level_history(store, row.cid, now)
        open_orders = ledger.intents(OPEN, key)
        decision = data.last_decision(ledger, key)
        mode = ledger.mode(key)
        learned = data.learned(store, key, row.sku, row.unit)
    arrivals = {i.id: data.expected_arrival(i, now) for i in open_orders}
    arrival = next((a for a in arrivals.values() if a is not None), None)
    svg = plot.level_svg(history, fc, now, row.unit, arrival, f"{key} level")
    return ctx.render(request, "consumable.html", session=session, key=key, row=row, fc=fc,
                      svg=svg, orders=open_orders, decision=decision, mode=mode.value,
                      learned=learned, arrivals=arrivals)


async def order_now(request: Request, ctx: WebContext, session: Session) -> Response:
    """The household's one tap: the same path as the CLI, MQTT and Home Assistant."""
    values = await _form(request)
    key = str(ConsumableKey(request.path_params['device'], request.path_params['item']))
    qty = values.get("quantity", "1")
    quantity = int(qty) if qty.isdigit() and 1 <= int(qty) <= 99 else 1
    now = ctx.clock()
    try:
        client = _vendor(ctx, "needed to look up the product's price")
    except ConfigError as err:
        out = actions.Outcome(False, str(err))
    else:
        with closing(client), data.reader(ctx.db) as (store, _), writer(ctx) as ledger:
            result = order_now_for(store, ledger, client.catalog, key, via="web",
                                   vendor_name=ctx.settings.vendor.name, now=now,
                                   quantity=quantity, sku=values.get("sku") or None)
        out = actions.Outcome(result.outcome in (Outcome.QUEUED, Outcome.PROPOSED,
                                                 Outcome.ALREADY_ON_ORDER), result.message)
    return _orders_page(request, ctx, session, 200 if out.ok else 409, outcome=out)


async def devices(request: Request, ctx: WebContext, session: Session) -> Response:
    with data.reader(ctx.db) as (store, _):
        devs = store.devices()
        rejects = store.reject_counts()
    probes = doctor.Probes(timeout_s=1.0)
    checks = [doctor.check_clock(ctx.db, probes), doctor.check_disk(ctx.db, probes),
              doctor.check_devices(ctx.db, probes)]
    # integrity_check reads every page (seconds on a year of data): only when asked.
    integrity = request.query_params.get("integrity") == "1"
    if integrity:
        checks.insert(0, doctor.check_database(ctx.db))
    return ctx.render(request, "devices.html", session=session, devices=devs, rejects=rejects,
                      checks=checks, printers=ctx.settings.printers, integrity=integrity)


ROUTES: list[tuple[str, Handler, list[str], bool]] = [
    ("/", home, ["GET"], False),
    ("/orders", orders, ["GET"], False),
    ("/orders/{intent_id:int}/{verb:str}", order_action, ["POST"], True),
    ("/consent", consent, ["GET"], False),
    ("/consent", consent_set, ["POST"], True),
    ("/away", away, ["GET"], False),
    ("/away", away_add, ["POST"], True),
    ("/away/{away_id:int}/remove", away_remove, ["POST"], True),
    ("/away/calendars", calendar_add, ["POST"], True),
    ("/away/calendars/refresh", calendar_refresh, ["POST"], True),
    ("/away/calendars/{name:str}/remove", calendar_remove, ["POST"], True),
    ("/audit", audit, ["GET"], False),
    ("/audit/verify", audit, ["GET"], False),
    ("/c/{device:str}/{item:str}", consumable, ["GET"], False),
    ("/c/{device:str}/{item:str}/order-now", order_now, ["POST"], True),
    ("/devices", devices, ["GET"], False),
]

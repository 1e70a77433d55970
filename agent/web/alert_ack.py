"""Acknowledging an urgent alert from the link in a caregiver's message.

No login: the link carries a token that signs that one alert id (HMAC, its own key).
Opening the link only shows the alert and a button; the acknowledgement is a POST, so a
mail scanner or a chat app's link preview that fetches the URL never stops the escalation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.app.alerting import TITLES, ack_key, ack_key_path, ack_token_ok
from agent.errors import ConsentError
from agent.storage.alerts import AlertLedger

if TYPE_CHECKING:
    from agent.web.app import WebContext


def _allowed(ctx: WebContext, alert_id: int, token: str) -> bool:
    settings = ctx.settings
    key = ack_key(ack_key_path(settings.alerts, settings.storage.path.parent))
    return bool(token) and ack_token_ok(key, alert_id, token)


def routes(ctx: WebContext) -> list[Route]:
    async def show(request: Request) -> Response:
        alert_id = int(request.path_params["alert_id"])
        token = request.query_params.get("t", "")
        if not _allowed(ctx, alert_id, token):
            return ctx.render(request, "error.html", 403, message="this link is not valid")
        ledger = AlertLedger.open(ctx.db)
        try:
            alert = ledger.alert(alert_id)
        except ConsentError:
            return ctx.render(request, "error.html", 404, message=f"no alert {alert_id}")
        finally:
            ledger.close()
        return ctx.render(request, "ack.html", alert=alert, token=token,
                          title=TITLES.get(alert.type, alert.type))

    async def acknowledge(request: Request) -> Response:
        alert_id = int(request.path_params["alert_id"])
        form = await request.form()
        token = form.get("t")
        if not isinstance(token, str) or not _allowed(ctx, alert_id, token):
            return ctx.render(request, "error.html", 403, message="this link is not valid")
        who = form.get("by")
        by = f"link:{who[:32]}" if isinstance(who, str) and who.strip() else "link"
        ledger = AlertLedger.open(ctx.db)
        try:
            alert = ledger.acknowledge(alert_id, by, ctx.clock())
        except ConsentError:
            return ctx.render(request, "error.html", 404, message=f"no alert {alert_id}")
        finally:
            ledger.close()
        return ctx.render(request, "ack.html", alert=alert, token=token, done=True,
                          title=TITLES.get(alert.type, alert.type))

    return [Route("/alerts/{alert_id:int}/ack", show, methods=["GET"]),
            Route("/alerts/{alert_id:int}/ack", acknowledge, methods=["POST"])]

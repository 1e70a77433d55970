"""The household web app: Starlette routes over server-rendered Jinja2 pages.

No JavaScript at all (``script-src 'none'``): every action is a plain HTML form, so the
pages work on any phone browser, with no internet and with scripts off. Each POST needs a
signed session cookie and that session's CSRF token; a viewer session can read but not act.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.config import Settings
from agent.errors import AgentError
from agent.web import alert_ack, auth, pages

log = logging.getLogger(__name__)

COOKIE = "replenish_session"
LOGIN_COOKIE = "replenish_login"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}
STATIC = Path(__file__).parent / "static"


def _utc(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime(
        "%Y-%m-%d %H:%M")


def templates() -> Environment:
    """Jinja2 with autoescape on for every template: device and vendor strings are text."""
    env = Environment(loader=PackageLoader("agent.web", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["utc"] = _utc
    return env


@dataclass(slots=True)
class WebContext:
    """Everything a handler needs: settings, paths, the clock and the login state."""

    settings: Settings
    password_file: Path
    signer: auth.Signer
    limiter: auth.RateLimit
    clock: Callable[[], datetime]
    secure_cookie: bool = False
    env: Environment = field(default_factory=lambda: templates())
    # One scrypt child at a time (agent.web.auth.check_in_child).
    hash_slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @property
    def db(self) -> Path:
        return self.settings.storage.path

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.settings.household.proposal_ttl_h)

    def render(self, request: Request, name: str, status: int = 200,
               session: auth.Session | None = None, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, session=session, path=request.url.path, **ctx)
        return HTMLResponse(html, status_code=status)


Handler = Callable[[Request, WebContext, auth.Session], Awaitable[Response]]


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def guarded(ctx: WebContext, handler: Handler, *, act: bool = False) -> Callable[
        [Request], Awaitable[Response]]:
    """Wrap a page: a valid session, and for POST the session's CSRF token (and the
    household role when ``act``)."""

    async def endpoint(request: Request) -> Response:
        session = ctx.signer.load(request.cookies.get(COOKIE), time.time())
        if session is None:
            if request.method == "POST":
                return ctx.render(request, "error.html", 401, message="Log in first.")
            return RedirectResponse("/login", status_code=303)
        if request.method == "POST":
            form = await request.form()
            token = form.get("csrf")
            if not isinstance(token, str) or not secrets.compare_digest(token, session.csrf):
                log.warning("web.csrf_refused path=%s client=%s", request.url.path,
                            _client(request))
                return ctx.render(request, "error.html", 403, session=session,
                                  message="This form is out of date; reload the page.")
            if act and not session.can_act:
                return ctx.render(request, "error.html", 403, session=session,
                                  message="The viewer login can look, not change things.")
        try:
            return await handler(request, ctx, session)
        except AgentError as err:
            return ctx.render(request, "error.html", 503, session=session,
                              message=str(err))
    return endpoint


async def login_page(request: Request, ctx: WebContext, error: str = "",
                     status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    resp = ctx.render(request, "login.html", status, login_token=token, error=error)
    resp.set_cookie(LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                    secure=ctx.secure_cookie)
    return resp


def login_routes(ctx: WebContext) -> list[Route]:
    async def get(request: Request) -> Response:
        return await login_page(request, ctx)

    async def post(request: Request) -> Response:
        now = time.time()
        client = _client(request)
        form = await request.form()
        token = form.get("login_token")
        cookie = request.cookies.get(LOGIN_COOKIE) or ""
        if not isinstance(token, str) or not cookie or \
                not secrets.compare_digest(token, cookie):
            return await login_page(request, ctx, "The login form expired; try again.", 403)
        wait = ctx.limiter.retry_after(client, now)
        if wait:
            log.warning("web.login_limited client=%s", client)
            resp = await login_page(request, ctx, f"Too many attempts: wait {wait:.0f} s.",
                                    429)
            resp.headers["Retry-After"] = f"{wait:.0f}"
            return resp
        password = form.get("password")
        # Counted before the check, which now waits for a child process: attempts sent
        # in parallel must not all pass the limit while the first is still hashing.
        ctx.limiter.failed(client, now)
        try:
            role = await auth.login_role_in_child(
                auth.read_passwords(ctx.password_file),
                password if isinstance(password, str) else "", ctx.hash_slot)
        except auth.HashError as err:
            log.error("web.login_check_failed client=%s error=%s", client, err)
            return await login_page(request, ctx, "The password could not be checked; "
                                    "try again in a moment.", 503)
        if role is None:
            log.warning("web.login_failed client=%s", client)
            return await login_page(request, ctx, "Wrong password.", 401)
        ctx.limiter.succeeded(client)
        log.info("web.login role=%s client=%s", role, client)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, ctx.signer.issue(role, now),
                        max_age=int(ctx.signer.max_age_s), httponly=True, samesite="strict",
                        secure=ctx.secure_cookie)
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    async def logout(request: Request, ctx: WebContext, session: auth.Session) -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    return [Route("/login", get, methods=["GET"]), Route("/login", post, methods=["POST"]),
            Route("/logout", guarded(ctx, logout), methods=["POST"])]


def create_app(settings: Settings, password_file: Path, session_key: bytes, *,
               clock: Callable[[], datetime], secure_cookie: bool = False) -> Starlette:
    """The ASGI app; :func:`agent.web.server.serve` runs it under uvicorn."""
    ws = settings.web
    ctx = WebContext(settings, password_file, auth.Signer(session_key, ws.session_hours * 3600),
                     auth.RateLimit(ws.login_attempts, ws.login_window_s), clock, secure_cookie)
    routes: list[Route | Mount] = [*login_routes(ctx), *alert_ack.routes(ctx)]
    for path, handler, methods, act in pages.ROUTES:
        routes.append(Route(path, guarded(ctx, handler, act=act), methods=methods))
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.ctx = ctx
    return app


class SecurityHeaders:
    """Adds :data:`HEADERS` to every response (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        await self.app(scope, receive, with_headers)

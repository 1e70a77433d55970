"""Run the web app under uvicorn: resolve the secret files, refuse to start unsafely."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette

from agent.clock import cli_now
from agent.config import Settings
from agent.errors import ConfigError
from agent.web import auth
from agent.web.app import create_app

log = logging.getLogger(__name__)

PASSWORD_FILE = "web-password"
SESSION_KEY_FILE = "web-session-key"


@dataclass(slots=True, frozen=True)
class WebPaths:
    password: Path
    session_key: Path


def paths(settings: Settings) -> WebPaths:
    """The password and session-key files: configured, else next to the database (the
    agent's state directory, 0700 under systemd)."""
    state = settings.storage.path.parent
    ws = settings.web
    return WebPaths(ws.password_file or state / PASSWORD_FILE,
                    ws.session_key_file or state / SESSION_KEY_FILE)


def build(settings: Settings) -> Starlette:
    """The app, after the checks that make starting unsafe or pointless."""
    p = paths(settings)
    if "household" not in auth.read_passwords(p.password):
        raise ConfigError(str(p.password), "web.password_file",
                          "no household password yet; run `replenish web set-password` "
                          "(there is no default password)")
    if not settings.storage.path.exists():
        raise ConfigError(settings.source, "storage.path",
                          f"{settings.storage.path} does not exist; start the agent first")
    tls = settings.web.tls_cert_file is not None
    return create_app(settings, p.password, auth.session_key(p.session_key), clock=cli_now,
                      secure_cookie=tls)


def url(settings: Settings) -> str:
    ws = settings.web
    scheme = "https" if ws.tls_cert_file else "http"
    host = "<this-gateway>" if ws.host in ("0.0.0.0", "::") else ws.host
    return f"{scheme}://{host}:{ws.port}/"


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both)."""
    import uvicorn  # noqa: PLC0415 - only the serving process pays for it

    app = build(settings)
    ws = settings.web
    if (ws.tls_cert_file is None) != (ws.tls_key_file is None):
        raise ConfigError(settings.source, "web.tls_key_file",
                          "give both tls_cert_file and tls_key_file, or neither")
    log.info("web.listening host=%s port=%d tls=%s", ws.host, ws.port,
             ws.tls_cert_file is not None)
    config = uvicorn.Config(
        app, host=ws.host, port=ws.port, log_config=None, access_log=False,
        server_header=False, proxy_headers=False, lifespan="off",
        ssl_certfile=str(ws.tls_cert_file) if ws.tls_cert_file else None,
        ssl_keyfile=str(ws.tls_key_file) if ws.tls_key_file else None)
    uvicorn.Server(config).run()

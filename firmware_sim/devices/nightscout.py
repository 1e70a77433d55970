"""A Nightscout site for tests and demos: the two read endpoints the agent polls.

Built from Nightscout's documented API (cgm-remote-monitor ``lib/server/swagger.yaml``,
"Treatments" and "Devicestatus"): ``GET /api/v1/treatments.json`` and
``GET /api/v1/devicestatus.json``, newest first, ``count`` limiting the answer, auth by
``?token=`` (an access token) or the ``API-SECRET`` header (SHA-1 of API_SECRET); a
refused one answers 401. ``fault`` makes it misbehave: ``"401"``, ``"500"``,
``"malformed"`` (truncated JSON), ``"slow"`` (answers after ``delay_s``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class NightscoutSite:
    """Wearer data, changed by :meth:`sensor_change` and friends on a simulated clock."""

    def __init__(self, token: str = "replenish-3f2a9c1b7d", api_secret: str | None = None
                 ) -> None:
        self.token = token
        self.api_secret_sha1 = (hashlib.sha1(api_secret.encode()).hexdigest()
                                if api_secret else None)
        self.treatments: list[dict[str, Any]] = []
        self.devicestatus: list[dict[str, Any]] = []
        self.fault: str | None = None
        self.delay_s = 2.0
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- data ------------------------------------------------------------------------

    def event(self, event_type: str, at: datetime, **extra: Any) -> None:
        self.treatments.insert(0, {
            "_id": f"{len(self.treatments):024x}", "eventType": event_type,
            "created_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "enteredBy": "xDrip4iOS", "notes": "", **extra})

    def status(self, at: datetime, reservoir: float, pump_battery: int,
               uploader_battery: int) -> None:
        stamp = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        self.devicestatus.insert(0, {
            "_id": f"{len(self.devicestatus):024x}", "device": "loop://iPhone",
            "created_at": stamp,
            "pump": {"clock": stamp, "reservoir": reservoir,
                     "battery": {"percent": pump_battery, "voltage": 1.38},
                     "status": {"status": "normal", "bolusing": False, "suspended": False},
                     "manufacturer": "Insulet", "model": "Eros"},
            "uploader": {"battery": uploader_battery, "name": "iPhone"}})

    def week(self, start: datetime, days: int = 10) -> None:
        """A plausible stretch: sensor and site changes, the reservoir emptying."""
        self.event("Sensor Start", start, sensorCode="")
        for d in range(0, days, 3):
            self.event("Site Change", start + timedelta(days=d))
        for h in range(0, days * 24, 6):
            at = start + timedelta(hours=h)
            self.status(at, reservoir=max(0.0, 200 - 1.8 * (h % 72)),
                        pump_battery=max(0, 100 - h // 6), uploader_battery=80)

    # ---- HTTP ------------------------------------------------------------------------

    def _authorised(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if query.get("token", [""])[0] == self.token:
            return True
        return bool(self.api_secret_sha1
                    and handler.headers.get("API-SECRET") == self.api_secret_sha1)

    def start(self) -> str:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.requests += 1
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if site.fault == "slow":
                    time.sleep(site.delay_s)
                data = {"/api/v1/treatments.json": site.treatments,
                        "/api/v1/devicestatus.json": site.devicestatus}.get(url.path)
                if data is None:
                    return self._send(404, b'{"status":404,"message":"Not found"}')
                if site.fault == "401" or not site._authorised(self, query):
                    return self._send(401, b'{"status":401,"message":"Unauthorized"}')
                if site.fault == "500":
                    return self._send(500, b"Internal Server Error")
                count = int(query.get("count", ["10"])[0])
                body = json.dumps(data[:count]).encode()
                self._send(200, body[: len(body) // 2] if site.fault == "malformed" else body)

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> NightscoutSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

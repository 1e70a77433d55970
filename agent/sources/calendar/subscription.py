"""Calendar subscriptions: a secret iCalendar URL fetched on a schedule.

Nextcloud, Google ("secret address in iCal format"), Outlook ("publish calendar", ICS
link) and Fastmail all hand out a URL that *is* the credential: whoever has it reads the
calendar. So the URL lives only in a file of its own (mode 0600, in a 0700 directory
beside the database), is registered with the log redactor when read, and never goes into
the database, a log line or an error message (httpx puts URLs into its exception texts:
those are translated here into the exception's type name).

Each fetch is a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the last
good answer), bounded by a per-read timeout, an overall deadline and a size cap. The last
good copy is kept on disk: when the server is down, the network is out or the answer is
not a calendar, the household's absences stay as they were, and the failure is counted
in the subscription's state file for ``doctor``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Settings
from agent.errors import ConsentError
from agent.logs import register_secret
from agent.sources.calendar.away import IMPORT_AHEAD, IMPORT_BACK
from agent.sources.calendar.ics import AWAY_WORDS, AwayRule, parse_ics
from agent.storage.ledger import Ledger

# httpx (~5-7 MB resident) is imported where a request is made, so `replenish run`
# holds it only once something here talks HTTP (tests/test_import_cost.py).
if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_DEADLINE_S = 30.0
MAX_BYTES = 8 * 1024 * 1024  # a household calendar is kilobytes; a runaway answer is not
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_USER_AGENT = "replenish-agent (calendar subscription)"


@dataclass(slots=True, frozen=True)
class FetchResult:
    """What one refresh did: ``status`` is updated, unchanged or failed."""

    name: str
    status: str
    reason: str = ""
    added: int = 0
    removed: int = 0


def source_name(name: str) -> str:
    """The away_periods ``source`` of a subscription (its rows are replaced on sync)."""
    return f"calendar:{name}"


def calendar_dir(settings: Settings) -> Path:
    return settings.calendar.dir or settings.storage.path.parent / "calendars"


def away_rule(settings: Settings) -> AwayRule:
    cs = settings.calendar
    return AwayRule(tuple(cs.keywords) if cs.keywords is not None else AWAY_WORDS, cs.category)


class CalendarSubscriptions:
    """The subscriptions kept in one directory: ``NAME.url`` (secret), ``NAME.ics`` (last
    good copy) and ``NAME.json`` (validators and failure counts)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        if not _NAME.match(name):
            raise ConsentError("calendar name must be letters, digits, '-' or '_' (max 64)")
        return (self.dir / f"{name}.url", self.dir / f"{name}.ics", self.dir / f"{name}.json")

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.url") if _NAME.match(p.stem))

    def add(self, name: str, url: str) -> None:
        """Store a subscription URL as a secret file (no other copy of it is kept)."""
        url = url.strip()
        if url.startswith("webcal://"):  # what calendar apps hand out; it means HTTPS
            url = "https://" + url[len("webcal://"):]
        if not re.match(r"^https?://[^\s/]+", url):
            raise ConsentError("a calendar subscription must be an http(s):// or webcal:// URL")
        url_file, _, _ = self._paths(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        fd = os.open(url_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(url + "\n")
        os.chmod(url_file, 0o600)
        self._owned_like_state_dir(self.dir, url_file)

    def _owned_like_state_dir(self, *paths: Path) -> None:
        """``sudo replenish away subscribe`` runs as root, the service as its own
        (DynamicUser) account: hand the files to whoever owns the state directory."""
        if os.geteuid() != 0:
            return
        owner = self.dir.parent.stat()
        for path in paths:
            os.chown(path, owner.st_uid, owner.st_gid)

    def remove(self, name: str) -> bool:
        found = False
        for path in self._paths(name):
            if path.exists():
                path.unlink()
                found = True
        return found

    def url(self, name: str) -> str:
        url_file, _, _ = self._paths(name)
        try:
            url = url_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConsentError(f"calendar {name}: URL file not readable") from err
        register_secret(url)
        return url

    def state(self, name: str) -> dict[str, object]:
        _, _, meta = self._paths(name)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self, name: str, data: dict[str, object]) -> None:
        _, _, meta = self._paths(name)
        tmp = meta.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        tmp.replace(meta)

    def last_good(self, name: str) -> str | None:
        _, cache, _ = self._paths(name)
        try:
            return cache.read_text(encoding="utf-8")
        except OSError:
            return None

    # ---- fetching ----------------------------------------------------------------

    def refresh(self, name: str, ledger: Ledger, now: datetime, *, rule: AwayRule | None = None,
                zone: tzinfo = UTC, timeout_s: float = DEFAULT_TIMEOUT_S,
                deadline_s: float = DEFAULT_DEADLINE_S,
                transport: httpx.BaseTransport | None = None) -> FetchResult:
        """Fetch one subscription and make its coming absences match it; never raises
        for a network or content fault (counted in the state file instead)."""
        state = self.state(name)
        try:
            text, validators = self._fetch(name, state, timeout_s, deadline_s, transport)
            if text is None:  # 304: the last good copy is still current
                text = self.last_good(name)
                status = "unchanged"
            else:
                # Not a calendar: ConsentError, and the last good copy stays.
                parse_ics(text, zone, rule, since=now - IMPORT_BACK, until=now + IMPORT_AHEAD)
                _, cache, _ = self._paths(name)
                tmp = cache.with_suffix(".ics.tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(cache)
                state.update(validators)
                status = "updated"
            added = removed = 0
            if text is not None:
                added, removed = self.sync(name, text, ledger, now, rule=rule, zone=zone)
        except ConsentError as err:
            return self._failed(name, state, now, str(err))
        state.update(last_success=now.isoformat(), failures=0, last_error="")
        self._save_state(name, state)
        log.info("calendar.refresh name=%s status=%s added=%d removed=%d",
                 name, status, added, removed)
        return FetchResult(name, status, "", added, removed)

    def _failed(self, name: str, state: dict[str, object], now: datetime,
                reason: str) -> FetchResult:
        failures = state.get("failures", 0)
        state.update(failures=(failures if isinstance(failures, int) else 0) + 1,
                     last_error=reason, last_failure=now.isoformat())
        self._save_state(name, state)
        log.warning("calendar.refresh name=%s status=failed reason=%s kept=last good copy",
                    name, reason)
        return FetchResult(name, "failed", reason)

    def _fetch(self, name: str, state: dict[str, object], timeout_s: float, deadline_s: float,
               transport: httpx.BaseTransport | None) -> tuple[str | None, dict[str, str]]:
        """GET the calendar: (text or None for 304, new validators)."""
        import httpx
        headers = {"User-Agent": _USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
        if self.last_good(name) is not None:
            if isinstance(state.get("etag"), str):
                headers["If-None-Match"] = str(state["etag"])
            if isinstance(state.get("last_modified"), str):
                headers["If-Modified-Since"] = str(state["last_modified"])
        url = self.url(name)
        started = time.monotonic()
        try:
            with httpx.Client(timeout=timeout_s, transport=transport,
                              follow_redirects=True, max_redirects=5) as client, \
                    client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 304:
                    return None, {}
                if resp.status_code != 200:
                    raise ConsentError(f"HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ConsentError("answer larger than 8 MiB")
                    if time.monotonic() - started > deadline_s:
                        raise ConsentError(f"no complete answer within {deadline_s:g}s")
                validators = {k: resp.headers[h] for k, h in
                              (("etag", "etag"), ("last_modified", "last-modified"))
                              if h in resp.headers}
                charset = resp.charset_encoding or "utf-8"
        except httpx.HTTPError as err:
            # The message of an httpx error names the URL: only its type goes further.
            raise ConsentError(type(err).__name__) from None
        try:
            return bytes(body).decode(charset), validators
        except (UnicodeDecodeError, LookupError):
            raise ConsentError("answer is not text") from None

    @staticmethod
    def sync(name: str, text: str, ledger: Ledger, now: datetime, *,
             rule: AwayRule | None = None, zone: tzinfo = UTC) -> tuple[int, int]:
        """Make the stored coming absences of subscription ``name`` those of ``text``."""
        periods = {}
        for ev in parse_ics(text, zone, rule, since=now - IMPORT_BACK, until=now + IMPORT_AHEAD):
            # Start and end are part of the key: a moved event is a new absence, and the
            # old one goes.
            key = (f"{source_name(name)}:{ev.uid or ev.summary}:"
                   f"{int(ev.start.timestamp())}-{int(ev.end.timestamp())}")
            periods[key] = (ev.start, ev.end, ev.summary)
        return ledger.sync_away(source_name(name), periods, now)

"""Logging for journald and for people at a terminal.

Under systemd, stderr goes to the journal: each line starts with a syslog priority prefix
(``<4>`` warning) so ``journalctl -u replenish-agent -p warning`` filters correctly, and no
timestamp (the journal adds its own). At a terminal the format is plain and timestamped.

Secrets registered with :func:`register_secret` are masked in every record that reaches our
handler, message, arguments and traceback alike: a last line of defence, not a licence to
log secrets.

:func:`canonical` writes the one "canonical line" per decision or vendor call that support
staff grep for: ``decision consumable=... decision=order order_id=... outcome=placed``.
"""

from __future__ import annotations

import base64
import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

REDACTED = "[REDACTED]"
# Shorter values would mask ordinary words; no real password or token is this short.
MIN_SECRET_LENGTH = 6

# Canonical-line keys in this order first, the rest alphabetically: lines stay diffable and
# a grep for "decision=order order_id=" keeps working as fields are added.
CANONICAL_ORDER: tuple[str, ...] = (
    "device",
    "consumable",
    "sku",
    "decision",
    "reason",
    "quantity",
    "order_id",
    "audit_id",
    "status",
    "outcome",
    "attempt",
    "ms",
)

# Libraries that log full URLs or request details at INFO.
# APScheduler logs ~10 INFO lines per start and one per job run: WARNING keeps its
# failures (a job that raised, a missed run) and drops the chatter.
_QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "apscheduler")

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

_secrets_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its base64 and URL-encoded forms) in every later log line."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    raw = value.encode("utf-8")
    forms = {
        value,
        quote(value, safe=""),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    with _secrets_lock:
        _secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


def clear_secrets() -> None:
    """Forget every registered secret (tests, or a reload with new credentials)."""
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[REDACTED]``."""
    with _secrets_lock:
        # Longest first, so a secret that contains another is masked whole.
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactFilter(logging.Filter):
    """Renders each record's message and traceback once, with secrets masked."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A broken format string must not lose the line or leak its arguments.
            message = f"{record.msg!s} (unformattable arguments)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, the prefix repeated on every line of a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) for a logging level, rounding down to severity."""
    for threshold in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return _SYSLOG_PRIORITY[logging.DEBUG]


def under_journald(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journal stream systemd announced in ``JOURNAL_STREAM``."""
    env = os.environ if env is None else env
    announced = env.get("JOURNAL_STREAM")
    if not announced:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return announced == f"{st.st_dev}:{st.st_ino}"


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler setup_logging owns, so a second call replaces it."""


def setup_logging(
    level: str = "INFO",
    stream: IO[str] | None = None,
    *,
    journal: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Configure the root logger once for the whole process; returns the handler.

    ``journal=None`` detects journald from ``JOURNAL_STREAM``; pass True/False to force.
    """
    stream = sys.stderr if stream is None else stream
    if journal is None:
        journal = under_journald(stream, env)
    handler = _AgentHandler(stream)
    handler.addFilter(RedactFilter())
    if journal:
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AgentHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def _render(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\\') or not text.isprintable():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return f'"{escaped}"'
    return text


def format_canonical(event: str, fields: Mapping[str, Any]) -> str:
    """``event key=value ...`` in the stable key order (see :data:`CANONICAL_ORDER`)."""
    known = [k for k in CANONICAL_ORDER if k in fields]
    rest = sorted(k for k in fields if k not in CANONICAL_ORDER)
    parts = [event] + [f"{k}={_render(fields[k])}" for k in known + rest]
    return " ".join(parts)


def canonical(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any
) -> str:
    """Log the canonical line for ``event`` (``decision``, ``order.placed``, ``vendor.call``).

    Fields are ids and short tokens only: never payload content, names or secrets. Returns
    the line as logged (before redaction) for tests.
    """
    line = format_canonical(event, fields)
    logger.log(level, "%s", line, extra={"event": event})
    return line


WARNINGS_FILE = "warnings.log"
WARNINGS_FILE_BYTES = 512 * 1024  # x2 with the rotated copy: bounded SD card writes


def warnings_file_handler(path: Path) -> logging.Handler:
    """A size-bounded file of WARNING+ lines for an agent that does not run under journald.

    The support bundle reads the journal under systemd; off systemd (a container, a
    hand-started ``replenish run``) stderr is gone once the terminal closes, and an
    in-process ring buffer dies with the process, which is exactly when support needs it.
    Only warnings and worse: a handful of lines a day, so the SD card barely notices.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=WARNINGS_FILE_BYTES, backupCount=1, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.addFilter(RedactFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    return handler

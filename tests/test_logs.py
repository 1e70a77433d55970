"""Journald priority prefixes, plain format, secret redaction and canonical lines."""

from __future__ import annotations

import base64
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from agent import logs
from agent.logs import canonical, format_canonical, register_secret, setup_logging

CANARY = "canary-S3cr3t/with+odd&chars"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logs.clear_secrets()


def test_journal_lines_carry_syslog_priorities() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", out, journal=True)
    log = logging.getLogger("agent.test")
    log.debug("d")
    log.info("i")
    log.warning("w %s", 1)
    log.error("e")
    log.critical("c")
    assert out.getvalue().splitlines() == [
        "<7>agent.test: d",
        "<6>agent.test: i",
        "<4>agent.test: w 1",
        "<3>agent.test: e",
        "<2>agent.test: c",
    ]


def test_traceback_lines_keep_the_priority() -> None:
    out = io.StringIO()
    setup_logging("INFO", out, journal=True)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("agent.test").exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_plain_format_has_timestamp_and_level() -> None:
    out = io.StringIO()
    setup_logging("INFO", out, journal=False)
    logging.getLogger("agent.test").warning("hello")
    line = out.getvalue().strip()
    assert not line.startswith("<")
    assert "WARNING" in line and "agent.test: hello" in line
    assert line[:4].isdigit()  # the year of the asctime


def test_level_filters_and_setup_is_idempotent() -> None:
    out = io.StringIO()
    setup_logging("INFO", io.StringIO(), journal=True)
    setup_logging("WARNING", out, journal=True)
    log = logging.getLogger("agent.test")
    log.info("hidden")
    log.warning("shown")
    assert out.getvalue() == "<4>agent.test: shown\n"
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


def test_journald_detected_from_journal_stream() -> None:
    with tempfile.TemporaryFile("w+") as fh:
        st = os.fstat(fh.fileno())
        assert logs.under_journald(fh, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not logs.under_journald(fh, {"JOURNAL_STREAM": "1:2"})
        assert not logs.under_journald(fh, {})
    assert not logs.under_journald(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_registered_secret_is_masked_in_every_form() -> None:
    out = io.StringIO()
    setup_logging("INFO", out, journal=True)
    register_secret(CANARY)
    log = logging.getLogger("agent.test")
    encoded = base64.b64encode(CANARY.encode()).decode()
    log.warning("raw %s", CANARY)
    message = "in msg " + CANARY
    log.warning(message)
    log.warning("url https://x/?token=%s", quote(CANARY, safe=""))
    log.warning("basic %s", encoded)
    try:
        raise RuntimeError(f"auth failed for {CANARY}")
    except RuntimeError:
        log.exception("vendor")
    text = out.getvalue()
    assert CANARY not in text
    assert quote(CANARY, safe="") not in text
    assert encoded.rstrip("=") not in text
    assert text.count(logs.REDACTED) >= 5


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret(None)
    assert logs.redact("abc def") == "abc def"


def test_canonical_key_order_and_quoting() -> None:
    line = format_canonical(
        "decision",
        {
            "outcome": "proposed",
            "zeta": 1,
            "consumable": "printer-1/black",
            "decision": "confirm",
            "audit_id": 42,
            "order_id": None,
            "reason": "price above mandate",
            "alpha": 0.123456789,
            "ok": True,
        },
    )
    assert line == (
        'decision consumable=printer-1/black decision=confirm reason="price above mandate" '
        "order_id=- audit_id=42 outcome=proposed alpha=0.123457 ok=true zeta=1"
    )


def test_canonical_escapes_injection() -> None:
    line = format_canonical("vendor.call", {"status": 'a"b\nc=d', "empty": ""})
    assert line == 'vendor.call status="a\\"b\\nc=d" empty=""'
    assert "\n" not in line


def test_canonical_logs_one_line() -> None:
    out = io.StringIO()
    setup_logging("INFO", out, journal=True)
    line = canonical(
        logging.getLogger("agent.app.dispatcher"), "order.placed", order_id="o-1", outcome="placed"
    )
    assert out.getvalue() == f"<6>agent.app.dispatcher: {line}\n"
    assert line == "order.placed order_id=o-1 outcome=placed"
    canonical(logging.getLogger("agent.app.dispatcher"), "order.failed", level=logging.WARNING)
    assert out.getvalue().splitlines()[-1] == "<4>agent.app.dispatcher: order.failed"

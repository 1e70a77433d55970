"""The ACL line older gateways lack: doctor warns, ``replenish run`` logs one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.ops import broker_log_acl as acl
from agent.ops import doctor
from agent.ops.doctor import Level
from agent.ops.provisioning import render_acl
from tests.test_doctor import closed_port, probes, write_config

# The rendered template without its broker-log line: a gateway provisioned before it.
CURRENT = render_acl("agent", "household")
OLD = "\n".join(line for line in CURRENT.splitlines() if "$SYS" not in line) + "\n"


def test_the_template_grants_the_agent_its_notices_and_nobody_else() -> None:
    assert acl.ACL_LINE in CURRENT.splitlines()
    assert acl.user_may_read(CURRENT, "agent", acl.BROKER_LOG_TOPIC)
    assert not acl.user_may_read(CURRENT, "household", acl.BROKER_LOG_TOPIC)
    assert not acl.user_may_read(CURRENT, "fridge-1", acl.BROKER_LOG_TOPIC)
    assert not acl.user_may_read(OLD, "agent", acl.BROKER_LOG_TOPIC)


@pytest.mark.parametrize(("rule", "readable"), [
    ("topic read $SYS/broker/log/N", True),
    ("topic $SYS/broker/log/#", True),  # no access word: readwrite
    ("topic read $SYS/#", True),
    ("topic read $SYS/broker/log/+", True),
    ("topic write $SYS/broker/log/N", False),
    ("topic read #", False),  # wildcards at the first level never match $ topics
    ("topic read +/broker/log/N", False),
    ("topic read $SYS/broker/log/E", False),
])
def test_which_rules_let_the_agent_read_the_notices(rule: str, readable: bool) -> None:
    text = f"user agent\n{rule}\nuser household\ntopic read $SYS/broker/log/N\n"
    assert acl.user_may_read(text, "agent", acl.BROKER_LOG_TOPIC) is readable


def test_a_deny_wins_over_a_grant() -> None:
    text = "user agent\ntopic read $SYS/#\ntopic deny $SYS/broker/log/N\n"
    assert not acl.user_may_read(text, "agent", acl.BROKER_LOG_TOPIC)


def test_doctor_warns_with_the_fix_when_the_line_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "replenish.acl"
    path.write_text(OLD)
    result = acl.check(path, "agent", explicit=True)
    assert result is not None and result.level is Level.WARN
    assert "agent may not read $SYS/broker/log/N" in result.summary
    assert "sudo replenish device init" in result.fix
    assert result.details == ("the line the agent's section lacks: "
                              "topic read $SYS/broker/log/N",)
    path.write_text(CURRENT)
    ok = acl.check(path, "agent", explicit=True)
    assert ok is not None and ok.level is Level.OK


def test_doctor_names_an_unreadable_or_missing_acl(tmp_path: Path) -> None:
    missing = tmp_path / "nope.acl"
    assert acl.check(missing, "agent", explicit=False) is None  # default path: no broker here
    named = acl.check(missing, "agent", explicit=True)
    assert named is not None and named.level is Level.WARN and "no such" in named.summary
    locked = tmp_path / "locked"
    locked.mkdir()
    unreadable = acl.check(locked, "agent", explicit=True)  # a directory: unreadable
    assert unreadable is not None and unreadable.level is Level.WARN


def test_run_checks_includes_the_acl_check_from_broker_settings(tmp_path: Path) -> None:
    path = tmp_path / "replenish.acl"
    path.write_text(OLD)
    cfg = write_config(tmp_path, closed_port(), f'[broker]\nacl_file = "{path}"\n')
    results = doctor.run_checks(lambda: load_settings(cfg), probes())
    found = [r for r in results if r.name == "broker log ACL"]
    assert len(found) == 1 and found[0].level is Level.WARN


def test_run_warns_once_at_start_only_for_a_readable_acl_without_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "replenish.acl"
    path.write_text(OLD)
    with caplog.at_level(logging.WARNING, logger=acl.__name__):
        assert acl.warn_at_start(path, "agent")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert lines[0].startswith("mqtt.broker_log_unreadable ")
    assert 'fix="sudo replenish device init"' in lines[0] and acl.ACL_LINE in lines[0]
    caplog.clear()
    path.write_text(CURRENT)
    assert not acl.warn_at_start(path, "agent")
    assert not acl.warn_at_start(tmp_path / "absent.acl", "agent")
    assert caplog.records == []

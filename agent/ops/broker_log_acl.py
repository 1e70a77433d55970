"""Can the agent read the broker's notices? The ACL line older gateways lack.

The agent counts packets the broker dropped as oversize from ``$SYS/broker/log/N``
(:mod:`agent.mqtt.broker_log`). Gateways provisioned before that ACL line existed lack
``topic read $SYS/broker/log/N`` in the agent's section, and Mosquitto 2.0 then grants
the subscription yet delivers nothing: the count stays 0 without a word. ``replenish
doctor`` warns about it and ``replenish run`` logs one warning line at start, both naming
the fix (``sudo replenish device init`` rewrites the ACL from the template, or add the
line by hand, then restart Mosquitto).
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.config import Settings
from agent.ops.doctor_report import CheckResult, Level
from agent.ops.provisioning import DEFAULT_ACL_FILE

log = logging.getLogger(__name__)

BROKER_LOG_TOPIC = "$SYS/broker/log/N"
ACL_LINE = f"topic read {BROKER_LOG_TOPIC}"
FIX = (f"sudo replenish device init (rewrites the ACL), or add '{ACL_LINE}' under "
       "'user <agent>' in the ACL; then sudo systemctl restart mosquitto")
_READS = {"read", "readwrite"}


def filter_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching; ``+``/``#`` at the first level never match ``$`` topics."""
    pat, top = pattern.split("/"), topic.split("/")
    for i, level in enumerate(pat):
        if level == "#":
            return not (i == 0 and topic.startswith("$"))
        if i >= len(top):
            return False
        if level == "+":
            if i == 0 and topic.startswith("$"):
                return False
            continue
        if level != top[i]:
            return False
    return len(pat) == len(top)


def user_may_read(acl_text: str, user: str, topic: str) -> bool:
    """Whether ``user``'s section (plus the ``pattern`` lines) lets it read ``topic``;
    a matching ``deny`` wins, as in Mosquitto."""
    current: str | None = None
    allowed = denied = False
    for raw in acl_text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            current = " ".join(words[1:])
            continue
        if words[0] not in ("topic", "pattern") or len(words) < 2:
            continue
        if words[0] == "topic" and current != user:
            continue
        access, pattern = (words[1], words[2]) if len(words) >= 3 else ("readwrite", words[1])
        pattern = pattern.replace("%u", user).replace("%c", "")
        if not filter_matches(pattern, topic):
            continue
        if access == "deny":
            denied = True
        elif access in _READS:
            allowed = True
    return allowed and not denied


def acl_file_of(settings: Settings) -> tuple[Path, bool]:
    """The ACL ``replenish device`` maintains, and whether ``[broker] acl_file`` named it."""
    configured = settings.broker.acl_file
    return (configured, True) if configured is not None else (DEFAULT_ACL_FILE, False)


def check(acl_file: Path, agent_user: str, explicit: bool) -> CheckResult | None:
    """The doctor's word; None when there is no ACL to judge (the Debian default path
    absent: this broker was not set up by ``replenish device init``)."""
    name = "broker log ACL"
    try:
        text = acl_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not explicit:
            return None
        return CheckResult(name, Level.WARN, f"{acl_file}: no such ACL file ([broker] "
                           "acl_file)", "correct [broker] acl_file or run sudo replenish "
                           "device init")
    except PermissionError:
        return CheckResult(name, Level.WARN, f"{acl_file}: permission denied for this user",
                           "run doctor as root: sudo replenish doctor")
    except OSError as err:
        return CheckResult(name, Level.WARN, f"{acl_file}: unreadable ({type(err).__name__})",
                           FIX)
    if user_may_read(text, agent_user, BROKER_LOG_TOPIC):
        return CheckResult(name, Level.OK, f"{agent_user} may read {BROKER_LOG_TOPIC}")
    return CheckResult(
        name, Level.WARN,
        f"{acl_file}: {agent_user} may not read {BROKER_LOG_TOPIC}: packets the broker "
        "drops as oversize go uncounted", FIX,
        details=(f"the line the agent's section lacks: {ACL_LINE}",))


def doctor_check(settings: Settings) -> CheckResult | None:
    acl_file, explicit = acl_file_of(settings)
    return check(acl_file, settings.mqtt.username, explicit)


def warn_at_start(acl_file: Path, agent_user: str) -> bool:
    """One warning line when a readable ACL lacks the rule (an unreadable one, as for the
    agent's own unprivileged user, is left to ``sudo replenish doctor``); True if warned."""
    try:
        text = acl_file.read_text(encoding="utf-8")
    except OSError:
        return False
    if user_may_read(text, agent_user, BROKER_LOG_TOPIC):
        return False
    log.warning("mqtt.broker_log_unreadable acl=%s user=%s effect=oversize_not_counted "
                "fix=\"sudo replenish device init\" line=\"%s\"", acl_file, agent_user,
                ACL_LINE)
    return True

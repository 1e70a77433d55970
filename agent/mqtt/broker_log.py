"""Counting what the broker drops before the agent sees it: oversize packets.

A packet over the broker's ``max_packet_size`` never reaches the agent: Mosquitto
disconnects the sender and logs ``Client <id> disconnected due to oversize packet.``.
With ``log_dest topic`` (``broker_config/mosquitto.conf.template``) the broker publishes
its log lines on ``$SYS/broker/log/<level>``; the agent reads the notices, learns which
username each client id connected as (``New client connected ... as <id> (..., u'<user>')``;
the client id alone is spoofable) and counts each oversize disconnect as a ``too_large``
reject of that device, beside the payloads it refused itself.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from agent.storage.rows import UNKNOWN_DEVICE, Rejected

BROKER_LOG_TOPIC = "$SYS/broker/log/N"  # notices: connects, disconnects and their reasons
REASON = "too_large"
# A client id -> username map for every client seen connecting; bounded so a reconnect
# storm of random client ids cannot grow it without end.
MAX_CLIENTS = 10_000

_CONNECTED = re.compile(r"New client connected from \S+ as (.+?) \(p\d.*?(?:, u'(.*)')?\)\.$")
_OVERSIZE = re.compile(r"Client (.+) disconnected due to oversize packet\.$")


class BrokerLog:
    """Reads broker notices; :meth:`read` returns a reject to count, or None."""

    def __init__(self) -> None:
        self._users: OrderedDict[str, str] = OrderedDict()
        self.oversize = 0
        self.unattributed = 0

    def read(self, payload: bytes) -> Rejected | None:
        line = payload.decode("utf-8", errors="replace").strip()
        connected = _CONNECTED.search(line)
        if connected is not None:
            client_id, user = connected.group(1), connected.group(2)
            self._users.pop(client_id, None)
            if user:
                self._users[client_id] = user
                while len(self._users) > MAX_CLIENTS:
                    self._users.popitem(last=False)
            return None
        oversize = _OVERSIZE.search(line)
        if oversize is None:
            return None
        self.oversize += 1
        user = self._users.get(oversize.group(1))
        if user is None:
            self.unattributed += 1  # connected before the agent was listening
        return Rejected(user or UNKNOWN_DEVICE, REASON, BROKER_LOG_TOPIC,
                        line.encode()[:200])

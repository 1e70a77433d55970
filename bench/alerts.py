"""How long a fall takes to reach a caregiver: device publish -> caregiver's endpoint.

The real path: a device account publishes ``fall_alert`` events (QoS 1) to a private
Mosquitto from ``broker_config/``; the real ``replenish run`` commits them, raises the
alert and runs ``apprise`` to a local webhook (``json://``) that timestamps arrival.
The reference, in the same run, is ``apprise`` itself sent straight to the same
endpoint: the channel's own floor, which the agent cannot beat.

    python -m bench.alerts [--falls 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    AgentRunner,
    at_most,
    checks_table,
    header,
    machine_info,
    md_table,
    monotonic_wait,
    percentile,
    utcnow,
    write_agent_config,
    write_results,
)
from firmware_sim.broker import LocalBroker, free_port

DEVICE = "watch-1"


class Receiver:
    """A caregiver's webhook that records when each message arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrivals.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def direct_apprise(url_file: Path, receiver: Receiver, n: int) -> list[float]:
    """Seconds for ``apprise`` alone to deliver to the same endpoint."""
    binary = Path(sys.executable).parent / "apprise"
    out = []
    for _ in range(n):
        before = len(receiver.arrivals)
        t0 = time.time()
        subprocess.run([str(binary), "--config", str(url_file), "-t", "ref", "-b", "ref",
                        "--storage-mode", "memory"], check=True, capture_output=True)
        monotonic_wait(lambda b=before: len(receiver.arrivals) > b, 10)
        out.append(receiver.arrivals[-1][0] - t0)
    return out


def run(falls: int) -> dict[str, Any]:
    started = utcnow()
    work = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    receiver = Receiver()
    url_file = work / "alert-anna"
    url_file.write_text(f"json://127.0.0.1:{receiver.port}/anna\n")
    with LocalBroker(work / "broker", users={DEVICE: "watch-pw"}) as broker:
        config = write_agent_config(
            work / "agent", broker.host, broker.port, broker.passwords["agent"],
            work / "agent" / "agent.db", extra=f"""
[alerts]
household_label = "bench"
interval_s = 0.2
[[alerts.contacts]]
name = "anna"
url_file = "{url_file}"
[[alerts.rules]]
event = "fall_alert"
contacts = ["anna"]
renotify_after_min = 600
escalate_after_min = 600
fold_window_min = 0.001
""")
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE)
        device.username_pw_set(DEVICE, "watch-pw")
        device.connect(broker.host, broker.port)
        device.loop_start()
        agent = AgentRunner(config).start()
        latencies = []
        try:
            for seq in range(1, falls + 1):
                before = len(receiver.arrivals)
                t0 = time.time()
                event = {"device_id": DEVICE, "seq": seq, "type": "fall_alert",
                         "ts": datetime.now(UTC).isoformat()}
                device.publish(f"replenish/v1/devices/{DEVICE}/events",
                               json.dumps(event), qos=1).wait_for_publish(5)
                if not monotonic_wait(lambda b=before: len(receiver.arrivals) > b, 30):
                    raise RuntimeError(f"fall {seq} never arrived:\n{agent.new_log()[-2000:]}")
                latencies.append(receiver.arrivals[-1][0] - t0)
                time.sleep(0.1)  # past the fold window: every fall is its own alert
        finally:
            agent.stop()
            device.loop_stop()
    reference = direct_apprise(url_file, receiver, min(falls, 10))
    receiver.server.shutdown()
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    ref50 = percentile(reference, 0.5)
    checks = [
        at_most("fall_alert publish -> caregiver endpoint, p99", p99, 10.0, "s",
                note="'within seconds' (issue 23)"),
        at_most("agent overhead over apprise alone, p50", (p50 or 0) - (ref50 or 0), 2.0, "s",
                note="ingest commit + alert pass + process start"),
    ]
    machine = machine_info()
    rows = [["agent: publish -> endpoint", len(latencies), p50, percentile(latencies, 0.9), p99,
             max(latencies)],
            ["reference: apprise alone", len(reference), ref50, percentile(reference, 0.9),
             percentile(reference, 0.99), max(reference)]]
    md = (header("Urgent alerts: fall to caregiver", machine, started) + "\n"
          + checks_table(checks) + "\n\n"
          + md_table(["path", "n", "p50 s", "p90 s", "p99 s", "max s"], rows) + "\n")
    data = {"machine": machine, "falls": falls, "latencies_s": latencies,
            "reference_s": reference, "checks": checks}
    write_results("alerts", data, md)
    print(md)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--falls", type=int, default=30)
    args = parser.parse_args()
    run(args.falls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The vendor sandbox over real HTTP: every fault knob, the admin surface under
``/_sandbox``, the OpenAPI document in ``docs/vendor-api.yaml``, and the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from firmware_sim.vendor import VendorSandbox
from firmware_sim.vendor.faults import SimClock
from firmware_sim.vendor.orders import RecordedOrder
from tests.integration.vendor_helpers import TOKEN, post_order
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


SPEC = Path(__file__).resolve().parents[2] / "docs" / "vendor-api.yaml"


# -- fault knobs --------------------------------------------------------------------------


def test_error_rate_answers_500_before_doing_anything(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.error_rate = 1.0
    assert post_order(http, "k").status_code == 500
    assert http.get("/v1/catalog/TN-2420").status_code == 500
    assert sandbox.orders() == []
    sandbox.faults.error_rate = 0.0
    assert "Idempotent-Replayed" not in post_order(http, "k").headers  # key was not used


def test_partial_error_rate_is_seeded_and_partial(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.error_rate = 0.5
    codes = [http.get("/v1/catalog/TN-2420").status_code for _ in range(60)]
    assert set(codes) == {200, 500}
    assert 10 < codes.count(500) < 50


def test_commit_then_500_commits_the_order(sandbox: VendorSandbox, http: httpx.Client) -> None:
    sandbox.faults.commit_then_500 = True
    response = post_order(http, "k")
    assert response.status_code == 500
    (order,) = sandbox.orders()
    assert order.idempotency_key == "k"
    sandbox.faults.commit_then_500 = False
    replay = post_order(http, "k")
    assert replay.status_code == 201 and replay.json()["id"] == order.id


def test_outage_window_answers_503_with_retry_after(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    now = sandbox.now()
    sandbox.faults.outages.append((now + timedelta(hours=1), now + timedelta(hours=3)))
    assert http.get("/v1/catalog/TN-2420").status_code == 200
    sandbox.advance(timedelta(hours=2))
    response = post_order(http, "k")
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert response.headers["Retry-After"] == "3600"
    assert sandbox.orders() == []
    sandbox.advance(timedelta(hours=1))
    assert post_order(http, "k").status_code == 201


def test_rate_limit_answers_429_with_retry_after(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    sandbox.faults.rate_limit = 2
    sandbox.faults.rate_window = 60.0
    codes = [http.get("/v1/catalog/TN-2420").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    limited = post_order(http, "k")
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert sandbox.orders() == []
    assert http.get("/_sandbox/orders").status_code == 200  # admin is never limited


def test_rate_limit_zero_refuses_everything(sandbox: VendorSandbox, http: httpx.Client) -> None:
    sandbox.faults.rate_limit = 0
    response = http.get("/v1/catalog/TN-2420")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_slow_drip_sends_the_body_byte_by_byte(sandbox: VendorSandbox) -> None:
    sandbox.faults.slow_drip = 1.0
    chunks = 0
    with (
        httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
        c.stream("GET", "/v1/catalog/EGGS-10") as response,
    ):
        body = b""
        for chunk in response.iter_raw():
            chunks += 1
            body += chunk
    assert response.status_code == 200
    assert httpx.Response(200, content=body).json()["sku"] == "EGGS-10"
    assert chunks > 10  # arrived in many pieces, not in one write


def test_latency_delays_answers(sandbox: VendorSandbox, http: httpx.Client) -> None:
    sandbox.faults.latency = 0.4
    started = time.monotonic()
    assert http.get("/v1/catalog/TN-2420").status_code == 200
    assert time.monotonic() - started >= 0.35  # the injected delay, a lower bound only


def test_stop_cuts_a_drip_short() -> None:
    sb = VendorSandbox(token=TOKEN).start()
    sb.faults.slow_drip = 30.0
    outcome: list[str] = []
    dripping = threading.Event()

    def fetch() -> None:
        try:
            with httpx.stream("GET", sb.url + "/v1/catalog/TN-2420",
                              headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                for _ in response.iter_raw():
                    dripping.set()
            outcome.append("complete")
        except httpx.HTTPError as err:
            outcome.append(type(err).__name__)

    t = threading.Thread(target=fetch)
    t.start()
    # Positive marker: the drip has begun (a refused or unanswered request would also
    # not complete, and prove nothing about stop).
    wait_until(dripping.is_set, timeout=10.0, what="the first dripped bytes")
    sb.stop()
    t.join(10)
    assert not t.is_alive()
    assert outcome and outcome[0] != "complete"


# -- admin surface ------------------------------------------------------------------------


def test_admin_clock(sandbox: VendorSandbox, http: httpx.Client) -> None:
    delivered: list[RecordedOrder] = []
    sandbox.on_delivered = delivered.append
    order = post_order(http, "k").json()
    start = http.get("/_sandbox/clock").json()["now"]
    moved = http.post("/_sandbox/clock", json={"advance_seconds": 10 * 86_400}).json()
    assert moved["now"] > start and moved["delivered"] == [order["id"]]
    assert [o.id for o in delivered] == [order["id"]]
    jump = http.post("/_sandbox/clock", json={"set": "2027-01-01T00:00:00+00:00"}).json()
    assert jump["now"] == "2027-01-01T00:00:00Z"
    back = http.post("/_sandbox/clock", json={"set": "2026-01-01T00:00:00+00:00"})
    assert back.status_code == 400
    assert http.post("/_sandbox/clock", json={}).status_code == 400


def test_admin_clock_says_what_a_rig_announced(sandbox: VendorSandbox,
                                               http: httpx.Client) -> None:
    assert "published" not in http.get("/_sandbox/clock").json()  # a plain clock
    clock = sandbox.state.clock
    assert isinstance(clock, SimClock)
    clock.announce(clock.advance(timedelta(hours=1)), 17)
    answer = http.get("/_sandbox/clock").json()
    assert answer["published"] == {"at": answer["now"], "count": 17}


def test_admin_faults(sandbox: VendorSandbox, http: httpx.Client) -> None:
    now = sandbox.now()
    knobs = {
        "error_rate": 0.0,
        "latency": 0.0,
        "commit_then_500": True,
        "rate_limit": 100,
        "outages": [[(now + timedelta(days=1)).isoformat(), (now + timedelta(days=2)).isoformat()]],
        "prices": {"TN-2420": "70.00"},
        "out_of_stock": {"MILK-1L": "MILK-1L-ORGANIC"},
    }
    got = http.put("/_sandbox/faults", json=knobs).json()
    assert got["commit_then_500"] is True and got["prices"] == {"TN-2420": "70.00"}
    assert sandbox.faults.commit_then_500 and sandbox.faults.rate_limit == 100
    assert http.get("/v1/catalog/TN-2420").json()["price"] == "70.00"
    assert http.get("/v1/catalog/MILK-1L").json()["availability"] == "out_of_stock"
    http.put("/_sandbox/faults", json={"prices": {"DR-2400": "1.00"}})
    assert set(sandbox.faults.prices) == {"TN-2420", "DR-2400"}  # merged
    assert http.get("/_sandbox/faults").json()["outages"][0][0].endswith("Z")
    for bad in (
        {"nope": 1},
        {"error_rate": 2},
        {"latency": -1},
        {"rate_limit": "x"},
        {"rate_limit": True},
    ):
        assert http.put("/_sandbox/faults", json=bad).status_code == 400, bad
    reset = http.delete("/_sandbox/faults").json()
    assert reset["commit_then_500"] is False and reset["prices"] == {}
    assert http.get("/v1/catalog/TN-2420").json()["price"] == "64.90"


def test_admin_lists_orders_and_catalog(sandbox: VendorSandbox, http: httpx.Client) -> None:
    post_order(http, "a")
    post_order(http, "b", test=True)
    orders = http.get("/_sandbox/orders").json()["orders"]
    assert [(o["idempotency_key"], o["test"]) for o in orders] == [("a", False), ("b", True)]
    skus = [i["sku"] for i in http.get("/_sandbox/catalog").json()["items"]]
    assert "TN-2420" in skus and "MILK-1L" in skus


def test_admin_is_not_affected_by_faults(sandbox: VendorSandbox, http: httpx.Client) -> None:
    sandbox.faults.error_rate = 1.0
    sandbox.faults.slow_drip = 30.0
    assert http.get("/_sandbox/faults").status_code == 200
    assert http.delete("/_sandbox/faults").status_code == 200
    assert http.get("/v1/catalog/TN-2420").status_code == 200


def test_unknown_paths_and_methods(http: httpx.Client) -> None:
    assert http.get("/v2/anything").status_code == 404
    assert http.get("/v1/nothing").status_code == 404
    assert http.delete("/v1/catalog/TN-2420").status_code == 405
    assert http.get("/v1/orders/ord_1/cancel").status_code == 405


# -- OpenAPI document ---------------------------------------------------------------------


def load_spec() -> dict[str, Any]:
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.1")
    return dict(spec)


def test_every_documented_path_and_method_is_served(
    sandbox: VendorSandbox, http: httpx.Client
) -> None:
    order = post_order(http, "spec-key").json()
    values = {"sku": "TN-2420", "id": order["id"]}
    bodies: dict[tuple[str, str], Any] = {
        ("/v1/orders", "post"): {"sku": "TN-2420", "quantity": 1},
        ("/_sandbox/clock", "post"): {"advance_seconds": 60},
        ("/_sandbox/faults", "put"): {"latency": 0},
    }
    spec = load_spec()
    served = 0
    for template, item in spec["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
        for method in ("get", "post", "put", "delete"):
            if method not in item:
                continue
            response = http.request(
                method.upper(),
                path,
                json=bodies.get((template, method)),
                headers={"Idempotency-Key": "spec-key"} if template == "/v1/orders" else {},
            )
            documented = set(item[method]["responses"])
            code = str(response.status_code)
            assert code in documented or f"{code[0]}XX" in documented, (method, template, code)
            assert response.status_code < 400, (method, template, response.text)
            served += 1
    assert served == 12


def test_responses_match_the_documented_schemas(sandbox: VendorSandbox, http: httpx.Client) -> None:
    schemas = load_spec()["components"]["schemas"]
    samples = {
        "CatalogItem": http.get("/v1/catalog/TN-2420").json(),
        "Order": post_order(http, "k").json(),
        "Error": http.get("/v1/catalog/NOPE").json(),
        "Faults": http.get("/_sandbox/faults").json(),
    }
    for name, sample in samples.items():
        schema = schemas[name]
        assert set(schema.get("required", [])) <= set(sample), name
        assert set(sample) <= set(schema["properties"]), name  # nothing undocumented
    codes = set(schemas["Error"]["properties"]["error"]["enum"])
    codes |= set(schemas["SandboxError"]["properties"]["error"]["enum"])  # clock_external
    source = "".join(
        (Path(__file__).resolve().parents[2] / "firmware_sim" / "vendor" / f).read_text()
        for f in ("http.py", "state.py", "orders.py")
    )
    raised = set(re.findall(r'ApiError\(\s*\d+,\s*"([a-z_]+)"', source))
    raised |= set(re.findall(r'"error": "([a-z_]+)"', source))
    assert raised and raised <= codes, raised - codes


# -- command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["-m", "firmware_sim.vendor"], ["-m", "firmware_sim", "vendor"]],
    ids=["module", "replenish-sim"],
)
def test_main_serves_until_sigterm(tmp_path: Path, command: list[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("cli-token\n")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[[item]]\nsku = "X-1"\nname = "Thing"\nprice = "2.50"\n'
        '[[item]]\nsku = "X-2"\nname = "Other"\nprice = 3\nsubstitutes = ["X-1"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, *command, "--port", "0", "--token-file", str(token_file)]
        + ["--catalog", str(catalog), "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        auth = {"Authorization": "Bearer cli-token"}
        item = httpx.get(url + "/v1/catalog/X-2", headers=auth).json()
        assert item["price"] == "3.00" and item["substitutes"] == ["X-1"]
        assert httpx.get(url + "/v1/catalog/TN-2420", headers=auth).status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_main_reports_a_bad_catalog(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret-value")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[item]]\nsku = "X-1"\nname = "T"\nprice = "1"\nsubstitutes = ["NOPE"]\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "firmware_sim.vendor",
            "--port",
            "0",
            "--token-file",
            str(token_file),
            "--catalog",
            str(catalog),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "NOPE" in done.stderr and "secret-value" not in done.stderr

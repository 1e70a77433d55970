"""``docs/vendor-api.yaml`` and the sandbox agree, as third-party tools see it (issue 15).

openapi-spec-validator checks the document itself; schemathesis (its ``st`` command in a
subprocess) fuzzes the running sandbox with the bearer token, every check on, a fixed
seed and a bounded number of examples per operation. The sandbox-only admin paths (tag
``sandbox-admin``) are left out of the fuzzing: a fuzzer setting fault knobs would only
test the fuzzer. The hand-written cases below pin the findings schemathesis made before
(500 on huge ``max_unit_price``, HTML 501 for PATCH/TRACE/OPTIONS/HEAD, "abc" money).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from firmware_sim.vendor import VendorSandbox
from tests.integration.vendor_helpers import TOKEN, post_order

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "vendor-api.yaml"
# schemathesis' `st` command, run by module so no PATH lookup is involved.
ST = [sys.executable, "-m", "schemathesis.cli"]


def test_the_spec_is_valid_openapi() -> None:
    document, _ = read_from_filename(str(SPEC))
    validate(document)  # raises with the offending path on any error


def test_the_vendor_contract_has_no_sandbox_only_text() -> None:
    """Simulated time and sandbox error codes belong to the sandbox section only."""
    document, _ = read_from_filename(str(SPEC))
    contract = {p: item for p, item in document["paths"].items() if not p.startswith("/_sandbox")}
    schemas = document["components"]["schemas"]
    text = json.dumps([contract, schemas["Error"], document["components"]["headers"]])
    assert "simulated" not in text.lower() and "clock_external" not in text
    assert all(item.get("x-sandbox-only") for p, item in document["paths"].items()
               if p.startswith("/_sandbox"))
    assert len(document["servers"]) >= 2  # not only the sandbox
    assert schemas["OrderRequest"]["additionalProperties"] is False
    # "abc" is no longer a valid max_unit_price by the spec itself.
    price = schemas["OrderRequest"]["properties"]["max_unit_price"]["oneOf"]
    money_in = re.compile(schemas["MoneyIn"]["pattern"])
    assert {"$ref": "#/components/schemas/MoneyIn"} in price
    assert not money_in.match("abc") and not money_in.match("1e400")
    assert money_in.match("24.90") and re.match(schemas["Money"]["pattern"], "24.90")


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[VendorSandbox]:
    profile = getattr(request, "param", "full")
    # No slow commits here: a POST held past schemathesis' request timeout is a network
    # error to it. The conformance kit and the agent tests exercise the held POSTs.
    with VendorSandbox(token=TOKEN, seed=7, profile=profile, commit_delay_s=0) as sb:
        yield sb


@pytest.mark.parametrize("running", ["full", "minimal"], indirect=True)
def test_schemathesis_finds_no_failure(running: VendorSandbox, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    # Auth through the security scheme (not a global -H), so schemathesis can also
    # check that leaving the token out gets a 401.
    config.write_text('[auth.openapi.bearer]\nbearer = "${VENDOR_TOKEN}"\n')
    env = {
        **os.environ,
        "VENDOR_TOKEN": TOKEN,
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [*ST, "--config-file", str(config), "--no-color", "run", str(SPEC),
         "-u", running.url, "--checks", "all", "--exclude-tag", "sandbox-admin",
         "-n", "30", "--seed", "15", "--generation-database", "none",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path,
    )
    tail = proc.stdout[-6000:]
    assert proc.returncode == 0, tail
    assert "passed" in tail and "failed" not in tail and "errored" not in tail, tail
    assert len(running.orders()) > 0  # it really reached the order logic


@pytest.mark.parametrize(
    "body",
    [
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": 1e26}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": "1e400"}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": 1e400}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": 100000000000000000000000000000}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": "1000000000.00"}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": "abc"}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": "24.999"}',
        b'{"sku": "TN-2420", "quantity": 1, "max_unit_price": -1}',
        b'{"sku": "TN-2420", "quantity": 1e30}',
    ],
)
def test_out_of_range_or_malformed_money_is_a_400(http: httpx.Client, body: bytes) -> None:
    response = http.post("/v1/orders", content=body, headers={"Idempotency-Key": "big"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"


def test_edge_amounts_inside_the_range_are_accepted(http: httpx.Client) -> None:
    for i, price in enumerate(["999999999.99", "25", "0", 999999999.99, 0]):
        response = post_order(http, f"edge-{i}", max_unit_price=price)
        assert response.status_code == 201, (price, response.text)
    assert post_order(http, "float-qty", quantity=2.0).json()["quantity"] == 2


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/catalog/TN-2420", "GET"),
        ("/v1/orders", "GET, POST"),
        ("/v1/orders/ord_000001", "GET"),
        ("/v1/orders/ord_000001/cancel", "POST"),
        ("/_sandbox/faults", "GET, PUT, DELETE"),
    ],
)
@pytest.mark.parametrize("method", ["PATCH", "TRACE", "OPTIONS", "HEAD", "PUT", "DELETE"])
def test_every_unsupported_method_gets_a_json_405(
    http: httpx.Client, path: str, allowed: str, method: str
) -> None:
    if method in allowed.split(", "):
        return
    response = http.request(method, path)
    assert response.status_code == 405, (method, path, response.text)
    assert response.headers["Allow"] == allowed
    assert response.headers["Content-Type"] == "application/json"
    if method != "HEAD":  # a HEAD answer has headers only
        assert response.json()["error"] == "method_not_allowed"


def test_an_unknown_method_and_a_bad_request_line_get_json(sandbox: VendorSandbox) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=5) as plain:
        response = plain.request("BREW", "/v1/orders", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
        response = plain.request("PATCH", "/v1/orders")  # no token: auth comes first
        assert response.status_code == 401
    host, port = sandbox.url.removeprefix("http://").split(":")
    for raw, status in (
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"POST /v1/orders HTTP/1.1\r\nContent-Length: abc\r\n\r\n", b"400"),
    ):
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(raw)
            received = b""
            with contextlib.suppress(ConnectionResetError):  # unread request bytes: RST
                while chunk := conn.recv(65_536):  # the server closes after these errors
                    received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status and b"application/json" in head
        assert json.loads(body)["error"] in ("bad_request", "too_large")


def test_setting_faults_needs_a_body(http: httpx.Client) -> None:
    assert http.put("/_sandbox/faults").status_code == 400
    assert http.put("/_sandbox/faults", json={}).status_code == 200  # an empty set is fine


def test_orders_without_a_filter_lists_every_order(http: httpx.Client) -> None:
    first = post_order(http, "a").json()
    second = post_order(http, "b", sku="TN-2410").json()
    listed = http.get("/v1/orders").json()["orders"]
    assert [o["id"] for o in listed] == [first["id"], second["id"]]
    assert http.get("/v1/orders", params={"idempotency_key": "x" * 256}).status_code == 400

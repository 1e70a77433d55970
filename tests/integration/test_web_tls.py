"""``replenish web`` over TLS with a certificate from the gateway's own CA (the household
CA of broker_config/make-ca.sh and make-broker-cert.sh, the scripts ``replenish device``
provisioning runs), checked by httpx the way a phone that trusts that CA would."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.ipp_fixtures import free_port
from tests.vendor_fake import FakeVendor
from tests.waiting import wait_until
from tests.web_helpers import PASSWORD, seed, set_passwords, web_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent.parent


def trust(ca: Path) -> ssl.SSLContext:
    """What a phone that installed the household CA trusts: that CA and nothing else."""
    return ssl.create_default_context(cafile=str(ca / "ca.crt"))


@pytest.fixture
def household_ca(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed for the household CA")
    ca = tmp_path / "ca"
    for script, *args in (("make-ca.sh", str(ca)),
                          ("make-broker-cert.sh", str(ca), "gateway")):
        subprocess.run(["sh", str(ROOT / "broker_config" / script), *args], check=True,
                       capture_output=True, timeout=60)
    return ca


@pytest.fixture
def tls_web(tmp_path: Path, household_ca: Path) -> Iterator[str]:
    db = tmp_path / "agent.db"
    seed(db, datetime.now(UTC).replace(microsecond=0) - timedelta(days=30),
         FakeVendor().client().catalog)
    set_passwords(web_settings(tmp_path, db))
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[storage]\npath = "{db}"\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
        f'password_file = "{tmp_path / "web-password"}"\n'
        f'session_key_file = "{tmp_path / "web-key"}"\n'
        f'tls_cert_file = "{household_ca / "broker.crt"}"\n'
        f'tls_key_file = "{household_ca / "broker.key"}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "--config", str(config),
                             "web"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"https://localhost:{port}"
    try:
        def serving() -> bool:
            try:
                httpx.get(f"{url}/login", verify=trust(household_ca), timeout=1)
                return True
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_until(serving, timeout=30.0, what="the web server", every=0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_login_over_tls_with_the_household_ca(tls_web: str, household_ca: Path) -> None:
    with httpx.Client(base_url=tls_web, verify=trust(household_ca), timeout=10) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert page.extensions["http_version"] == b"HTTP/1.1"
        token = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert token is not None
        assert "secure" in page.headers["set-cookie"].lower()
        resp = client.post("/login", data={"login_token": token[1], "password": PASSWORD})
        assert resp.status_code == 303
        session = resp.headers["set-cookie"].lower()
        assert "replenish_session=" in session and "secure" in session
        assert "httponly" in session and "samesite=strict" in session
        home = client.get("/")
        assert home.status_code == 200 and "printer-1 / black" in home.text


def test_a_client_without_the_household_ca_and_plain_http_are_refused(
        tls_web: str) -> None:
    # A browser that does not trust the household CA must refuse the certificate ...
    with pytest.raises(httpx.ConnectError) as err:
        httpx.get(f"{tls_web}/login", timeout=5)
    assert isinstance(err.value.__context__, ssl.SSLCertVerificationError) or \
        "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    # ... and the TLS port speaks no plain HTTP (nothing leaks unencrypted).
    try:
        resp = httpx.get(tls_web.replace("https://", "http://") + "/login", timeout=5)
    except httpx.TransportError:
        return  # no TLS handshake, no answer
    assert resp.status_code >= 400 and "login_token" not in resp.text

#!/usr/bin/env bash
# Make sure the system programs the tests and the demo use exist: Python 3.11+ with venv,
# mosquitto + clients, ippeveprinter/ipptool (cups-ipp-utils), dbus-daemon, chromium for
# the browser tests, and systemd-nspawn + debootstrap for the real-systemd test.
# As root, missing Debian packages are installed with apt-get; otherwise we stop and
# print the exact command to run.
set -euo pipefail

need=()
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || {
  echo "replenish-agent needs Python 3.11 or newer as python3" >&2; exit 1; }
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || need+=(mosquitto)
have mosquitto_pub && have mosquitto_sub && have mosquitto_passwd || need+=(mosquitto-clients)
have ippeveprinter && have ipptool || need+=(cups-ipp-utils)
have dbus-daemon || need+=(dbus)
have openssl || need+=(openssl)
# The web app's browser tests (tests/integration/test_web_browser.py): Debian's Chromium and
# its driver, so nothing is downloaded at test time.
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
# The real-systemd test (tests/integration/test_systemd_nspawn.py) boots a Debian rootfs.
have systemd-nspawn || need+=(systemd-container)
have debootstrap || need+=(debootstrap)
# The gateway clock fault test (tests/integration/test_edge_faults.py) runs the real agent
# under libfaketime: a clock 30 days behind, then stepped right.
compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || need+=(libfaketime)

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the system mosquitto service on install; our broker runs privately.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
else
  echo "missing system packages; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi

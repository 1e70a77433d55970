#!/bin/sh
# Install or upgrade replenish-agent as a systemd service (called by `make install`).
#
#   venv     /opt/replenish-agent            (symlink to the current release directory)
#   broker   /opt/replenish-agent/share/replenish-agent/broker_config (templates, CA scripts)
#   unit     /etc/systemd/system/replenish-agent.service (and replenish-web.service, not enabled)
#   config   /etc/replenish-agent/agent.toml (only written when absent: local edits survive)
#   secrets  /etc/credstore/replenish-agent-{mqtt-password,vendor-token} (never written here)
#   state    /var/lib/replenish-agent        (created by systemd: StateDirectory=)
#   command  /usr/local/bin/replenish        (symlink, unless another replenish is there)
#
# Environment: PYTHON (default python3), DESTDIR (stage into a tree; skips systemctl),
# SRC (the source tree; default: the parent of this script's directory).
set -eu

PYTHON=${PYTHON:-python3}
DESTDIR=${DESTDIR:-}
SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
PREFIX=/opt/replenish-agent
UNIT=replenish-agent.service

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo make install)" >&2
    exit 1
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "install.sh: Python 3.11 or newer is needed ($PYTHON)" >&2
    exit 1
}

# Venvs are not relocatable, so each install builds a fresh release directory and then swaps
# the /opt/replenish-agent symlink: a failed pip run leaves the running agent untouched, and
# the previous release stays on disk for a rollback (see operations.md).
mkdir -p "$DESTDIR/opt"
RELEASE="replenish-agent-$(date -u +%Y%m%dT%H%M%S)-$$"
NEW="$DESTDIR/opt/$RELEASE"
"$PYTHON" -m venv "$NEW"
"$NEW/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$SRC" || {
    rm -rf "$NEW"
    echo "install.sh: pip install failed; the installed release is unchanged" >&2
    exit 1
}
install -d -m 0755 "$NEW/share/doc"
install -m 0644 "$SRC/docs/operations.md" "$NEW/share/doc/operations.md"
install -m 0644 "$SRC/docs/web.md" "$NEW/share/doc/web.md"
# Mosquitto templates and CA scripts for `replenish device init|add`: inside the release, so
# they upgrade and roll back with the code that renders them (agent/ops/broker_files.py).
install -d -m 0755 "$NEW/share/replenish-agent/broker_config"
for f in "$SRC"/broker_config/*.template "$SRC"/broker_config/*.sh; do
    case "$f" in *.sh) mode=0755 ;; *) mode=0644 ;; esac
    install -m "$mode" "$f" "$NEW/share/replenish-agent/broker_config/"
done
if [ -e "$DESTDIR$PREFIX" ] && [ ! -L "$DESTDIR$PREFIX" ]; then
    echo "install.sh: $PREFIX exists and is not a symlink; move it away first" >&2
    exit 1
fi
PREVIOUS=$(readlink "$DESTDIR$PREFIX" 2>/dev/null || true)
ln -sfn "$RELEASE" "$DESTDIR$PREFIX.tmp"
mv -T "$DESTDIR$PREFIX.tmp" "$DESTDIR$PREFIX"
# Keep exactly one previous release for rollback.
for old in "$DESTDIR"/opt/replenish-agent-*; do
    name=$(basename "$old")
    if [ "$name" != "$RELEASE" ] && [ "$name" != "$PREVIOUS" ]; then
        rm -rf "$old"
    fi
done

# `sudo replenish doctor` for support staff; never replace someone else's command.
install -d -m 0755 "$DESTDIR/usr/local/bin"
CMD="$DESTDIR/usr/local/bin/replenish"
if [ ! -e "$CMD" ] || [ "$(readlink "$CMD" 2>/dev/null)" = "$PREFIX/bin/replenish" ]; then
    ln -sfn "$PREFIX/bin/replenish" "$CMD"
fi

install -d -m 0755 "$DESTDIR/etc/systemd/system"
install -m 0644 "$SRC/systemd/$UNIT" "$DESTDIR/etc/systemd/system/$UNIT"
# The web app's unit is installed, not enabled: it needs `replenish web set-password` first.
install -m 0644 "$SRC/systemd/replenish-web.service" \
    "$DESTDIR/etc/systemd/system/replenish-web.service"

install -d -m 0755 "$DESTDIR/etc/replenish-agent"
if [ ! -e "$DESTDIR/etc/replenish-agent/agent.toml" ]; then
    install -m 0644 "$SRC/systemd/agent.toml.example" "$DESTDIR/etc/replenish-agent/agent.toml"
    echo "install.sh: wrote /etc/replenish-agent/agent.toml from the example; edit it"
fi
install -d -m 0700 "$DESTDIR/etc/credstore"

if [ -n "$DESTDIR" ] || [ ! -d /run/systemd/system ]; then
    echo "install.sh: staged into ${DESTDIR:-/}; systemd not running, service not started"
    exit 0
fi

systemctl daemon-reload
systemctl enable "$UNIT" >/dev/null
if systemctl is-active --quiet "$UNIT"; then
    systemctl restart "$UNIT"
    echo "install.sh: upgraded and restarted $UNIT"
else
    echo "install.sh: installed. Put the secrets in /etc/credstore/ (see operations.md), then:"
    echo "  sudo $PREFIX/bin/replenish --config /etc/replenish-agent/agent.toml check-config"
    echo "  sudo systemctl start $UNIT && journalctl -u $UNIT -f"
fi

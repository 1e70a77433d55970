#!/bin/sh
# Remove replenish-agent (called by `make uninstall`).
#
# Keeps /etc/replenish-agent (config), /etc/credstore secrets and the database in
# /var/lib/replenish-agent unless --purge is given: an uninstall should not lose a household's
# order history by accident.
set -eu

DESTDIR=${DESTDIR:-}
PURGE=no
for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=yes ;;
        *) echo "usage: uninstall.sh [--purge]" >&2; exit 2 ;;
    esac
done
UNIT=replenish-agent.service

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: run as root (sudo make uninstall)" >&2
    exit 1
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl disable --now "$UNIT" 2>/dev/null || true
    systemctl disable --now replenish-web.service 2>/dev/null || true
fi
rm -f "$DESTDIR/etc/systemd/system/$UNIT" "$DESTDIR/etc/systemd/system/replenish-web.service"
rm -rf "$DESTDIR/etc/systemd/system/$UNIT.d"
rm -f "$DESTDIR/opt/replenish-agent"
if [ "$(readlink "$DESTDIR/usr/local/bin/replenish" 2>/dev/null)" = /opt/replenish-agent/bin/replenish ]; then
    rm -f "$DESTDIR/usr/local/bin/replenish"
fi
rm -rf "$DESTDIR"/opt/replenish-agent-*
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reset-failed "$UNIT" 2>/dev/null || true
fi

if [ "$PURGE" = yes ]; then
    # DynamicUser= keeps the state under /var/lib/private with a symlink in /var/lib.
    rm -rf "$DESTDIR/var/lib/replenish-agent" "$DESTDIR/var/lib/private/replenish-agent"
    rm -rf "$DESTDIR/etc/replenish-agent"
    rm -f "$DESTDIR"/etc/credstore/replenish-agent-* "$DESTDIR"/etc/credstore.encrypted/replenish-agent-*
    echo "uninstall.sh: removed the agent, its configuration, secrets and database"
else
    echo "uninstall.sh: removed the agent; kept /etc/replenish-agent, /etc/credstore/replenish-agent-*"
    echo "  and /var/lib/replenish-agent (run with --purge to delete them too)"
fi

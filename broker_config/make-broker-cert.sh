#!/bin/sh
# Issue the broker's server certificate from the household CA.
#
#   make-broker-cert.sh CA_DIR HOSTNAME [IP ...]
#
# SAN: HOSTNAME, HOSTNAME.local, localhost, 127.0.0.1 and every IP given (the
# gateway's LAN addresses: devices connect by IP when they have no mDNS).
# Writes CA_DIR/broker.key (0640, group mosquitto when run as root) and broker.crt.
set -eu
CA_DIR=${1:?usage: make-broker-cert.sh CA_DIR HOSTNAME [IP ...]}
HOST=${2:?usage: make-broker-cert.sh CA_DIR HOSTNAME [IP ...]}
shift 2

san="DNS:$HOST,DNS:localhost,IP:127.0.0.1"
case "$HOST" in
    *.*|localhost) ;;
    *) san="$san,DNS:$HOST.local" ;;
esac
for ip in "$@"; do
    san="$san,IP:$ip"
done

umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$CA_DIR/broker.key" 2>/dev/null
openssl req -new -sha256 -key "$CA_DIR/broker.key" -subj "/CN=$HOST" \
    -addext "subjectAltName=$san" -out "$CA_DIR/broker.csr"
openssl ca -batch -notext -config "$CA_DIR/openssl.cnf" -extensions server_cert \
    -in "$CA_DIR/broker.csr" -out "$CA_DIR/broker.crt" 2>/dev/null
rm -f "$CA_DIR/broker.csr"
chmod 644 "$CA_DIR/broker.crt"
chmod 640 "$CA_DIR/broker.key"
# mosquitto reads its key after dropping root to user mosquitto.
if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null 2>&1; then
    chgrp mosquitto "$CA_DIR/broker.key"
fi
echo "broker certificate for $san in $CA_DIR/broker.crt"

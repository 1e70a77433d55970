#!/bin/sh
# Issue a client certificate for one device (CN = device id = MQTT username on the
# mutual-TLS listener, which sets use_identity_as_username).
#
#   make-client-cert.sh CA_DIR DEVICE_ID [OUT_DIR]
#
# Writes OUT_DIR/DEVICE_ID.key (0600) and DEVICE_ID.crt; OUT_DIR defaults to
# CA_DIR/clients. Copy both plus CA_DIR/ca.crt into the device, then delete the key here.
set -eu
CA_DIR=${1:?usage: make-client-cert.sh CA_DIR DEVICE_ID [OUT_DIR]}
ID=${2:?usage: make-client-cert.sh CA_DIR DEVICE_ID [OUT_DIR]}
OUT=${3:-$CA_DIR/clients}

# Same rule as agent.wire.device.ID_PATTERN: the id becomes a topic level.
if ! printf '%s' "$ID" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'; then
    echo "make-client-cert.sh: invalid device id" >&2
    exit 2
fi
mkdir -p "$OUT"
umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/$ID.key" 2>/dev/null
openssl req -new -sha256 -key "$OUT/$ID.key" -subj "/CN=$ID" -out "$OUT/$ID.csr"
openssl ca -batch -notext -config "$CA_DIR/openssl.cnf" -extensions client_cert \
    -in "$OUT/$ID.csr" -out "$OUT/$ID.crt" 2>/dev/null
rm -f "$OUT/$ID.csr"
chmod 644 "$OUT/$ID.crt"
echo "client certificate for $ID in $OUT/$ID.crt"

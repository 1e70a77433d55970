#!/bin/sh
# Revoke every valid certificate issued for DEVICE_ID and rewrite CA_DIR/crl.pem.
# Mosquitto reads the CRL when its listeners start: restart it afterwards.
#
#   revoke-client-cert.sh CA_DIR DEVICE_ID
set -eu
CA_DIR=${1:?usage: revoke-client-cert.sh CA_DIR DEVICE_ID}
ID=${2:?usage: revoke-client-cert.sh CA_DIR DEVICE_ID}

found=0
# index.txt: status, expiry, [revocation], serial, file, subject (tab separated).
for serial in $(awk -F'\t' -v cn="/CN=$ID" '$1 == "V" && $6 == cn { print $4 }' \
        "$CA_DIR/index.txt"); do
    openssl ca -batch -config "$CA_DIR/openssl.cnf" \
        -revoke "$CA_DIR/issued/$serial.pem" 2>/dev/null
    found=1
done
if [ "$found" = 0 ]; then
    echo "revoke-client-cert.sh: no valid certificate for $ID" >&2
    exit 1
fi
openssl ca -batch -config "$CA_DIR/openssl.cnf" -gencrl -out "$CA_DIR/crl.pem" 2>/dev/null
chmod 644 "$CA_DIR/crl.pem"
echo "revoked $ID; CRL updated in $CA_DIR/crl.pem"

#!/bin/sh
# Create the household CA: a private key that never leaves the gateway, its
# certificate (what devices and the agent trust), and an empty CRL for revocations.
#
#   make-ca.sh CA_DIR [CA_NAME]
#
# Files: CA_DIR/ca.key (0600, root only), ca.crt, crl.pem, plus the openssl ca
# database (index.txt, serial, crlnumber, openssl.cnf). Refuses to overwrite a CA.
set -eu
CA_DIR=${1:?usage: make-ca.sh CA_DIR [CA_NAME]}
CA_NAME=${2:-Replenish household CA}
DAYS=${CA_DAYS:-3650}

if [ -e "$CA_DIR/ca.key" ]; then
    echo "make-ca.sh: $CA_DIR/ca.key exists; not overwriting the household CA" >&2
    exit 1
fi
mkdir -p "$CA_DIR/issued"
chmod 755 "$CA_DIR"
umask 077
: > "$CA_DIR/index.txt"
echo 1000 > "$CA_DIR/serial"
echo 1000 > "$CA_DIR/crlnumber"
cat > "$CA_DIR/openssl.cnf" <<CNF
[ ca ]
default_ca = household

[ household ]
dir = $CA_DIR
database = \$dir/index.txt
serial = \$dir/serial
crlnumber = \$dir/crlnumber
new_certs_dir = \$dir/issued
certificate = \$dir/ca.crt
private_key = \$dir/ca.key
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = any_cn
unique_subject = no
copy_extensions = copy

[ any_cn ]
commonName = supplied

[ server_cert ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_cert ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

openssl ecparam -name prime256v1 -genkey -noout -out "$CA_DIR/ca.key" 2>/dev/null
openssl req -new -x509 -sha256 -days "$DAYS" -key "$CA_DIR/ca.key" \
    -subj "/CN=$CA_NAME" \
    -addext "basicConstraints=critical,CA:true,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$CA_DIR/ca.crt"
openssl ca -batch -config "$CA_DIR/openssl.cnf" -gencrl -out "$CA_DIR/crl.pem" 2>/dev/null
# Public parts must be readable by mosquitto (it drops root) and by the agent.
chmod 644 "$CA_DIR/ca.crt" "$CA_DIR/crl.pem"
echo "household CA created in $CA_DIR (trust anchor: $CA_DIR/ca.crt)"

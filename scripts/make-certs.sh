#!/usr/bin/env bash
# Makes throwaway certificates for tests and the tls_chat example (no private key is committed).
#   scripts/make-certs.sh DIR
# DIR gets: ca.pem/ca.key (test CA), server.pem/server.key (CN localhost; SAN localhost and
# 127.0.0.1, signed by the CA), client.pem/client.key (for mutual TLS, signed by the CA), and
# other-ca.pem (an unrelated CA, for "wrong CA" tests). Idempotent: does nothing if DIR is done.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -s server.pem ] && [ -s client.pem ] && [ -s other-ca.pem ] && exit 0

days=3650
subj() { echo "/O=tao test/CN=$1"; }

make_ca() { # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -subj "$(subj "$1 CA")" -keyout "$1.key" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
}

make_leaf() { # name cn extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$(subj "$2")" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

make_ca ca
make_ca other-ca
make_leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
make_leaf client "tao test client" "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
echo "certificates written to $dir"

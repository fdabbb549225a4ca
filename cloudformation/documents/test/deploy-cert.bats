#!/usr/bin/env bats
# shellcheck source-path=SCRIPTDIR/.. disable=SC2154 # bats' run sets $output and $stderr
# DeployCert's helpers (deploy-cert-functions.sh): the node's own entry of `certificates`,
# decoding the parameters, the chain's verdict, the success line, and the reload hook's report.
# The swap itself is tested in swap.bats.

bats_require_minimum_version 1.5.0

setup_file() {
  # One CA and one host certificate for the whole file (openssl is the slow part).
  local d="${BATS_FILE_TMPDIR}"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca \
    -days 2 -keyout "${d}/ca.key" -out "${d}/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=mi-0123456789abcdef0 \
    -keyout "${d}/host.key" -out "${d}/host.csr" 2>/dev/null
  openssl x509 -req -in "${d}/host.csr" -CA "${d}/ca.pem" -CAkey "${d}/ca.key" -set_serial 0x1a2b \
    -days 1 -out "${d}/host.pem" 2>/dev/null
}

setup() {
  set -euo pipefail
  umask 077
  # shellcheck source=prologue.sh
  . "${BATS_TEST_DIRNAME}/../prologue.sh"
  # shellcheck source=swap.sh
  . "${BATS_TEST_DIRNAME}/../swap.sh"
  # shellcheck source=deploy-cert-functions.sh
  . "${BATS_TEST_DIRNAME}/../deploy-cert-functions.sh"
  pki="${BATS_FILE_TMPDIR}"
  dir="${BATS_TEST_TMPDIR}"
  fs_error=10
  host=mi-0123456789abcdef0
}

b64() { base64 -w0 "$@"; }
# A PEM file's body on one line: what a `certificates` entry carries.
body() { grep -v -- ----- "$1" | tr -d '\n'; }
# The body a certificate_b64 (the base64 of a PEM) wraps.
unwrapped() { printf '%s' "$1" | base64 -d | grep -v -- ----- | tr -d '\n'; }

# `certificates` naming n other nodes (mi-<n in hex>), each with the CA's certificate.
others() {
  local i entries='' ca
  ca=$(body "${pki}/ca.pem")
  for i in $(seq 1 "$1"); do entries+="${entries:+ }mi-$(printf '%017x' "$i")=r-${i}=${ca}"; done
  printf '%s' "$entries"
}

@test "find_own_certificate: the node takes its own entry among 50, and its certificate is decoded" {
  cert=$(body "${pki}/host.pem")
  find_own_certificate "$host" "$(others 20) ${host}=r-mine=${cert} $(others 29)"
  [ "$host_id" = "$host" ]
  [ "$rotation_id" = r-mine ]
  # The body wrapped back is the PEM the CA gave, byte for byte.
  [ "$certificate_b64" = "$(b64 "${pki}/host.pem")" ]
  decode_pem certificate "$certificate_b64" "${dir}/host.crt.next" "$host"
  [ "$(cat "${dir}/host.crt.next")" = "$(cat "${pki}/host.pem")" ]
  # Alone, and an i- node whose certificate carries base64 padding.
  find_own_certificate i-01234567 "i-01234567=r-1=QUJD"
  [ "$host_id" = i-01234567 ]
  [ "$rotation_id" = r-1 ]
  [ "$(unwrapped "$certificate_b64")" = QUJD ]
  find_own_certificate "$host" "${host}=r=QQ== i-01234567=s=QUI="
  [ "$(unwrapped "$certificate_b64")" = QQ== ]
}

@test "find_own_certificate refuses, with exit 2, a batch that does not name this node exactly once" {
  run --separate-stderr find_own_certificate "$host" "$(others 3)"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: certificates does not name this node (${host})" ]
  run --separate-stderr find_own_certificate "$host" "${host}=r-1=QUJD $(others 2) ${host}=r-2=QUJD"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: certificates names ${host} twice" ]
  run --separate-stderr find_own_certificate "$host" "${host}=r-0=QUJD $(others 50)"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: certificates must name 1 to 50 nodes, not 51" ]
}

@test "find_own_certificate refuses a malformed entry, by its number, even another node's" {
  long=$(printf 'A%.0s' $(seq 1 16385))
  for bad in "" "${host}" "${host}=r-1" "${host}=r-1=" "${host}==QUJD" "${host}=r_1=QUJD" \
    "${host}=r-1=QU*D" "${host}=r-1=QU JD" "${host}=r-1=QUJD;id" "MI-0123456789ABCDEF0=r-1=QUJD" \
    "i-0123=r-1=QUJD" "${host}=r-1=${long}"; do
    run --separate-stderr find_own_certificate "$host" "$bad"
    [ "$status" -eq 2 ] || { echo "accepted: '${bad:0:80}'"; false; }
    [[ "$stderr" == "ERROR: invalid certificates entry "[12]": expected nodeId=rotationId=certificate" ]]
  done
  run --separate-stderr find_own_certificate "$host" "${host}=r-1=QUJD  i-01234567=r-2=QUJD"
  [ "$stderr" = "ERROR: invalid certificates entry 2: expected nodeId=rotationId=certificate" ]
  run --separate-stderr find_own_certificate "$host" "${host}=r-1=QUJD $(others 2) i-01234567=r-2=${long}"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: invalid certificates entry 4: expected nodeId=rotationId=certificate" ]
  # At the bound exactly, a certificate is taken.
  find_own_certificate "$host" "${host}=r-1=${long:1}"
  [ "$(unwrapped "$certificate_b64")" = "${long:1}" ]
}

@test "find_own_certificate: exit 2 for a missing or foreign AWS_SSM_INSTANCE_ID" {
  run --separate-stderr find_own_certificate "" "${host}=r-1=QUJD"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: AWS_SSM_INSTANCE_ID is not set: DeployCert runs under SSM Agent, which names the node" ]
  for node in host-1 "${host}0" i-0123 mi-0123456789ABCDEF0 "${host};id"; do
    run --separate-stderr find_own_certificate "$node" "${host}=r-1=QUJD"
    [ "$status" -eq 2 ]
    [ "$stderr" = "ERROR: AWS_SSM_INSTANCE_ID is not a managed node ID: ${node}" ]
  done
}

# The whole script, run as SSM Agent runs it on node $1: its parameters substituted into a copy
# of the sources, `certificates` set to $2, the staged key in place for that node.
run_document() {
  local node="$1" doc="${dir}/doc" text name value
  mkdir -p "$doc" "${dir}/private"
  cp "${BATS_TEST_DIRNAME}"/../*.sh "$doc"/
  cp "${pki}/host.key" "${dir}/private/${node}.key.next"
  text=$(cat "${doc}/deploy-cert.sh")
  for name in "certificates=$2" certPath=${dir}/certs keyPath=${dir}/private cacertPath=${dir}/ca \
    signingHelperPath=/usr/local/bin "chain=$(b64 "${pki}/ca.pem")" requireSigningHelper=false \
    trustAnchorArn= profileArn= roleArn= reloadHook=; do
    value=${name#*=}
    text=${text//"{{ ${name%%=*} }}"/$value}
  done
  [[ "$text" != *'{{'* ]]
  printf '%s\n' "$text" >"${doc}/deploy-cert.sh"
  AWS_SSM_INSTANCE_ID="$node" run --separate-stderr bash "${doc}/deploy-cert.sh"
}

@test "the document deploys the certificate of the node's own entry and echoes its rotation" {
  run_document "$host" "$(others 3) ${host}=r-mine=$(body "${pki}/host.pem") $(others 2)"
  [ "$status" -eq 0 ] || { echo "$stderr"; false; }
  [ "${lines[0]}" = "ROTATION r-mine" ]
  [[ "${lines[1]}" == "DEPLOYED serial=1A2B notAfter="* ]]
  [ "${#lines[@]}" -eq 2 ]
  [ "$(cat "${dir}/certs/${host}.crt")" = "$(cat "${pki}/host.pem")" ]
}

@test "the document still refuses a certificate whose CN is not the node's ID, with exit 7" {
  # The entry of i-01234567 carries the certificate for the other node (its key staged too).
  run_document i-01234567 "i-01234567=r-1=$(body "${pki}/host.pem") ${host}=r-2=$(body "${pki}/host.pem")"
  [ "$status" -eq 7 ]
  [ "$stderr" = "ERROR: certificate subject CN '${host}' does not equal hostId i-01234567" ]
  [ ! -e "${dir}/certs/i-01234567.crt" ]
}

@test "the document refuses, with exit 2 and nothing changed, a batch that does not name the node" {
  run_document "$host" "$(others 2)"
  [ "$status" -eq 2 ]
  [ "$output" = "" ]
  [ "$stderr" = "ERROR: certificates does not name this node (${host})" ]
  [ -f "${dir}/private/${host}.key.next" ]
  [ ! -e "${dir}/certs" ]
}

@test "decode_pem writes one certificate" {
  decode_pem certificate "$(b64 "${pki}/host.pem")" "${dir}/host.crt.next" "$host"
  [ "$(cat "${dir}/host.crt.next")" = "$(cat "${pki}/host.pem")" ]
}

@test "decode_pem takes a chain of several certificates, but one certificate only" {
  cat "${pki}/host.pem" "${pki}/ca.pem" >"${dir}/two.pem"
  decode_pem chain "$(b64 "${dir}/two.pem")" "${dir}/chain.next" "$host"
  run --separate-stderr decode_pem certificate "$(b64 "${dir}/two.pem")" "${dir}/crt.next" "$host"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: the certificate parameter must hold exactly one PEM certificate (found 2)" ]
}

@test "decode_pem refuses private key material, even next to a certificate" {
  cat "${pki}/ca.pem" "${pki}/host.key" >"${dir}/leak.pem"
  run --separate-stderr decode_pem chain "$(b64 "${dir}/leak.pem")" "${dir}/chain.next" "$host"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: the chain parameter contains private key material; refusing it" ]
}

@test "decode_pem: exit 5 for bad base64, no certificate, or a certificate openssl cannot read" {
  run --separate-stderr decode_pem chain 'not*base64' "${dir}/c" "$host"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: the chain parameter is not valid base64" ]
  run --separate-stderr decode_pem chain "$(printf 'hello\n' | b64)" "${dir}/c" "$host"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: the chain parameter holds no PEM certificate" ]
  printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' >"${dir}/bad.pem"
  run --separate-stderr decode_pem certificate "$(b64 "${dir}/bad.pem")" "${dir}/c" "$host"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: the certificate parameter is not a readable PEM X.509 certificate" ]
}

@test "decode_pem replaces a stale staged file" {
  printf 'old\n' >"${dir}/crt.next"
  decode_pem certificate "$(b64 "${pki}/host.pem")" "${dir}/crt.next" "$host"
  run ! grep -q old "${dir}/crt.next"
}

@test "decode_pem replaces a symlink at its destination, never writes through it" {
  printf 'precious\n' >"${dir}/victim"
  ln -s "${dir}/victim" "${dir}/crt.next"
  decode_pem certificate "$(b64 "${pki}/host.pem")" "${dir}/crt.next" "$host"
  [ ! -L "${dir}/crt.next" ]
  [ "$(cat "${dir}/crt.next")" = "$(cat "${pki}/host.pem")" ]
  [ "$(cat "${dir}/victim")" = precious ]
}

@test "decode_pem leaves no temporary file behind, refused or not" {
  run --separate-stderr decode_pem chain "$(printf 'hello\n' | b64)" "${dir}/c" "$host"
  [ "$status" -eq 5 ]
  decode_pem chain "$(b64 "${pki}/ca.pem")" "${dir}/c" "$host"
  [ "$(find "$dir" -name ".${host}.tmp.*" | wc -l)" -eq 0 ]
}

@test "same_content: equal files only, both present" {
  printf 'a\n' >"${dir}/x"
  printf 'a\n' >"${dir}/y"
  printf 'b\n' >"${dir}/z"
  same_content "${dir}/x" "${dir}/y"
  run ! same_content "${dir}/x" "${dir}/z"
  run ! same_content "${dir}/x" "${dir}/missing"
  run ! same_content "${dir}/missing" "${dir}/missing"
}

@test "cert_facts prints the serial in hex and notAfter as openssl writes them" {
  run --separate-stderr cert_facts "${pki}/host.pem"
  [ "$status" -eq 0 ]
  not_after=$(openssl x509 -in "${pki}/host.pem" -noout -enddate)
  [ "$output" = "DEPLOYED serial=1A2B notAfter=${not_after#notAfter=}" ]
}

@test "cert_facts: exit 5 for a file that is not a certificate" {
  printf 'x\n' >"${dir}/x"
  run --separate-stderr cert_facts "${dir}/x"
  [ "$status" -eq 5 ]
  [ "$stderr" = "ERROR: cannot read the certificate serial" ]
}

@test "run_bounded passes the arguments and the exit status through" {
  run run_bounded printf '%s|' a 'b c'
  [ "$output" = "a|b c|" ]
  run run_bounded sh -c 'exit 3'
  [ "$status" -eq 3 ]
}

@test "chain_verifies: the right chain, and only with openssl's OK line" {
  chain_verifies "${pki}/ca.pem" "${pki}/host.pem"
  run chain_verifies "${pki}/host.pem" "${pki}/host.pem"
  [ "$status" -eq 1 ]
  [[ "$output" == *error* ]]
}

# An openssl that exits 0 whatever it prints, as OpenSSL 1.1's req -verify does.
fake_openssl() {
  mkdir -p "${dir}/bin"
  printf '#!/bin/sh\nprintf "%%s\\n" "%s"\nexit 0\n' "$1" >"${dir}/bin/openssl"
  chmod +x "${dir}/bin/openssl"
  PATH="${dir}/bin:${PATH}"
}

@test "chain_verifies reads the verdict, not the exit status" {
  fake_openssl "error 20 at 0 depth lookup: unable to get local issuer certificate"
  run chain_verifies "${pki}/ca.pem" "${pki}/host.pem"
  [ "$status" -eq 1 ]
  fake_openssl "${pki}/other.pem: OK"
  run chain_verifies "${pki}/ca.pem" "${pki}/host.pem"
  [ "$status" -eq 1 ]
  fake_openssl "${pki}/host.pem: OK"
  chain_verifies "${pki}/ca.pem" "${pki}/host.pem"
}

@test "run_reload_hook: nothing on stdout when the hook succeeds, and it gets the paths" {
  printf '#!/bin/sh\nprintf "%%s|" "$@" >"%s/args"\n' "$dir" >"${dir}/hook"
  chmod +x "${dir}/hook"
  run --separate-stderr run_reload_hook "${dir}/hook" c k ch
  [ "$status" -eq 0 ]
  [ "$output" = "" ]
  [ "$(cat "${dir}/args")" = "c|k|ch|" ]
}

@test "run_reload_hook: a failure is the marker line on stdout and a warning on stderr, status 0" {
  printf '#!/bin/sh\necho out; exit 3\n' >"${dir}/hook"
  chmod +x "${dir}/hook"
  run --separate-stderr run_reload_hook "${dir}/hook" c k ch
  [ "$status" -eq 0 ]
  [ "$output" = "RELOAD_HOOK_FAILED 3" ]
  [[ "$stderr" == *"WARNING: reload hook failed: ${dir}/hook exited with status 3" ]]
}

@test "run_reload_hook: 126 for a file that is not executable, 127 for nothing there" {
  printf '#!/bin/sh\n' >"${dir}/hook"
  chmod 0644 "${dir}/hook"
  run --separate-stderr run_reload_hook "${dir}/hook"
  [ "$output" = "RELOAD_HOOK_FAILED 126" ]
  run --separate-stderr run_reload_hook "${dir}/missing"
  [ "$output" = "RELOAD_HOOK_FAILED 127" ]
  [ "$stderr" = "WARNING: reload hook failed: ${dir}/missing does not exist" ]
}

#!/usr/bin/env bats
# shellcheck source-path=SCRIPTDIR/.. disable=SC2154 # bats' run sets $output and $stderr
# DeployCert's helpers (deploy-cert-functions.sh): decoding the parameters, the chain's verdict,
# the success line, and the reload hook's report. The swap itself is tested in swap.bats.

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

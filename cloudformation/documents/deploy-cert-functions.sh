# DeployCert's own helpers, inlined by render.py where deploy-cert.sh sources this file.
# shellcheck shell=bash
# shellcheck disable=SC2154 # re_* (patterns.sh) and own_entry (find_own_entry): prologue.sh, sourced by the script

# This node's ID, rotation and certificate, in host_id, rotation_id and certificate_b64: the node
# is the one SSM Agent names ($1, AWS_SSM_INSTANCE_ID), the rest the entry of the command's
# `certificates` ($2) that names it (find_own_entry, prologue.sh). The entry carries the PEM's
# body only (the base64 of the DER, a quarter shorter than the PEM's own base64, so a command
# carries more hosts); certificate_b64 is the base64 of the PEM wrapped back around it, the form
# the chain parameter has. The certificate must still be for CN=<that ID>, which the script
# checks once it is decoded.
# shellcheck disable=SC2034 # rotation_id and certificate_b64 are this function's result
find_own_certificate() {
  find_own_entry "$1" "$2" DeployCert certificates nodeId=rotationId=certificate certificate_ok
  rotation_id="${own_entry%%=*}"
  certificate_b64=$(pem_of_body "${own_entry#*=}" | base64 | tr -d '\n') ||
    fail 10 "cannot encode the certificate"
}

# A PEM certificate around a base64 body: the BEGIN line, the body 64 characters a line, the END
# line.
pem_of_body() {
  local body="$1" at
  printf '%s\n' '-----BEGIN CERTIFICATE-----'
  for ((at = 0; at < ${#body}; at += 64)); do
    printf '%s\n' "${body:at:64}"
  done
  printf '%s\n' '-----END CERTIFICATE-----'
}

# What follows `nodeId=` in a `certificates` entry: the rotation ID, `=`, and the certificate's
# PEM body, base64 on one line of at most re_b64_max characters (a length the pattern cannot bound
# cheaply).
certificate_ok() {
  local cert="${1#*=}"
  [[ "$1" == *=* && "${1%%=*}" =~ $re_rotation && "$cert" =~ $re_b64 ]] && ((${#cert} <= re_b64_max))
}

# Decode a base64 parameter into dest and check it holds certificates and nothing else. It is
# written to a new temporary file beside dest, then renamed over dest: a symlink planted at dest
# is replaced, never written through.
decode_pem() {
  local label="$1" b64="$2" dest="$3" host="$4" tmp why
  tmp=$(temp_file "${dest%/*}" "$host") || fail 10 "cannot create a temporary file in ${dest%/*}"
  if printf '%s' "$b64" | base64 -d >"$tmp" 2>/dev/null; then
    why=$(pem_problem "$label" "$tmp")
  else
    why="the ${label} parameter is not valid base64"
  fi
  if [ -n "$why" ]; then
    rm -f -- "$tmp"
    fail 5 "$why"
  fi
  mv -f -T -- "$tmp" "$dest" || fail 10 "cannot move the decoded ${label} to ${dest}"
}

# What is wrong with a decoded parameter, in one line; nothing when it holds PEM certificates
# only (exactly one for the certificate) that openssl reads.
pem_problem() {
  local label="$1" file="$2" count
  if grep -q -- 'PRIVATE KEY' "$file"; then
    printf 'the %s parameter contains private key material; refusing it\n' "$label"
    return 0
  fi
  count=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$file" || true)
  if [ "$label" = certificate ] && [ "$count" != 1 ]; then
    printf 'the certificate parameter must hold exactly one PEM certificate (found %s)\n' "$count"
  elif [ "$count" -lt 1 ]; then
    printf 'the %s parameter holds no PEM certificate\n' "$label"
  elif ! openssl x509 -in "$file" -noout 2>/dev/null; then
    printf 'the %s parameter is not a readable PEM X.509 certificate\n' "$label"
  fi
}

# The certificate verifies against the chain for TLS client use. The verdict is read from the
# output, the line "<certificate>: OK": the exit status of openssl verify is not trusted, as the
# one of req -verify must not be (before OpenSSL 3 it exits 0 on a failed verification). Prints
# openssl's output when the verification fails.
chain_verifies() {
  local chain="$1" cert="$2" out rc=0
  out=$(openssl verify -purpose sslclient -CAfile "$chain" "$cert" 2>&1) || rc=$?
  if [ "$rc" = 0 ] && [[ $'\n'"${out}"$'\n' == *$'\n'"${cert}: OK"$'\n'* ]] &&
    [[ $'\n'"${out}" != *$'\n'error* ]]; then
    return 0
  fi
  printf '%s\n' "$out"
  return 1
}

# Same-file comparison with shell builtins only (cmp is not part of the minimal toolset).
same_content() {
  [ -f "$1" ] && [ -f "$2" ] && [ "$(cat -- "$1")" = "$(cat -- "$2")" ]
}

# The serial and notAfter printed on success.
cert_facts() {
  local serial not_after
  serial=$(openssl x509 -in "$1" -noout -serial 2>/dev/null) || fail 5 "cannot read the certificate serial"
  not_after=$(openssl x509 -in "$1" -noout -enddate 2>/dev/null) || fail 5 "cannot read the certificate notAfter"
  printf 'DEPLOYED serial=%s notAfter=%s\n' "${serial#serial=}" "${not_after#notAfter=}"
}

# A host command that may hang (signing helper, reload hook) is stopped after two minutes where
# timeout(1) exists: well inside the document's 300 s, so the script still reports its outcome.
run_bounded() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 120 "$@"
  else
    "$@"
  fi
}

# The reload hook, after a successful swap: whatever it does, the new pair is in place and the
# document succeeds. A failure is told twice: "WARNING: reload hook failed: <why>" on stderr for
# whoever reads the host's output, and the marker "RELOAD_HOOK_FAILED <status>" alone on a line of
# stdout for the caller to count and alert on. The status is the hook's exit status (124: stopped
# by run_bounded's timeout; 128+N: killed by signal N), 126 when the path is not an executable
# file, 127 when nothing is there.
run_reload_hook() {
  local hook="$1" rc=0 why
  shift
  if [ ! -e "$hook" ]; then
    rc=127
    why="${hook} does not exist"
  elif [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
    rc=126
    why="${hook} is not an executable file"
  else
    run_bounded "$hook" "$@" >&2 </dev/null || rc=$?
    why="${hook} exited with status ${rc}"
  fi
  if [ "$rc" != 0 ]; then
    printf 'WARNING: reload hook failed: %s\n' "$why" >&2
    printf 'RELOAD_HOOK_FAILED %s\n' "$rc"
  fi
}

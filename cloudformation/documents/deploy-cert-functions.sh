# DeployCert's own helpers, inlined by render.py where deploy-cert.sh sources this file.
# shellcheck shell=bash

# Decode a base64 parameter into a file and check it holds certificates and nothing else.
decode_pem() {
  local label="$1" b64="$2" dest="$3" count
  rm -f -- "$dest" || fail 10 "cannot remove the old staged file ${dest}"
  if ! printf '%s' "$b64" | base64 -d >"$dest" 2>/dev/null; then
    fail 5 "the ${label} parameter is not valid base64"
  fi
  if grep -q -- 'PRIVATE KEY' "$dest"; then
    fail 5 "the ${label} parameter contains private key material; refusing it"
  fi
  count=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$dest" || true)
  if [ "$label" = certificate ] && [ "$count" != 1 ]; then
    fail 5 "the certificate parameter must hold exactly one PEM certificate (found ${count})"
  fi
  if [ "$count" -lt 1 ]; then
    fail 5 "the ${label} parameter holds no PEM certificate"
  fi
  if ! openssl x509 -in "$dest" -noout 2>/dev/null; then
    fail 5 "the ${label} parameter is not a readable PEM X.509 certificate"
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

# Keep a live file as .prev: a hard link, or a copy keeping the mode. No live file, nothing to do.
keep_prev() {
  local live="$1" prev="$2"
  [ -f "$live" ] || return 0
  rm -f -- "$prev" || return 1
  ln -- "$live" "$prev" 2>/dev/null || cp -p -- "$live" "$prev"
}

# Put one file back after a failed swap: the previous one if there was one, else move the new
# one back to its staging name.
restore() {
  local live="$1" staged="$2" prev="$3" had="$4"
  if [ "$had" = 1 ]; then
    cp -p -- "$prev" "${live}.restore" && mv -f -- "${live}.restore" "$live"
  elif [ -f "$live" ] && [ ! -f "$staged" ]; then
    mv -f -- "$live" "$staged"
  fi
}

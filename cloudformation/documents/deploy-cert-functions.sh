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

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# GenerateCsr: fresh private key at a staging name beside the live key, and a CSR for this host.
# One command serves up to 50 nodes: each finds its own rotation in `rotations` by its managed-node
# ID, which SSM Agent gives every command it runs (AWS_SSM_INSTANCE_ID).
# stdout on success: "ROTATION <rotationId>" then the CSR (PEM). The live key and certificate are
# never touched, except that a DeployCert swap a crash interrupted is completed first (swap.sh).
# Errors: one "ERROR: <reason>" line on stderr and a non-zero exit:
#   2 invalid parameter or unsafe directory, 3 openssl not found, 4 filesystem error,
#   5 key or CSR generation failed, 1 unexpected failure.
set -euo pipefail
set -o errtrace
umask 077

rotations='{{ rotations }}'
key_path='{{ keyPath }}'
csr_path='{{ csrPath }}'
key_algorithm='{{ keyAlgorithm }}'

export LC_ALL=C
fs_error=4
host_id=''
rotation_id=''
tmp_key=''
tmp_csr=''
tmp_conf=''

# shellcheck source=prologue.sh
. "$(dirname "${BASH_SOURCE[0]}")/prologue.sh"
# shellcheck source=swap.sh
. "$(dirname "${BASH_SOURCE[0]}")/swap.sh"
# shellcheck source=generate-csr-functions.sh
. "$(dirname "${BASH_SOURCE[0]}")/generate-csr-functions.sh"

cleanup() {
  [ -z "$tmp_key" ] || rm -f -- "$tmp_key"
  [ -z "$tmp_csr" ] || rm -f -- "$tmp_csr"
  [ -z "$tmp_conf" ] || rm -f -- "$tmp_conf"
}
trap cleanup EXIT
trap 'fail 1 "unexpected failure at line ${LINENO}"' ERR

find_own_rotation "${AWS_SSM_INSTANCE_ID:-}" "$rotations"
check_path_param keyPath "$key_path"
check_path_param csrPath "$csr_path"
set_genpkey_args "$key_algorithm"

command -v openssl >/dev/null 2>&1 || fail 3 "openssl not found on this host"

ensure_dir keyPath "$key_path"
ensure_dir csrPath "$csr_path"
check_key_dir "$key_path"
finish_interrupted_swap "$key_path" "$host_id"
remove_leftovers "$csr_path" "$host_id"

staged_key="${key_path}/${host_id}.key.next"
csr_file="${csr_path}/${host_id}.csr"

# 1. Fresh private key, written under a temporary name, made read-only, flushed to disk, then
#    renamed over the staging name (an older staged key, of an abandoned rotation, goes).
tmp_key=$(temp_file "$key_path" "$host_id") || fail 4 "cannot create a temporary file in ${key_path}"
if ! out=$(openssl genpkey "${genpkey_args[@]}" -out "$tmp_key" 2>&1); then
  fail 5 "openssl genpkey failed for ${key_algorithm}: $(one_line "$out")"
fi
chmod 0400 -- "$tmp_key" || fail 4 "cannot set mode 0400 on the new key"
flush_to_disk "$tmp_key" || fail 4 "cannot flush the new key to disk"
mv -f -T -- "$tmp_key" "$staged_key" || fail 4 "cannot move the new key to ${staged_key}"
tmp_key=''
flush_to_disk "$key_path" || fail 4 "cannot flush ${key_path} to disk"

# 2. CSR: subject exactly CN=<hostId>, SHA-256, no extensions. A private minimal config keeps the
#    host's openssl.cnf (which may add req_extensions) out of it.
tmp_conf=$(temp_file "$csr_path" "$host_id") || fail 4 "cannot create a temporary file in ${csr_path}"
printf '%s\n' '[ req ]' 'distinguished_name = req_dn' 'prompt = no' 'string_mask = utf8only' '[ req_dn ]' >"$tmp_conf"
tmp_csr=$(temp_file "$csr_path" "$host_id") || fail 4 "cannot create a temporary file in ${csr_path}"
if ! out=$(openssl req -new -config "$tmp_conf" -key "$staged_key" -subj "/CN=${host_id}" -sha256 -out "$tmp_csr" 2>&1); then
  fail 5 "openssl req failed: $(one_line "$out")"
fi
if ! out=$(csr_verifies "$tmp_csr"); then
  fail 5 "the new CSR does not verify: $(one_line "$out")"
fi
chmod 0644 -- "$tmp_csr" || fail 4 "cannot set mode 0644 on the CSR"
mv -f -T -- "$tmp_csr" "$csr_file" || fail 4 "cannot move the CSR to ${csr_file}"
tmp_csr=''

printf 'ROTATION %s\n' "$rotation_id"
cat -- "$csr_file"

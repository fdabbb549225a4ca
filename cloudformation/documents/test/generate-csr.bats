#!/usr/bin/env bats
# shellcheck source-path=SCRIPTDIR/.. disable=SC2154 # bats' run sets $output and $stderr
# GenerateCsr's helpers (generate-csr-functions.sh): key algorithms, directories, key directory
# mode, the CSR's verdict.

bats_require_minimum_version 1.5.0

setup() {
  set -euo pipefail
  umask 077
  # shellcheck source=prologue.sh
  . "${BATS_TEST_DIRNAME}/../prologue.sh"
  # shellcheck source=generate-csr-functions.sh
  . "${BATS_TEST_DIRNAME}/../generate-csr-functions.sh"
  dir="${BATS_TEST_TMPDIR}"
  fs_error=4
}

@test "set_genpkey_args: RSA sizes and named EC curves" {
  set_genpkey_args RSA_3072
  [ "${genpkey_args[*]}" = "-algorithm RSA -pkeyopt rsa_keygen_bits:3072" ]
  set_genpkey_args EC_secp384r1
  [ "${genpkey_args[*]}" = "-algorithm EC -pkeyopt ec_paramgen_curve:secp384r1 -pkeyopt ec_param_enc:named_curve" ]
}

@test "set_genpkey_args: the arguments make the key openssl is asked for" {
  set_genpkey_args EC_prime256v1
  openssl genpkey "${genpkey_args[@]}" -out "${dir}/ec.key" 2>/dev/null
  openssl pkey -in "${dir}/ec.key" -noout -text | grep -q 'NIST CURVE: P-256'
  set_genpkey_args RSA_2048
  openssl genpkey "${genpkey_args[@]}" -out "${dir}/rsa.key" 2>/dev/null
  openssl pkey -in "${dir}/rsa.key" -noout -text | grep -q '2048 bit'
}

@test "set_genpkey_args refuses any other algorithm with exit 2" {
  for a in RSA_1024 EC_secp521r1 ED25519 rsa_2048; do
    run --separate-stderr set_genpkey_args "$a"
    [ "$status" -eq 2 ]
    [ "$stderr" = "ERROR: invalid keyAlgorithm: $a" ]
  done
  run --separate-stderr set_genpkey_args ''
  [ "$status" -eq 2 ]
}

@test "ensure_dir creates a missing directory and its parents, mode 0700" {
  ensure_dir keyPath "${dir}/a/b/private"
  [ -d "${dir}/a/b/private" ]
  [ "$(stat -c '%a' "${dir}/a/b/private")" = 700 ]
  [ "$(stat -c '%a' "${dir}/a")" = 700 ]
  ensure_dir keyPath "${dir}/a/b/private"
}

@test "ensure_dir: exit 4 when the directory cannot be made" {
  touch "${dir}/file"
  run --separate-stderr ensure_dir csrPath "${dir}/file/sub"
  [ "$status" -eq 4 ]
  [ "$stderr" = "ERROR: cannot create csrPath directory ${dir}/file/sub" ]
}

@test "check_key_dir accepts a directory only its owner can write" {
  for mode in 700 750 755 500; do
    mkdir -m "$mode" "${dir}/k${mode}"
    check_key_dir "${dir}/k${mode}"
  done
}

@test "check_key_dir refuses a directory group or others can write, with exit 2" {
  for mode in 770 707 777 1777; do
    mkdir -m "$mode" "${dir}/k${mode}"
    run --separate-stderr check_key_dir "${dir}/k${mode}"
    [ "$status" -eq 2 ]
    [[ "$stderr" == "ERROR: keyPath ${dir}/k${mode} is writable by group or others (mode ${mode});"* ]]
  done
}

@test "check_key_dir follows a symlink to judge the real directory" {
  mkdir -m 777 "${dir}/shared"
  ln -s "${dir}/shared" "${dir}/link"
  run --separate-stderr check_key_dir "${dir}/link"
  [ "$status" -eq 2 ]
}

@test "check_key_dir: exit 4 for a directory that is not there" {
  run --separate-stderr check_key_dir "${dir}/missing"
  [ "$status" -eq 4 ]
  # stat says why on the line before
  [ "${stderr##*$'\n'}" = "ERROR: cannot stat ${dir}/missing" ]
}

@test "csr_verifies: a CSR openssl just made" {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=x \
    -keyout "${dir}/k" -out "${dir}/csr" 2>/dev/null
  csr_verifies "${dir}/csr"
}

@test "csr_verifies: a CSR whose signature was damaged, whatever openssl's exit status" {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=x \
    -keyout "${dir}/k" -out "${dir}/csr" 2>/dev/null
  # One base64 character of the last line, inside the signature.
  mapfile -t lines <"${dir}/csr"
  i=$((${#lines[@]} - 2))
  if [ "${lines[i]:0:1}" = A ]; then c=B; else c=A; fi
  lines[i]="${c}${lines[i]:1}"
  printf '%s\n' "${lines[@]}" >"${dir}/csr"
  run csr_verifies "${dir}/csr"
  [ "$status" -eq 1 ]
  [[ "$output" == *"verify fail"* ]]
}

# An openssl that prints what it is given and exits 0, as OpenSSL 1.1's req -verify does.
fake_openssl() {
  mkdir -p "${dir}/bin"
  printf '#!/bin/sh\necho "%s" >&2\nexit 0\n' "$1" >"${dir}/bin/openssl"
  chmod +x "${dir}/bin/openssl"
  PATH="${dir}/bin:${PATH}"
}

@test "csr_verifies reads the verdict of OpenSSL 1.1 and 3 alike, not the exit status" {
  touch "${dir}/csr"
  fake_openssl "verify failure"
  run csr_verifies "${dir}/csr"
  [ "$status" -eq 1 ]
  [ "$output" = "verify failure" ]
  fake_openssl "unable to load X509 request"
  run csr_verifies "${dir}/csr"
  [ "$status" -eq 1 ]
  fake_openssl "verify OK"
  csr_verifies "${dir}/csr"
  fake_openssl "Certificate request self-signature verify OK"
  csr_verifies "${dir}/csr"
}

@test "find_own_rotation: the node takes the entry that names it, among up to 50" {
  me=mi-0123456789abcdef0
  entries="i-01234567=r-other"
  for i in $(seq 2 49); do entries+=" mi-$(printf '%017x' "$i")=r-${i}"; done
  find_own_rotation "$me" "${entries} ${me}=r-mine"
  [ "$host_id" = "$me" ]
  [ "$rotation_id" = r-mine ]
}

@test "find_own_rotation refuses, with exit 2, a batch that does not name this node exactly once" {
  me=mi-0123456789abcdef0
  run --separate-stderr find_own_rotation "$me" "i-01234567=r-1"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: rotations does not name this node (${me})" ]
  run --separate-stderr find_own_rotation "$me" "${me}=r-1 ${me}=r-2"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: rotations names ${me} twice" ]
  entries="${me}=r-0"
  for i in $(seq 1 50); do entries+=" mi-$(printf '%017x' "$i")=r-${i}"; done
  run --separate-stderr find_own_rotation "$me" "$entries"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: rotations must name 1 to 50 nodes, not 51" ]
}

@test "find_own_rotation refuses malformed entries and a missing or foreign node ID" {
  me=mi-0123456789abcdef0
  for bad in "" "${me}" "${me}=" "${me}=a  i-01234567=b" "${me}=*" "${me}=a;b" "MI-0123=a"; do
    run --separate-stderr find_own_rotation "$me" "$bad"
    [ "$status" -eq 2 ] || { echo "accepted: '$bad'"; false; }
    [[ "$stderr" == "ERROR: invalid rotations entry "* ]]
  done
  run --separate-stderr find_own_rotation "" "${me}=a"
  [ "$status" -eq 2 ]
  [[ "$stderr" == "ERROR: AWS_SSM_INSTANCE_ID is not set"* ]]
  run --separate-stderr find_own_rotation "host-1" "${me}=a"
  [ "$status" -eq 2 ]
  [[ "$stderr" == "ERROR: AWS_SSM_INSTANCE_ID is not a managed node ID"* ]]
}

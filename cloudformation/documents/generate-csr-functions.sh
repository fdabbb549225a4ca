# GenerateCsr's own helpers, inlined by render.py where generate-csr.sh sources this file.
# shellcheck shell=bash
# shellcheck disable=SC2154 # re_rotation (patterns.sh) and own_entry (find_own_entry): prologue.sh, sourced by the script

# This node's ID and rotation, in host_id and rotation_id: the node is the one SSM Agent names
# ($1, AWS_SSM_INSTANCE_ID), its rotation the entry of the command's `rotations` ($2) that names
# it (find_own_entry, prologue.sh). The CSR is made for that ID, so a node can only ask for its own
# certificate, and CertIssue checks the CSR against the node the status event names.
# shellcheck disable=SC2034 # rotation_id is this function's result
find_own_rotation() {
  find_own_entry "$1" "$2" GenerateCsr rotations nodeId=rotationId rotation_ok
  rotation_id="$own_entry"
}

# What follows `nodeId=` in a `rotations` entry: the rotation ID.
rotation_ok() {
  [[ "$1" =~ $re_rotation ]]
}

# The `openssl genpkey` arguments for a key algorithm, in the array genpkey_args.
# shellcheck disable=SC2034 # genpkey_args is this function's result, read by the caller
set_genpkey_args() {
  case "$1" in
    RSA_2048 | RSA_3072 | RSA_4096)
      genpkey_args=(-algorithm RSA -pkeyopt "rsa_keygen_bits:${1#RSA_}")
      ;;
    EC_prime256v1 | EC_secp384r1)
      genpkey_args=(-algorithm EC -pkeyopt "ec_paramgen_curve:${1#EC_}" -pkeyopt ec_param_enc:named_curve)
      ;;
    *)
      fail 2 "invalid keyAlgorithm: $1"
      ;;
  esac
}

# Create a missing directory (0700 from umask 077, parents included); it must be writable.
ensure_dir() {
  local name="$1" dir="$2"
  if [ ! -d "$dir" ]; then
    mkdir -p -- "$dir" 2>/dev/null || fail 4 "cannot create ${name} directory ${dir}"
  fi
  [ -w "$dir" ] || fail 4 "${name} directory ${dir} is not writable"
}

# Refuse a key directory that others can write to: they could replace the key between our steps.
check_key_dir() {
  check_dir_guarded keyPath "$1" "keep a private key"
}

# The CSR's self-signature verifies. The verdict is read from the output ("verify OK", no
# "fail"): `openssl req -verify` exits 0 on a failed verification before OpenSSL 3, and some 3.0
# releases do too. Prints openssl's output when the verification fails.
csr_verifies() {
  local out rc=0
  out=$(openssl req -in "$1" -noout -verify 2>&1) || rc=$?
  if [ "$rc" = 0 ] && [[ "$out" == *"verify OK"* ]] && [[ "$out" != *fail* ]]; then
    return 0
  fi
  printf '%s\n' "$out"
  return 1
}

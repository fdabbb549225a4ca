# GenerateCsr's own helpers, inlined by render.py where generate-csr.sh sources this file.
# shellcheck shell=bash

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

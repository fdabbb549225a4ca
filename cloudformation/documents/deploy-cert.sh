if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# DeployCert: verify the issued certificate against the staged key and the chain, then swap it in.
# One command serves up to 50 nodes, each taking its rotation and certificate from the entry of
# `certificates` that names its managed-node ID (AWS_SSM_INSTANCE_ID, set by SSM Agent). Nothing
# live is replaced before every check has passed; a swap a crash interrupted is completed by the
# next run of this document or of GenerateCsr (swap.sh). On success stdout is
#   ROTATION <rotationId>
#   DEPLOYED serial=<hex serial> notAfter=<openssl date, e.g. Nov 28 10:15:30 2026 GMT>
#   RELOAD_HOOK_FAILED <status>      only when the reload hook failed (the swap stands, exit 0)
# Errors: one "ERROR: <reason>" line on stderr, staged certificate/chain removed, live files
# untouched, and a non-zero exit:
#   2 invalid parameter, or a directory others can write to (or another user owns), or a
#     symbolic link this script did not make at a published path,
#   3 openssl not found, 4 staged key missing or unreadable,
#   5 certificate/chain not decodable, 6 certificate key differs from the staged key,
#   7 certificate subject is not CN=<nodeId> or not an end-entity certificate,
#   8 chain verification or validity period failed, 9 signing helper check failed,
#   10 filesystem error while staging or swapping, 1 unexpected failure.
set -euo pipefail
set -o errtrace
umask 077

certificates='{{ certificates }}'
cert_path='{{ certPath }}'
key_path='{{ keyPath }}'
cacert_path='{{ cacertPath }}'
signing_helper_path='{{ signingHelperPath }}'
chain_b64='{{ chain }}'
require_signing_helper='{{ requireSigningHelper }}'
trust_anchor_arn='{{ trustAnchorArn }}'
profile_arn='{{ profileArn }}'
role_arn='{{ roleArn }}'
reload_hook='{{ reloadHook }}'

export LC_ALL=C
fs_error=10
staged_files_written=0
committed=0
staged_cert=''
staged_chain=''
staged_generation=''

# shellcheck source=prologue.sh
. "$(dirname "${BASH_SOURCE[0]}")/prologue.sh"
# shellcheck source=swap.sh
. "$(dirname "${BASH_SOURCE[0]}")/swap.sh"
# shellcheck source=deploy-cert-functions.sh
. "$(dirname "${BASH_SOURCE[0]}")/deploy-cert-functions.sh"

# A run that stops before the journal is written takes its staged files away; once it is
# written, they are the swap's and stay for whichever run completes it.
cleanup() {
  if [ "$committed" != 1 ] && [ "$staged_files_written" = 1 ]; then
    rm -f -- "$staged_cert" "$staged_chain"
    [ -z "$staged_generation" ] || rm -rf -- "$staged_generation"
  fi
}
trap cleanup EXIT
trap 'fail 1 "unexpected failure at line ${LINENO}"' ERR

find_own_certificate "${AWS_SSM_INSTANCE_ID:-}" "$certificates"
check_path_param certPath "$cert_path"
check_path_param keyPath "$key_path"
check_path_param cacertPath "$cacert_path"
check_path_param signingHelperPath "$signing_helper_path"
[ -z "$reload_hook" ] || check_path_param reloadHook "$reload_hook"
[[ "$chain_b64" =~ $re_b64 && ${#chain_b64} -le "$re_b64_max" ]] || fail 2 "invalid chain: expected one line of base64"
[[ "$trust_anchor_arn" =~ $re_trust_anchor ]] || fail 2 "invalid trustAnchorArn"
[[ "$profile_arn" =~ $re_profile ]] || fail 2 "invalid profileArn"
[[ "$role_arn" =~ $re_role ]] || fail 2 "invalid roleArn"
case "$require_signing_helper" in
  true | false) ;;
  *) fail 2 "invalid requireSigningHelper: expected true or false" ;;
esac
if [ "$require_signing_helper" = true ] && { [ -z "$trust_anchor_arn" ] || [ -z "$profile_arn" ] || [ -z "$role_arn" ]; }; then
  fail 2 "requireSigningHelper is true but trustAnchorArn, profileArn and roleArn are not all set"
fi

command -v openssl >/dev/null 2>&1 || fail 3 "openssl not found on this host"

live_cert="${cert_path}/${host_id}.crt"
live_key="${key_path}/${host_id}.key"
live_chain="${cacert_path}/ca_chain_certificate.crt"
staged_cert="${live_cert}.next"
staged_key="${live_key}.next"
staged_chain="${live_chain}.next"

# 0. The directories: the key's must exist (GenerateCsr made it), the others are made if missing;
#    none may be writable by others, and no published path may be a symlink we did not make.
#    Then a swap a crash interrupted is completed, and what a crash left is cleared.
[ -d "$key_path" ] || fail 4 "staged private key ${staged_key} not found (run GenerateCsr first)"
check_dir_guarded keyPath "$key_path" "keep a private key"
for dir in "$cert_path" "$cacert_path"; do
  if [ ! -d "$dir" ]; then
    mkdir -p -- "$dir" 2>/dev/null || fail 10 "cannot create directory ${dir}"
  fi
done
check_dir_guarded certPath "$cert_path" "publish a certificate"
check_dir_guarded cacertPath "$cacert_path" "publish a CA chain"
check_published_paths "$cert_path" "$key_path" "$cacert_path" "$host_id"
finish_interrupted_swap "$key_path" "$host_id"
# What a crash after the last swap left of the previous pair, in the certificate directory too.
remove_previous_pair "$key_path" "$cert_path" "$host_id" ||
  fail 10 "cannot remove the previous pair"
remove_leftovers "$cert_path" "$host_id"
remove_leftovers "$cacert_path" "$host_id"

# The staged key from GenerateCsr must be there. A repeated DeployCert for a certificate that is
# already live (its key was consumed by the first run) succeeds without changing anything.
if [ ! -f "$staged_key" ] || [ -L "$staged_key" ]; then
  if [ -f "$live_cert" ] && [ -f "$live_key" ]; then
    tmp_check=$(mktemp) || fail 10 "cannot create a temporary file"
    if printf '%s' "$certificate_b64" | base64 -d >"$tmp_check" 2>/dev/null && same_content "$tmp_check" "$live_cert"; then
      rm -f -- "$tmp_check"
      printf 'NOTE: this certificate is already deployed; nothing changed\n' >&2
      printf 'ROTATION %s\n' "$rotation_id"
      cert_facts "$live_cert"
      exit 0
    fi
    rm -f -- "$tmp_check"
  fi
  fail 4 "staged private key ${staged_key} not found (run GenerateCsr first)"
fi
if ! key_pub=$(openssl pkey -in "$staged_key" -pubout 2>/dev/null); then
  fail 4 "staged private key ${staged_key} is not readable by openssl"
fi

# 1. Stage the certificate and chain beside the live files: the certificate as {host}.crt.next,
#    or, when it shares the key's directory, in a new generation directory there.
staged_files_written=1
if [ "$cert_path" -ef "$key_path" ]; then
  generation=$(new_generation "$key_path" "$host_id") || fail 10 "cannot create a generation directory in ${key_path}"
  staged_generation="${key_path}/${generation}"
  staged_cert="${staged_generation}/${host_id}.crt"
else
  generation=-
fi
decode_pem certificate "$certificate_b64" "$staged_cert" "$host_id"
decode_pem chain "$chain_b64" "$staged_chain" "$host_id"

# 2. The certificate must carry the staged key's public key.
if ! cert_pub=$(openssl x509 -in "$staged_cert" -noout -pubkey 2>/dev/null); then
  fail 5 "cannot read the public key of the certificate"
fi
if [ -z "$cert_pub" ] || [ "$cert_pub" != "$key_pub" ]; then
  fail 6 "the certificate's public key does not match the staged private key ${staged_key}"
fi

# 3. Subject must be exactly one CN, equal to the host ID; the certificate must not be a CA.
if ! subject=$(openssl x509 -in "$staged_cert" -noout -subject -nameopt sep_multiline,sname,utf8,esc_ctrl 2>/dev/null); then
  fail 5 "cannot read the certificate subject"
fi
cn_lines=$(printf '%s\n' "$subject" | grep -E '^[[:space:]]+CN=' || true)
cn_value=$(printf '%s\n' "$cn_lines" | sed -e 's/^[[:space:]]*CN=//')
if [ "$(printf '%s\n' "$cn_lines" | grep -c 'CN=' || true)" != 1 ] || [ "$cn_value" != "$host_id" ]; then
  fail 7 "certificate subject CN '$(one_line "$cn_value")' does not equal hostId ${host_id}"
fi
if openssl x509 -in "$staged_cert" -noout -text 2>/dev/null | grep -q 'CA:TRUE'; then
  fail 7 "the certificate is a CA certificate, not an end-entity certificate"
fi

# 4. Validity now, and the chain (openssl verify also checks every certificate's dates).
if ! openssl x509 -in "$staged_cert" -noout -checkend 0 >/dev/null 2>&1; then
  fail 8 "the certificate has expired"
fi
if ! out=$(chain_verifies "$staged_chain" "$staged_cert"); then
  fail 8 "the certificate does not verify against the chain: $(one_line "$out")"
fi

# 5. Optionally, prove the pair works: the signing helper must return a session.
if [ "$require_signing_helper" = true ]; then
  helper="${signing_helper_path}/aws_signing_helper"
  if [ ! -f "$helper" ] || [ ! -x "$helper" ]; then
    fail 9 "signing helper ${helper} not found or not executable (requireSigningHelper is true)"
  fi
  # The output holds temporary credentials: it is only searched, never printed.
  helper_rc=0
  helper_out=$(run_bounded "$helper" credential-process \
    --certificate "$staged_cert" --private-key "$staged_key" \
    --trust-anchor-arn "$trust_anchor_arn" --profile-arn "$profile_arn" --role-arn "$role_arn" 2>&1) || helper_rc=$?
  if [ "$helper_rc" != 0 ]; then
    reason=$(printf '%s\n' "$helper_out" | grep -v -e 'SecretAccessKey' -e 'SessionToken' | head -n 1 || true)
    helper_out=''
    fail 9 "aws_signing_helper credential-process failed (exit ${helper_rc}): $(one_line "$reason")"
  fi
  case "$helper_out" in
    *'"AccessKeyId"'*) helper_out='' ;;
    *)
      helper_out=''
      fail 9 "aws_signing_helper credential-process returned no session (no AccessKeyId)"
      ;;
  esac
fi

facts=$(cert_facts "$staged_cert") || exit $?

# 6. Swap (swap.sh): modes set, everything staged flushed to disk, the journal written; from
#    there on the swap only rolls forward, here or, after a crash, in the next run.
chmod 0644 -- "$staged_cert" "$staged_chain" || fail 10 "cannot set mode 0644 on the staged files"
chmod 0400 -- "$staged_key" || fail 10 "cannot set mode 0400 on the staged key"
if [ -n "$staged_generation" ]; then
  ln -- "$staged_key" "${staged_generation}/${host_id}.key" 2>/dev/null ||
    cp -p -- "$staged_key" "${staged_generation}/${host_id}.key" ||
    fail 10 "cannot put the staged key into ${staged_generation}"
fi
flush_to_disk "$staged_cert" "$staged_chain" "$staged_key" "${staged_cert%/*}" "$cacert_path" "$key_path" ||
  fail 10 "cannot flush the staged files to disk"
write_journal "$key_path" "$cert_path" "$cacert_path" "$host_id" "$generation" ||
  fail 10 "cannot write the swap journal in ${key_path}"
committed=1
complete_swap "$key_path" "$cert_path" "$cacert_path" "$host_id" "$generation"

printf 'ROTATION %s\n' "$rotation_id"
printf '%s\n' "$facts"

# 7. Optional reload hook. The new pair is valid and in place whatever the hook does.
if [ -n "$reload_hook" ]; then
  run_reload_hook "$reload_hook" "$live_cert" "$live_key" "$live_chain"
fi

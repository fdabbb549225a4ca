#!/usr/bin/env bats
# shellcheck source-path=SCRIPTDIR/.. disable=SC2154 # bats' run sets $output and $stderr
# The helpers and patterns both documents share (prologue.sh, patterns.sh), exercised one by one.
# The end-to-end suite runs the rendered scripts on emulated hosts; these pin each rule down.

bats_require_minimum_version 1.5.0

setup() {
  set -euo pipefail
  # shellcheck source=prologue.sh
  . "${BATS_TEST_DIRNAME}/../prologue.sh"
}

@test "fail: one ERROR line on stderr, nothing on stdout, the given exit code" {
  run --separate-stderr fail 7 "the reason" "in two words"
  [ "$status" -eq 7 ]
  [ "$output" = "" ]
  [ "$stderr" = "ERROR: the reason in two words" ]
}

@test "one_line: newlines and carriage returns become spaces, at most 300 characters" {
  run one_line $'first\r\nsecond\nthird'
  [ "$output" = "first  second third" ]
  long=$(printf 'x%.0s' {1..400})
  run one_line "$long"
  [ "${#output}" -eq 300 ]
}

@test "check_path_param accepts absolute paths of the safe characters" {
  for p in / /etc/pki/rolesanywhere /usr/local/bin /a/b.c_d+e-f /opt/x/.../y /a/..b /a/b..; do
    check_path_param certPath "$p"
  done
  max="/$(printf 'a%.0s' {1..254})"
  [ "${#max}" -eq 255 ]
  check_path_param certPath "$max"
}

@test "check_path_param refuses relative, unsafe, over-long and '..' paths with exit 2" {
  long="/$(printf 'a%.0s' {1..255})"
  # shellcheck disable=SC2016 # the $ and backticks are the point
  for p in '' etc/pki ./x '/a b' "/a'b" '/a"b' '/a$b' '/a`id`' '/a;b' $'/a\nb' '/a\b' '/a*' "$long"; do
    run --separate-stderr check_path_param keyPath "$p"
    [ "$status" -eq 2 ] || { echo "accepted: $p"; false; }
    [ "$stderr" = "ERROR: invalid keyPath: must be an absolute path of [A-Za-z0-9._/+-]" ]
  done
  for p in /.. /a/.. /a/../b /../etc; do
    run --separate-stderr check_path_param keyPath "$p"
    [ "$status" -eq 2 ]
    [ "$stderr" = "ERROR: invalid keyPath: '..' path components are not allowed" ]
  done
}

@test "re_host: mi- with 17 hex digits, i- with 8 or 17, lower case only" {
  for h in mi-0123456789abcdef0 i-01234567 i-0123456789abcdef0; do
    [[ "$h" =~ $re_host ]]
  done
  for h in mi-0123456789abcdef i-0123456789 mi-0123456789ABCDEF0 MI-0123456789abcdef0 \
    x-01234567 'mi-0123456789abcdef0 ' $'mi-0123456789abcdef0\n' "mi-0123456789abcdef0'"; do
    [[ ! "$h" =~ $re_host ]] || { echo "accepted: $h"; false; }
  done
}

@test "re_rotation, re_bool, re_key_algorithm: exact words only" {
  [[ a-Z-09 =~ $re_rotation ]]
  [[ ! "" =~ $re_rotation ]]
  [[ ! a_b =~ $re_rotation ]]
  [[ ! "$(printf 'a%.0s' {1..65})" =~ $re_rotation ]]
  [[ true =~ $re_bool ]]
  [[ false =~ $re_bool ]]
  [[ ! True =~ $re_bool ]]
  [[ ! "" =~ $re_bool ]]
  for a in RSA_2048 RSA_3072 RSA_4096 EC_prime256v1 EC_secp384r1; do [[ "$a" =~ $re_key_algorithm ]]; done
  [[ ! RSA_1024 =~ $re_key_algorithm ]]
  [[ ! EC_secp521r1 =~ $re_key_algorithm ]]
}

@test "re_optional_path is re_path or empty; re_b64_param is re_b64 bounded at re_b64_max" {
  [[ "" =~ $re_optional_path ]]
  [[ /usr/local/bin/reload =~ $re_optional_path ]]
  [[ ! "" =~ $re_path ]]
  [[ ! 'x' =~ $re_optional_path ]]
  [ "$re_b64_param" = "^[A-Za-z0-9+/=]{1,${re_b64_max}}\$" ]
  [[ "TUlJQg==" =~ $re_b64 ]]
  [[ ! "TUl JQg==" =~ $re_b64 ]]
  [[ ! "" =~ $re_b64 ]]
}

@test "re_certificates: 1 to 50 nodeId=rotationId=certificate entries, single spaces between" {
  one="mi-0123456789abcdef0=r-1=TUlJQg=="
  [[ "$one" =~ $re_certificates ]]
  batch="$one"
  for i in $(seq 2 50); do batch+=" i-$(printf '%08x' "$i")=r-${i}=QUJD"; done
  [[ "$batch" =~ $re_certificates ]]
  [[ ! "${batch} i-ffffffff=r=QUJD" =~ $re_certificates ]]
  for bad in "" "$one " " $one" "${one}  ${one}" "mi-0123456789abcdef0=r-1" "mi-0123456789abcdef0=r-1=" \
    "mi-0123456789abcdef0=r-1=QU JD" "mi-0123456789abcdef0==QUJD" "host=r-1=QUJD" "${one};id"; do
    [[ ! "$bad" =~ $re_certificates ]] || { echo "accepted: $bad"; false; }
  done
}

@test "the ARN patterns accept empty or this stack's kind of ARN, nothing else" {
  uuid=0123abcd-4567-89ab-cdef-0123456789ab
  for v in "" "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/${uuid}" \
    "arn:aws-us-gov:rolesanywhere:us-gov-west-1:111122223333:trust-anchor/${uuid}"; do
    [[ "$v" =~ $re_trust_anchor ]]
  done
  [[ "arn:aws:rolesanywhere:us-east-1:111122223333:profile/${uuid}" =~ $re_profile ]]
  [[ "arn:aws:iam::111122223333:role/path/Host-Role_1" =~ $re_role ]]
  [[ "" =~ $re_role ]]
  [[ ! "arn:aws:rolesanywhere:us-east-1:111122223333:profile/${uuid}" =~ $re_trust_anchor ]]
  [[ ! "arn:aws:iam::111122223333:role/a b" =~ $re_role ]]
  [[ ! "arn:aws:iam::111122223333:role/a'b" =~ $re_role ]]
}

@test "check_dir_guarded: mode and owner of the directory itself, the purpose in the refusal" {
  fs_error=10
  dir="${BATS_TEST_TMPDIR}"
  for mode in 700 755 750 500; do
    mkdir -m "$mode" "${dir}/ok${mode}"
    check_dir_guarded certPath "${dir}/ok${mode}" "publish a certificate"
  done
  mkdir -m 775 "${dir}/group"
  run --separate-stderr check_dir_guarded certPath "${dir}/group" "publish a certificate"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: certPath ${dir}/group is writable by group or others (mode 775); refusing to publish a certificate there" ]
  run --separate-stderr check_dir_guarded cacertPath "${dir}/missing" "publish a CA chain"
  [ "$status" -eq 10 ]
  [ "${stderr##*$'\n'}" = "ERROR: cannot stat ${dir}/missing" ]
}

@test "check_dir_guarded refuses a directory of another user (when the test can make one)" {
  fs_error=10
  other="${BATS_TEST_TMPDIR}/other"
  mkdir -m 755 "$other"
  if [ "$EUID" = 0 ]; then
    chown 65534 "$other"
  else
    skip "only root can give a directory to another user"
  fi
  run --separate-stderr check_dir_guarded certPath "$other" "publish a certificate"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: certPath ${other} belongs to user 65534, not to this one or root; refusing to publish a certificate there" ]
}

@test "temp_file and temp_name: the host's temporary names in the directory, fresh each time" {
  dir="${BATS_TEST_TMPDIR}"
  a=$(temp_file "$dir" mi-0123456789abcdef0)
  [ -f "$a" ]
  [ "$(stat -c '%a' "$a")" = 600 ]
  [[ "$a" == "${dir}/.mi-0123456789abcdef0.tmp."?????? ]]
  b=$(temp_name "$dir" mi-0123456789abcdef0)
  [ ! -e "$b" ]
  [[ "$b" == "${dir}/.mi-0123456789abcdef0.tmp."?????? ]]
  [ "$a" != "$b" ]
}

@test "flush_to_disk takes files and directories" {
  dir="${BATS_TEST_TMPDIR}"
  touch "${dir}/f"
  flush_to_disk "${dir}/f" "$dir"
}

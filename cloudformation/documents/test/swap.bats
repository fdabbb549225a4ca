#!/usr/bin/env bats
# shellcheck source-path=SCRIPTDIR/.. disable=SC2154 # bats' run sets $output and $stderr
# The swap (swap.sh): the journal, each step alone and run again from the state a crash leaves,
# the published-path rules, the leftovers. The files hold words, not certificates: the swap
# never reads them. The suite's host_swap tests kill the real scripts at every point.

bats_require_minimum_version 1.5.0

setup() {
  set -euo pipefail
  umask 077
  # shellcheck source=prologue.sh
  . "${BATS_TEST_DIRNAME}/../prologue.sh"
  # shellcheck source=swap.sh
  . "${BATS_TEST_DIRNAME}/../swap.sh"
  fs_error=10
  host=mi-0123456789abcdef0
  dir="${BATS_TEST_TMPDIR}"
  certs="${dir}/certs"
  keys="${dir}/certs/private"
  mkdir -p "$keys"
}

put() {
  printf '%s\n' "$2" >"$1"
}

# What a file holds ("-" when it is missing), through symlinks.
holds() {
  if [ -f "$1" ]; then cat -- "$1"; else echo -; fi
}

no_leftovers() {
  [ "$(find "$dir" -name ".${host}.tmp.*" | wc -l)" -eq 0 ]
}

@test "write_journal and read_journal: what one writes the other reads" {
  write_journal "$keys" "$certs" "${dir}/ca" "$host" -
  [ -f "${keys}/.${host}.swap" ]
  read_journal "${keys}/.${host}.swap" "$host"
  [ "$journal_cert_dir" = "$certs" ]
  [ "$journal_cacert_dir" = "${dir}/ca" ]
  [ "$journal_generation" = - ]
  write_journal "$keys" "$certs" "${dir}/ca" "$host" ".${host}.pair.AbC123"
  read_journal "${keys}/.${host}.swap" "$host"
  [ "$journal_generation" = ".${host}.pair.AbC123" ]
  no_leftovers
}

@test "read_journal refuses anything write_journal would not have written" {
  j="${keys}/.${host}.swap"
  good=('certrotation-swap 1' "host ${host}" "certPath ${certs}" "cacertPath ${certs}" 'generation -')
  printf '%s\n' "${good[@]}" >"$j"
  read_journal "$j" "$host"
  run read_journal "$j" mi-00000000000000001
  [ "$status" -ne 0 ]
  for bad in 'certrotation-swap 2' 'certPath relative/dir' 'cacertPath /etc/../root' \
    'generation ../../etc' "generation .${host}.pair.x" 'rm -rf /' "certPath /a b"; do
    printf '%s\n' "${good[@]}" "$bad" >"$j"
    run read_journal "$j" "$host"
    [ "$status" -ne 0 ]
  done
}

@test "keep_prev: a hard link replacing the older .prev in one rename" {
  put "${certs}/h.crt" live
  put "${certs}/h.crt.prev" older
  keep_prev "${certs}/h.crt" "${certs}/h.crt.prev" "$host"
  [ "$(holds "${certs}/h.crt.prev")" = live ]
  [ "${certs}/h.crt" -ef "${certs}/h.crt.prev" ]
  no_leftovers
}

@test "keep_prev again on the same files (a run after a crash) changes nothing" {
  put "${certs}/h.crt" live
  keep_prev "${certs}/h.crt" "${certs}/h.crt.prev" "$host"
  keep_prev "${certs}/h.crt" "${certs}/h.crt.prev" "$host"
  [ "${certs}/h.crt" -ef "${certs}/h.crt.prev" ]
  no_leftovers
}

@test "keep_prev: nothing live, nothing kept; a symlink at .prev is replaced, not written through" {
  keep_prev "${certs}/none" "${certs}/none.prev" "$host"
  [ ! -e "${certs}/none.prev" ]
  put "${dir}/victim" precious
  ln -s "${dir}/victim" "${certs}/h.crt.prev"
  put "${certs}/h.crt" live
  keep_prev "${certs}/h.crt" "${certs}/h.crt.prev" "$host"
  [ ! -L "${certs}/h.crt.prev" ]
  [ "$(holds "${certs}/h.crt.prev")" = live ]
  [ "$(holds "${dir}/victim")" = precious ]
}

@test "keep_prev copies, keeping the mode, where the live file is one of our symlinks" {
  mkdir "${keys}/gen"
  put "${keys}/gen/h.key" key
  chmod 0400 "${keys}/gen/h.key"
  ln -s gen/h.key "${keys}/h.key"
  keep_prev "${keys}/h.key" "${keys}/h.key.prev" "$host"
  [ ! -L "${keys}/h.key.prev" ]
  [ "$(holds "${keys}/h.key.prev")" = key ]
  [ "$(stat -c '%a' "${keys}/h.key.prev")" = 400 ]
}

@test "point_link makes or repoints a symlink, and leaves a right one alone" {
  point_link "${certs}/link" a "$host"
  [ "$(readlink "${certs}/link")" = a ]
  point_link "${certs}/link" b "$host"
  [ "$(readlink "${certs}/link")" = b ]
  before=$(stat -c '%i' "${certs}/link")
  point_link "${certs}/link" b "$host"
  [ "$(stat -c '%i' "${certs}/link")" = "$before" ]
  no_leftovers
}

@test "check_published_path: a file, nothing, or our own symlink pass" {
  put "${certs}/a" x
  check_published_path "${certs}/a" ''
  check_published_path "${certs}/missing" ''
  ln -s ".${host}.pair/${host}.crt" "${certs}/${host}.crt"
  check_published_path "${certs}/${host}.crt" ".${host}.pair/${host}.crt"
}

@test "check_published_path refuses any other symlink, and a directory, with exit 2" {
  ln -s /etc/passwd "${certs}/${host}.crt"
  run --separate-stderr check_published_path "${certs}/${host}.crt" ".${host}.pair/${host}.crt"
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: ${certs}/${host}.crt is a symbolic link (to /etc/passwd) this script did not make; refusing to follow or replace it" ]
  ln -s ".${host}.pair/${host}.crt" "${certs}/chain"
  run --separate-stderr check_published_path "${certs}/chain" ''
  [ "$status" -eq 2 ]
  mkdir "${certs}/d"
  run --separate-stderr check_published_path "${certs}/d" ''
  [ "$status" -eq 2 ]
  [ "$stderr" = "ERROR: ${certs}/d is not a regular file; refusing to replace it" ]
}

@test "check_pair_pointers: a pointer must name a generation" {
  check_pair_pointers "$certs" "$host"
  ln -s ".${host}.pair.AbC123" "${certs}/.${host}.pair"
  check_pair_pointers "$certs" "$host"
  ln -s /etc "${certs}/.${host}.pair.prev"
  run --separate-stderr check_pair_pointers "$certs" "$host"
  [ "$status" -eq 2 ]
  [[ "$stderr" == "ERROR: ${certs}/.${host}.pair.prev is not a symbolic link to a generation"* ]]
}

# Two directories: a live pair, and the new one staged.
stage_two_directories() {
  put "${certs}/${host}.crt" old-cert
  put "${keys}/${host}.key" old-key
  put "${certs}/${host}.crt.next" new-cert
  put "${keys}/${host}.key.next" new-key
}

assert_two_directories_swapped() {
  [ "$(holds "${certs}/${host}.crt")" = new-cert ]
  [ "$(holds "${keys}/${host}.key")" = new-key ]
  [ "$(holds "${certs}/${host}.crt.prev")" = old-cert ]
  [ "$(holds "${keys}/${host}.key.prev")" = old-key ]
  [ ! -e "${certs}/${host}.crt.next" ]
  [ ! -e "${keys}/${host}.key.next" ]
}

@test "swap_files: both kept as .prev, both moved in" {
  stage_two_directories
  swap_files "${certs}/${host}.crt" "${keys}/${host}.key" "$host"
  assert_two_directories_swapped
  swap_files "${certs}/${host}.crt" "${keys}/${host}.key" "$host"
  assert_two_directories_swapped
  no_leftovers
}

@test "swap_files after a crash between the two renames moves the certificate in" {
  stage_two_directories
  keep_prev "${keys}/${host}.key" "${keys}/${host}.key.prev" "$host"
  keep_prev "${certs}/${host}.crt" "${certs}/${host}.crt.prev" "$host"
  mv "${keys}/${host}.key.next" "${keys}/${host}.key"
  swap_files "${certs}/${host}.crt" "${keys}/${host}.key" "$host"
  assert_two_directories_swapped
}

@test "swap_files after a crash between the two .prev links" {
  stage_two_directories
  put "${certs}/${host}.crt.prev" older-cert
  keep_prev "${keys}/${host}.key" "${keys}/${host}.key.prev" "$host"
  swap_files "${certs}/${host}.crt" "${keys}/${host}.key" "$host"
  assert_two_directories_swapped
}

@test "swap_files drops a swap whose staged certificate is gone: the live pair stays" {
  stage_two_directories
  rm "${certs}/${host}.crt.next"
  run --separate-stderr swap_files "${certs}/${host}.crt" "${keys}/${host}.key" "$host"
  [ "$status" -eq 0 ]
  [[ "$stderr" == NOTE:*"the swap is dropped"* ]]
  [ "$(holds "${certs}/${host}.crt")" = old-cert ]
  [ "$(holds "${keys}/${host}.key")" = old-key ]
}

# One directory: a generation holding the new pair, and the staged key beside it.
stage_generation() {
  local g
  g=$(new_generation "$keys" "$host")
  put "${keys}/${g}/${host}.crt" "$1-cert"
  put "${keys}/${g}/${host}.key" "$1-key"
  put "${keys}/${host}.key.next" "$1-key"
  printf '%s\n' "$g"
}

@test "new_generation: a fresh directory with the mode of the one it is in" {
  chmod 0750 "$keys"
  g=$(new_generation "$keys" "$host")
  [[ "$g" == ".${host}.pair."?????? ]]
  [ "$(stat -c '%a' "${keys}/${g}")" = 750 ]
}

@test "switch_generation: plain files become a generation, then the new one is live, the old .prev" {
  put "${keys}/${host}.crt" old-cert
  put "${keys}/${host}.key" old-key
  chmod 0400 "${keys}/${host}.key"
  put "${keys}/${host}.crt.prev" older-cert
  g=$(stage_generation new)
  switch_generation "$keys" "$host" "$g"
  [ "$(readlink "${keys}/${host}.crt")" = ".${host}.pair/${host}.crt" ]
  [ "$(readlink "${keys}/${host}.key.prev")" = ".${host}.pair.prev/${host}.key" ]
  [ "$(readlink "${keys}/.${host}.pair")" = "$g" ]
  [ "$(holds "${keys}/${host}.crt")" = new-cert ]
  [ "$(holds "${keys}/${host}.key")" = new-key ]
  [ "$(holds "${keys}/${host}.crt.prev")" = old-cert ]
  [ "$(holds "${keys}/${host}.key.prev")" = old-key ]
  [ "$(stat -L -c '%a' "${keys}/${host}.key.prev")" = 400 ]
  [ ! -e "${keys}/${host}.key.next" ]
  no_leftovers
}

@test "switch_generation: a first pair, no .prev names; the next swap makes them" {
  g=$(stage_generation first)
  switch_generation "$keys" "$host" "$g"
  [ "$(holds "${keys}/${host}.crt")" = first-cert ]
  [ ! -L "${keys}/${host}.crt.prev" ]
  g2=$(stage_generation second)
  switch_generation "$keys" "$host" "$g2"
  [ "$(holds "${keys}/${host}.key")" = second-key ]
  [ "$(holds "${keys}/${host}.key.prev")" = first-key ]
  [ "$(readlink "${keys}/.${host}.pair.prev")" = "$g" ]
}

@test "switch_generation again after it switched (a crash before the journal went) changes nothing" {
  g=$(stage_generation first)
  switch_generation "$keys" "$host" "$g"
  g2=$(stage_generation second)
  switch_generation "$keys" "$host" "$g2"
  switch_generation "$keys" "$host" "$g2"
  [ "$(holds "${keys}/${host}.key")" = second-key ]
  [ "$(holds "${keys}/${host}.key.prev")" = first-key ]
}

@test "switch_generation drops a swap whose generation is incomplete" {
  g=$(stage_generation first)
  switch_generation "$keys" "$host" "$g"
  g2=$(stage_generation second)
  rm "${keys}/${g2}/${host}.crt"
  run --separate-stderr switch_generation "$keys" "$host" "$g2"
  [ "$status" -eq 0 ]
  [[ "$stderr" == NOTE:*"the swap is dropped"* ]]
  [ "$(holds "${keys}/${host}.crt")" = first-cert ]
}

@test "remove_leftovers: temporary names and generations no pointer names go, the others stay" {
  g=$(stage_generation first)
  switch_generation "$keys" "$host" "$g"
  stray=$(new_generation "$keys" "$host")
  tmp=$(temp_file "$keys" "$host")
  put "${keys}/.other.tmp.AbC123" "not ours"
  remove_leftovers "$keys" "$host"
  [ ! -e "${keys}/${stray}" ]
  [ ! -e "$tmp" ]
  [ -d "${keys}/${g}" ]
  [ -e "${keys}/.other.tmp.AbC123" ]
}

@test "remove_leftovers keeps every generation while a journal is there" {
  g=$(stage_generation first)
  write_journal "$keys" "$keys" "$keys" "$host" "$g"
  remove_leftovers "$keys" "$host"
  [ -d "${keys}/${g}" ]
}

@test "finish_interrupted_swap completes a recorded swap in two directories, chain included" {
  stage_two_directories
  put "${certs}/ca_chain_certificate.crt" old-chain
  put "${certs}/ca_chain_certificate.crt.next" new-chain
  write_journal "$keys" "$certs" "$certs" "$host" -
  run --separate-stderr finish_interrupted_swap "$keys" "$host"
  [ "$status" -eq 0 ]
  [[ "$stderr" == "NOTE: completing a swap a crash interrupted"* ]]
  [ "$(holds "${certs}/${host}.crt")" = new-cert ]
  [ "$(holds "${keys}/${host}.key")" = new-key ]
  # The swap done, the previous pair goes.
  [ ! -e "${certs}/${host}.crt.prev" ]
  [ ! -e "${keys}/${host}.key.prev" ]
  [ "$(holds "${certs}/ca_chain_certificate.crt")" = new-chain ]
  [ "$(holds "${certs}/ca_chain_certificate.crt.prev")" = old-chain ]
  [ ! -e "${keys}/.${host}.swap" ]
}

@test "finish_interrupted_swap completes a recorded swap in one directory" {
  g=$(stage_generation first)
  write_journal "$keys" "$keys" "$keys" "$host" "$g"
  finish_interrupted_swap "$keys" "$host" 2>/dev/null
  [ "$(holds "${keys}/${host}.crt")" = first-cert ]
  [ ! -e "${keys}/.${host}.swap" ]
  g2=$(stage_generation second)
  write_journal "$keys" "$keys" "$keys" "$host" "$g2"
  finish_interrupted_swap "$keys" "$host" 2>/dev/null
  [ "$(holds "${keys}/${host}.key")" = second-key ]
  # The previous generation, its pointer and its names are gone with the journal.
  [ ! -L "${keys}/${host}.crt.prev" ] && [ ! -L "${keys}/${host}.key.prev" ]
  [ ! -L "${keys}/.${host}.pair.prev" ]
  [ ! -e "${keys}/${g}" ]
  [ -d "${keys}/${g2}" ]
}

@test "remove_previous_pair: two directories, the key first; a journal keeps everything" {
  put "${certs}/${host}.crt.prev" old-cert
  put "${keys}/${host}.key.prev" old-key
  write_journal "$keys" "$certs" "$certs" "$host" -
  remove_previous_pair "$keys" "$certs" "$host"
  [ "$(holds "${keys}/${host}.key.prev")" = old-key ]
  rm "${keys}/.${host}.swap"
  # Without the certificate directory (GenerateCsr), only the key directory's .prev goes.
  remove_previous_pair "$keys" '' "$host"
  [ ! -e "${keys}/${host}.key.prev" ]
  [ "$(holds "${certs}/${host}.crt.prev")" = old-cert ]
  remove_previous_pair "$keys" "$certs" "$host"
  [ ! -e "${certs}/${host}.crt.prev" ]
  # Nothing left to remove is no error; a symlink not ours is left to the published-path checks.
  remove_previous_pair "$keys" "$certs" "$host"
  ln -s "${dir}/elsewhere" "${keys}/${host}.key.prev"
  remove_previous_pair "$keys" "$certs" "$host"
  [ -L "${keys}/${host}.key.prev" ]
}

@test "remove_previous_pair: one directory, our links and the pointer; a link not ours stays" {
  g=$(stage_generation first)
  switch_generation "$keys" "$host" "$g"
  g2=$(stage_generation second)
  switch_generation "$keys" "$host" "$g2"
  [ "$(holds "${keys}/${host}.key.prev")" = first-key ]
  remove_previous_pair "$keys" '' "$host"
  remove_leftovers "$keys" "$host"
  [ ! -L "${keys}/${host}.crt.prev" ] && [ ! -L "${keys}/${host}.key.prev" ]
  [ ! -L "${keys}/.${host}.pair.prev" ]
  [ ! -e "${keys}/${g}" ]
  [ "$(holds "${keys}/${host}.key")" = second-key ]
  ln -s "${dir}/elsewhere" "${keys}/${host}.crt.prev"
  remove_previous_pair "$keys" '' "$host"
  [ -L "${keys}/${host}.crt.prev" ]
}

@test "finish_interrupted_swap without a journal removes the previous key (GenerateCsr's start)" {
  stage_two_directories
  put "${keys}/${host}.key.prev" old-key
  finish_interrupted_swap "$keys" "$host"
  [ ! -e "${keys}/${host}.key.prev" ]
  [ "$(holds "${keys}/${host}.key")" = old-key ]
}

@test "finish_interrupted_swap: no journal, nothing but the leftovers" {
  stage_two_directories
  tmp=$(temp_file "$keys" "$host")
  run --separate-stderr finish_interrupted_swap "$keys" "$host"
  [ "$status" -eq 0 ]
  [ "$stderr" = "" ]
  [ ! -e "$tmp" ]
  [ "$(holds "${keys}/${host}.key")" = old-key ]
}

@test "finish_interrupted_swap refuses a journal it did not write, and unsafe directories in one" {
  printf 'certrotation-swap 1\nhost %s\ncertPath /etc\nbogus line\n' "$host" >"${keys}/.${host}.swap"
  run --separate-stderr finish_interrupted_swap "$keys" "$host"
  [ "$status" -eq 10 ]
  [[ "$stderr" == "ERROR: ${keys}/.${host}.swap is not a swap journal this script wrote"* ]]
  mkdir -m 777 "${dir}/open"
  write_journal "$keys" "${dir}/open" "$certs" "$host" -
  run --separate-stderr finish_interrupted_swap "$keys" "$host"
  [ "$status" -eq 2 ]
  [[ "$stderr" == "ERROR: certPath ${dir}/open is writable by group or others"* ]]
}

# The swap of a new pair into place, in steps a crash at any point cannot leave half done.
# Inlined by render.py into both documents: DeployCert swaps (write_journal, then complete_swap,
# which also removes the previous pair),
# and both documents begin with finish_interrupted_swap, which completes a swap a crash or a
# reboot interrupted before anything else happens. Needs prologue.sh.
# shellcheck shell=bash
# shellcheck disable=SC2154 # fs_error is set by the script that sources this file
#
# The protocol:
#   1. Stage everything new beside the live files and flush it to disk: the chain as
#      ca_chain_certificate.crt.next; the pair as {host}.crt.next and {host}.key.next when the
#      certificate and key directories differ, or, when they are one directory, as a generation
#      directory .{host}.pair.XXXXXX holding {host}.crt and {host}.key.
#   2. Record the intent: the journal .{host}.swap in the key directory (guarded like the key)
#      names the directories and the generation being installed ("-" for two directories). It
#      is written whole or not at all (a temporary file, flushed, renamed, directory flushed).
#   3. Roll forward, in steps that each see whether they are done, so running them again after
#      a crash is harmless (complete_swap): the chain, then the pair, each live file kept as
#      .prev first; flush the directories; remove the journal; remove what is left over.
#   4. Any later run of either document finds the journal and completes step 3 first. A journal
#      whose staged files were removed before the pair moved is dropped: the live pair stays.
#   5. Once the journal is gone the previous pair is removed (remove_previous_pair): the new
#      pair was verified before the swap and is durably in place, and the service revokes the
#      previous certificate as soon as it records the deployment, so the old pair can never
#      serve again and its private key has no reason to stay on disk. The key goes first (a
#      crash between leaves only a public certificate), and either document's next run removes
#      what a crash left (GenerateCsr knows only the key directory: a certificate .prev in
#      another directory waits for the next DeployCert).
#
# The pair in two directories moves in two renames, the key's then the certificate's: a reader
# may meet the new key with the old certificate between the two (and a crash there is what the
# journal repairs). In one directory the published names are symlinks, fixed once:
#   {host}.crt -> .{host}.pair/{host}.crt        {host}.crt.prev -> .{host}.pair.prev/{host}.crt
#   {host}.key -> .{host}.pair/{host}.key        {host}.key.prev -> .{host}.pair.prev/{host}.key
# and .{host}.pair / .{host}.pair.prev point at a generation each, so keeping the previous pair
# and switching to the new one are one rename of one symlink each: nobody sees a mixed pair.
#
# Symlinks: the only ones these scripts follow or replace at a published path are the ones they
# make (owned by this user, reading exactly the names above); any other is refused. At a
# staging or temporary path, a symlink is replaced by a rename, never written through.

# Where the journal of a host's swap lives: in its key directory.
journal_path() {
  printf '%s/.%s.swap\n' "$1" "$2"
}

is_regular() {
  [ -f "$1" ] && [ ! -L "$1" ]
}

# What a symlink reads (nothing for a path that is not a symlink).
link_target() {
  if [ -L "$1" ]; then readlink -- "$1"; fi
}

# A published path is a regular file, absent, or a symlink this script made: owned by this user
# and reading exactly `ours` (empty: none is ours). Anything else was planted or made by hand, and
# following it or replacing it could overwrite or copy another file: refused.
check_published_path() {
  local path="$1" ours="$2" target owner
  if [ -L "$path" ]; then
    target=$(readlink -- "$path") || fail "$fs_error" "cannot read the symbolic link ${path}"
    owner=$(stat -c '%u' -- "$path") || fail "$fs_error" "cannot stat ${path}"
    if [ -z "$ours" ] || [ "$target" != "$ours" ] || [ "$owner" != "$EUID" ]; then
      fail 2 "${path} is a symbolic link (to ${target}) this script did not make; refusing to follow or replace it"
    fi
  elif [ -e "$path" ] && [ ! -f "$path" ]; then
    fail 2 "${path} is not a regular file; refusing to replace it"
  fi
}

# .{host}.pair and .{host}.pair.prev, where they exist: our symlinks to a generation's name.
check_pair_pointers() {
  local dir="$1" host="$2" pointer target re
  re="^[.]${host}[.]pair[.][A-Za-z0-9]{6}$"
  for pointer in "${dir}/.${host}.pair" "${dir}/.${host}.pair.prev"; do
    [ -e "$pointer" ] || [ -L "$pointer" ] || continue
    target=$(link_target "$pointer")
    if [[ ! "$target" =~ $re ]] || [ "$(stat -c '%u' -- "$pointer")" != "$EUID" ]; then
      fail 2 "${pointer} is not a symbolic link to a generation this script made; refusing to use it"
    fi
  done
}

# Every published path of a host (the live and previous certificate, key and chain), and the
# pair pointers, before anything is written.
check_published_paths() {
  local cert_dir="$1" key_dir="$2" cacert_dir="$3" host="$4" chain="${3}/ca_chain_certificate.crt"
  check_published_path "${cert_dir}/${host}.crt" ".${host}.pair/${host}.crt"
  check_published_path "${cert_dir}/${host}.crt.prev" ".${host}.pair.prev/${host}.crt"
  check_published_path "${key_dir}/${host}.key" ".${host}.pair/${host}.key"
  check_published_path "${key_dir}/${host}.key.prev" ".${host}.pair.prev/${host}.key"
  check_published_path "$chain" ''
  check_published_path "${chain}.prev" ''
  check_pair_pointers "$cert_dir" "$host"
  check_pair_pointers "$key_dir" "$host"
}

# Point the symlink `link` at `target` (a name relative to its directory) in one rename.
point_link() {
  local link="$1" target="$2" host="$3" tmp
  if [ -L "$link" ] && [ "$(readlink -- "$link")" = "$target" ]; then
    return 0
  fi
  tmp=$(temp_name "${link%/*}" "$host") || return 1
  ln -s -- "$target" "$tmp" && mv -f -T -- "$tmp" "$link"
}

# Keep `live` as `prev`: a hard link (a copy keeping the mode where linking fails, or where live
# is one of our symlinks), under a temporary name renamed over prev, so that prev is never
# missing and a symlink there is replaced, not written through. No live file, or prev already
# the same file (a run again after a crash), nothing to do.
keep_prev() {
  local live="$1" prev="$2" host="$3" tmp
  [ -f "$live" ] || return 0
  if is_regular "$prev" && [ "$live" -ef "$prev" ]; then
    return 0
  fi
  tmp=$(temp_name "${prev%/*}" "$host") || return 1
  if [ -L "$live" ] || ! ln -- "$live" "$tmp" 2>/dev/null; then
    cp -p -- "$live" "$tmp" || return 1
  fi
  mv -f -T -- "$tmp" "$prev"
}

# A new generation directory in dir, with dir's own mode (the certificate in it is as readable
# as one beside it would be; the key's mode 0400 keeps it private). Prints its name.
new_generation() {
  local dir="$1" host="$2" generation mode
  generation=$(mktemp -d "${dir}/.${host}.pair.XXXXXX") || return 1
  mode=$(stat -L -c '%a' -- "$dir") || return 1
  chmod -- "$mode" "$generation" || return 1
  printf '%s\n' "${generation##*/}"
}

# Step 2: write the journal of the swap about to begin.
write_journal() {
  local key_dir="$1" cert_dir="$2" cacert_dir="$3" host="$4" generation="$5" journal tmp
  journal=$(journal_path "$key_dir" "$host")
  tmp=$(temp_file "$key_dir" "$host") || return 1
  printf '%s\n' 'certrotation-swap 1' "host ${host}" "certPath ${cert_dir}" \
    "cacertPath ${cacert_dir}" "generation ${generation}" >"$tmp" || return 1
  flush_to_disk "$tmp" && mv -f -T -- "$tmp" "$journal" && flush_to_disk "$key_dir"
}

# Read a journal into journal_cert_dir, journal_cacert_dir and journal_generation; fails unless
# it is one write_journal wrote for this host (it lies in a guarded directory, but a value is
# used as a path only after the same checks as a parameter's).
read_journal() {
  local journal="$1" host="$2" name value format='' for_host='' dir
  journal_cert_dir=''
  journal_cacert_dir=''
  journal_generation=''
  while read -r name value; do
    case "$name" in
      certrotation-swap) format=$value ;;
      host) for_host=$value ;;
      certPath) journal_cert_dir=$value ;;
      cacertPath) journal_cacert_dir=$value ;;
      generation) journal_generation=$value ;;
      *) return 1 ;;
    esac
  done <"$journal" || return 1
  [ "$format" = 1 ] && [ "$for_host" = "$host" ] || return 1
  for dir in "$journal_cert_dir" "$journal_cacert_dir"; do
    [[ "$dir" =~ $re_path ]] || return 1
    case "/${dir}/" in
      */../*) return 1 ;;
    esac
  done
  [ "$journal_generation" = - ] || [[ "$journal_generation" =~ ^[.]${host}[.]pair[.][A-Za-z0-9]{6}$ ]]
}

# Step 3, the chain: done once its staged file is renamed.
install_chain() {
  local chain="$1" host="$2"
  is_regular "${chain}.next" || return 0
  keep_prev "$chain" "${chain}.prev" "$host" && mv -f -T -- "${chain}.next" "$chain"
}

# Step 3, the pair in two directories. The key moves first, so a staged certificate without a
# staged key means the key has moved; a staged key without a staged certificate means nothing
# moved and the certificate is gone: the swap is dropped.
swap_files() {
  local cert="$1" key="$2" host="$3"
  if is_regular "${key}.next" && ! is_regular "${cert}.next"; then
    printf 'NOTE: the staged certificate %s is gone; the swap is dropped and the live pair stays\n' "${cert}.next" >&2
    return 0
  fi
  if is_regular "${key}.next"; then
    keep_prev "$key" "${key}.prev" "$host" || return 1
  fi
  if is_regular "${cert}.next"; then
    keep_prev "$cert" "${cert}.prev" "$host" || return 1
  fi
  if is_regular "${key}.next"; then
    mv -f -T -- "${key}.next" "$key" || return 1
  fi
  if is_regular "${cert}.next"; then
    mv -f -T -- "${cert}.next" "$cert" || return 1
  fi
}

# The live names in one directory as our symlinks, their content unchanged: a pair of plain files
# (from an older DeployCert, or installed by hand) first becomes a generation of its own, the
# live one. Before the first swap the links lead nowhere yet.
publish_live_links() {
  local dir="$1" host="$2" name old
  if [ ! -L "${dir}/.${host}.pair" ] && is_regular "${dir}/${host}.crt" && is_regular "${dir}/${host}.key"; then
    old=$(new_generation "$dir" "$host") || return 1
    for name in "${host}.crt" "${host}.key"; do
      ln -- "${dir}/${name}" "${dir}/${old}/${name}" 2>/dev/null ||
        cp -p -- "${dir}/${name}" "${dir}/${old}/${name}" || return 1
    done
    flush_to_disk "${dir}/${old}/${host}.crt" "${dir}/${old}/${host}.key" "${dir}/${old}" || return 1
    point_link "${dir}/.${host}.pair" "$old" "$host" || return 1
  fi
  for name in "${host}.crt" "${host}.key"; do
    point_link "${dir}/${name}" ".${host}.pair/${name}" "$host" || return 1
  done
}

# The .prev names in one directory as our symlinks (plain files there, from an older DeployCert,
# are the pair before the previous one: they go).
publish_prev_links() {
  local dir="$1" host="$2" name
  for name in "${host}.crt" "${host}.key"; do
    point_link "${dir}/${name}.prev" ".${host}.pair.prev/${name}" "$host" || return 1
  done
}

# Step 3, the pair in one directory: the live generation becomes the previous one, the new one
# the live one (a rename each); done once .{host}.pair names the new generation.
switch_generation() {
  local dir="$1" host="$2" generation="$3" live
  live=$(link_target "${dir}/.${host}.pair")
  if [ "$live" != "$generation" ]; then
    if ! is_regular "${dir}/${generation}/${host}.crt" || ! is_regular "${dir}/${generation}/${host}.key"; then
      printf 'NOTE: the staged generation %s is incomplete; the swap is dropped and the live pair stays\n' "${dir}/${generation}" >&2
      return 0
    fi
    publish_live_links "$dir" "$host" || return 1
    live=$(link_target "${dir}/.${host}.pair")
    if [ -n "$live" ]; then
      publish_prev_links "$dir" "$host" || return 1
      point_link "${dir}/.${host}.pair.prev" "$live" "$host" || return 1
      flush_to_disk "$dir" || return 1
    fi
    point_link "${dir}/.${host}.pair" "$generation" "$host" || return 1
  fi
  if [ -L "${dir}/.${host}.pair.prev" ]; then
    publish_prev_links "$dir" "$host" || return 1
  fi
  # The staged key lives on in the generation.
  rm -f -- "${dir}/${host}.key.next"
}

# What a crash may leave in a directory: temporary files and links (.{host}.tmp.*), and
# generations neither .{host}.pair nor .{host}.pair.prev names. Generations stay while a journal
# is there: the one it installs is not live yet.
remove_leftovers() {
  local dir="$1" host="$2" live prev entry
  rm -f -- "${dir}/.${host}.tmp."??????
  [ ! -e "$(journal_path "$dir" "$host")" ] || return 0
  live=$(link_target "${dir}/.${host}.pair")
  prev=$(link_target "${dir}/.${host}.pair.prev")
  for entry in "${dir}/.${host}.pair."??????; do
    if [ -d "$entry" ] && [ ! -L "$entry" ] && [ "${entry##*/}" != "$live" ] && [ "${entry##*/}" != "$prev" ]; then
      rm -rf -- "$entry"
    fi
  done
}

# Remove `path` if it is a regular file or a symlink this script made (owned by this user,
# reading exactly `ours`); anything else is left for the published-path checks to refuse.
remove_if_ours() {
  local path="$1" ours="$2"
  if [ -L "$path" ]; then
    [ "$(readlink -- "$path")" = "$ours" ] && [ "$(stat -c '%u' -- "$path")" = "$EUID" ] || return 0
  elif [ ! -f "$path" ]; then
    return 0
  fi
  rm -f -- "$path"
}

# Step 5: the previous pair goes, once no swap is under way (no journal): the key's .prev, then
# the certificate's (in cert_dir when known, and in the key directory when the pair shares it),
# then the .{host}.pair.prev pointer (its generation is then a leftover).
remove_previous_pair() {
  local key_dir="$1" cert_dir="$2" host="$3" pointer
  [ ! -e "$(journal_path "$key_dir" "$host")" ] || return 0
  remove_if_ours "${key_dir}/${host}.key.prev" ".${host}.pair.prev/${host}.key" || return 1
  if [ -n "$cert_dir" ]; then
    remove_if_ours "${cert_dir}/${host}.crt.prev" ".${host}.pair.prev/${host}.crt" || return 1
  fi
  remove_if_ours "${key_dir}/${host}.crt.prev" ".${host}.pair.prev/${host}.crt" || return 1
  pointer="${key_dir}/.${host}.pair.prev"
  if [[ "$(link_target "$pointer")" =~ ^[.]${host}[.]pair[.][A-Za-z0-9]{6}$ ]]; then
    remove_if_ours "$pointer" "$(link_target "$pointer")" || return 1
  fi
}

# Step 3, whole: roll the recorded swap forward, flush, drop the journal, the previous pair
# (step 5) and the leftovers.
complete_swap() {
  local key_dir="$1" cert_dir="$2" cacert_dir="$3" host="$4" generation="$5" journal
  journal=$(journal_path "$key_dir" "$host")
  install_chain "${cacert_dir}/ca_chain_certificate.crt" "$host" ||
    fail "$fs_error" "cannot move the new chain into ${cacert_dir}; the next run completes the swap"
  if [ "$generation" = - ]; then
    swap_files "${cert_dir}/${host}.crt" "${key_dir}/${host}.key" "$host" ||
      fail "$fs_error" "cannot move the new pair into place; the next run completes the swap"
  else
    switch_generation "$key_dir" "$host" "$generation" ||
      fail "$fs_error" "cannot switch ${key_dir} to the new pair; the next run completes the swap"
  fi
  flush_to_disk "$cacert_dir" "$cert_dir" "$key_dir" || fail "$fs_error" "cannot flush the swap to disk"
  rm -f -- "$journal" || fail "$fs_error" "cannot remove the swap journal ${journal}"
  flush_to_disk "$key_dir" || fail "$fs_error" "cannot flush ${key_dir} to disk"
  remove_previous_pair "$key_dir" "$cert_dir" "$host" ||
    fail "$fs_error" "cannot remove the previous pair; the next run removes it"
  remove_leftovers "$key_dir" "$host"
}

# First thing of either document: a swap a crash interrupted is completed (or dropped), in the
# directories its journal names, under the same checks as a DeployCert's; then the previous
# pair and what a crash may have left in the key directory go.
finish_interrupted_swap() {
  local key_dir="$1" host="$2" journal
  journal=$(journal_path "$key_dir" "$host")
  if [ -e "$journal" ] || [ -L "$journal" ]; then
    if ! is_regular "$journal" || ! read_journal "$journal" "$host"; then
      fail "$fs_error" "${journal} is not a swap journal this script wrote; check the pair by hand, then remove it"
    fi
    check_dir_guarded certPath "$journal_cert_dir" "publish a certificate"
    check_dir_guarded cacertPath "$journal_cacert_dir" "publish a CA chain"
    check_published_paths "$journal_cert_dir" "$key_dir" "$journal_cacert_dir" "$host"
    printf 'NOTE: completing a swap a crash interrupted (%s)\n' "$journal" >&2
    complete_swap "$key_dir" "$journal_cert_dir" "$journal_cacert_dir" "$host" "$journal_generation"
  fi
  remove_previous_pair "$key_dir" '' "$host" ||
    fail "$fs_error" "cannot remove the previous pair in ${key_dir}"
  remove_leftovers "$key_dir" "$host"
}

# Helpers both documents use, inlined by render.py where a script sources this file.
# They expect the caller's `set -euo pipefail` and `umask 077`, and `fs_error`, the caller's exit
# status for a filesystem error; fail() ends the whole script.
# shellcheck shell=bash
# shellcheck disable=SC2154 # fs_error is set by the script that sources this file

# One "ERROR: <reason>" line on stderr (the functions pass it on as the host's reason), then exit.
fail() {
  local code="$1"
  shift
  printf 'ERROR: %s\n' "$*" >&2
  exit "$code"
}

# First line of a command's diagnostics, kept short, for an ERROR line.
one_line() {
  printf '%s' "$1" | tr '\r\n' '  ' | cut -c 1-300
}

# The document's allowedPattern already enforces these; checking again keeps the script safe
# when it is run by hand or through a document version without patterns.
# shellcheck source=patterns.sh
. "$(dirname "${BASH_SOURCE[0]}")/patterns.sh"

# A directory (or file) parameter: absolute, of the safe characters, no '..' component.
check_path_param() {
  local name="$1" value="$2"
  [[ "$value" =~ $re_path ]] || fail 2 "invalid ${name}: must be an absolute path of [A-Za-z0-9._/+-]"
  case "/${value}/" in
    */../*) fail 2 "invalid ${name}: '..' path components are not allowed" ;;
  esac
}

# Refuse a directory another user can write to, or that belongs to another user (root aside, who
# can do anything anyway): either could plant a file or a symlink where we are about to write,
# or replace a file between two of our steps. A symlink to a directory is judged by the directory.
check_dir_guarded() {
  local name="$1" dir="$2" purpose="$3" facts mode owner
  facts=$(stat -L -c '%a %u' -- "$dir") || fail "$fs_error" "cannot stat ${dir}"
  mode=${facts% *}
  owner=${facts#* }
  if (((8#${mode} & 8#022) != 0)); then
    fail 2 "${name} ${dir} is writable by group or others (mode ${mode}); refusing to ${purpose} there"
  fi
  if [ "$owner" != "$EUID" ] && [ "$owner" != 0 ]; then
    fail 2 "${name} ${dir} belongs to user ${owner}, not to this one or root; refusing to ${purpose} there"
  fi
}

# Flush files or directories (their entries, after a rename) to disk. Where sync takes no
# operands (old coreutils, busybox) it flushes everything, which is more, not less.
flush_to_disk() {
  sync -- "$@" 2>/dev/null || sync
}

# A new, empty temporary file for this host in a directory (mktemp creates it, refusing any
# existing name); its name is one remove_leftovers clears after a crash.
temp_file() {
  mktemp "${1}/.${2}.tmp.XXXXXX"
}

# A free name of the same kind, for ln to create (ln refuses an existing name, as mktemp does).
temp_name() {
  mktemp -u "${1}/.${2}.tmp.XXXXXX"
}

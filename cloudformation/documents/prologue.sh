# Helpers both documents use, inlined by render.py where a script sources this file.
# They expect the caller's `set -euo pipefail` and `umask 077`; fail() ends the whole script.
# shellcheck shell=bash

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

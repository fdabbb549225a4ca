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

# This node's entry in a batch parameter, whose entries are `nodeId=...` separated by single
# spaces, one per node of the command (SendCommand takes at most 50). The node is the one SSM Agent
# names ($1, AWS_SSM_INSTANCE_ID), its entry the one that names it: host_id is set to the node,
# own_entry to what follows `nodeId=` there. $2 is the value; $3, $4 and $5 the document, the
# parameter and the entry's form, for the messages; $6 a function that accepts what follows
# `nodeId=` in a well-formed entry. Every entry is checked, so a batch fails alike on every node.
# shellcheck disable=SC2034 # host_id and own_entry are this function's result
find_own_entry() {
  local node="$1" rest="$2" doc="$3" name="$4" form="$5" entry_ok="$6" entry count=0
  [ -n "$node" ] || fail 2 "AWS_SSM_INSTANCE_ID is not set: ${doc} runs under SSM Agent, which names the node"
  [[ "$node" =~ $re_host ]] || fail 2 "AWS_SSM_INSTANCE_ID is not a managed node ID: $(one_line "$node")"
  host_id="$node"
  own_entry=''
  # Entry by entry, split on single spaces by hand: no word splitting, so no globbing either.
  while [ -n "$rest" ] || ((count == 0)); do
    entry="${rest%% *}"
    rest="${rest#"$entry"}"
    rest="${rest# }"
    count=$((count + 1))
    if ! [[ "$entry" == *=* && "${entry%%=*}" =~ $re_host ]] || ! "$entry_ok" "${entry#*=}"; then
      fail 2 "invalid ${name} entry ${count}: expected ${form}"
    fi
    if [ "${entry%%=*}" = "$node" ]; then
      [ -z "$own_entry" ] || fail 2 "${name} names ${node} twice"
      own_entry="${entry#*=}"
    fi
  done
  ((count >= 1 && count <= 50)) || fail 2 "${name} must name 1 to 50 nodes, not ${count}"
  [ -n "$own_entry" ] || fail 2 "${name} does not name this node (${node})"
}

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

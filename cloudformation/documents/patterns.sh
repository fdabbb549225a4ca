# The one definition of every value pattern the two SSM documents use.
#
# render.py substitutes these into cloudformation/template.yaml (each `# pattern: NAME` line: the
# documents' allowedPattern values and the stack parameters' AllowedPattern) and inlines, into each
# rendered script, the assignments that script reads. So SSM's check of a SendCommand, the
# CloudFormation check of a stack parameter and the script's own re-check cannot drift apart.
#
# Rules for this file (render.py reads it with bash and refuses anything else): one assignment per
# line, `re_NAME='...'`, or `re_NAME="..."` built only from earlier ${re_*} values; bash ERE
# syntax that SSM's Java regexes read the same way; no quotes, blanks or `$` inside the classes.
# shellcheck shell=bash
# shellcheck disable=SC2034 # each script reads only some of them; the renderer reads them all

# Managed node ID: a hybrid node (mi-) or an EC2 instance (i-, old 8 or new 17 hex digits).
re_host_body='(mi-[0-9a-f]{17}|i-[0-9a-f]{8}([0-9a-f]{9})?)'
re_host="^${re_host_body}$"
# Absolute path on the host, at most 255 bytes, of [A-Za-z0-9._/+-] only: no blanks, quotes, `$`,
# backticks or `;`, so a value can be single-quoted into a script ('..' components are refused
# separately, by check_path_param).
re_path_body='/[A-Za-z0-9._/+-]{0,254}'
re_path="^${re_path_body}$"
# A path, or empty for none (the reload hook).
re_optional_path="^(|${re_path_body})$"
re_key_algorithm='^(RSA_2048|RSA_3072|RSA_4096|EC_prime256v1|EC_secp384r1)$'
re_rotation_body='[A-Za-z0-9-]{1,64}'
re_rotation="^${re_rotation_body}$"
# GenerateCsr's batch: `nodeId=rotationId` entries separated by single spaces, one per node of the
# command (SendCommand takes at most 50). The script checks entry by entry and counts apart (a
# {0,49} repeat of this group compiles slowly in glibc), SSM checks this whole pattern.
re_rotation_entry="${re_host_body}=${re_rotation_body}"
re_rotations="^${re_rotation_entry}( ${re_rotation_entry}){0,49}$"
re_bool='^(true|false)$'
# A PEM bundle, base64 on one line, at most 16384 characters. The script checks the length apart:
# glibc compiles a {1,16384} repeat for seconds, so its pattern has an unbounded class.
re_b64_body='[A-Za-z0-9+/=]'
re_b64="^${re_b64_body}+$"
re_b64_max='16384'
re_b64_param="^${re_b64_body}{1,${re_b64_max}}$"
# DeployCert's batch: `nodeId=rotationId=certificate` entries (the certificate as in re_b64)
# separated by single spaces, one per node of the command. The certificate's length is left
# unbounded here: an engine that builds an automaton (glibc's, the test emulator's) would expand
# 50 repeats of {1,16384} into seconds of work and half a gigabyte. The script holds every entry's
# certificate to re_b64_max, and SSM holds a command's content, values included, to 64 KB.
re_certificate_entry="${re_rotation_entry}=${re_b64_body}+"
re_certificates="^${re_certificate_entry}( ${re_certificate_entry}){0,49}$"
# Roles Anywhere and IAM ARNs for the signing-helper check, each may be empty.
re_uuid='[0-9a-f]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}'
re_trust_anchor="^(|arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:trust-anchor/${re_uuid})$"
re_profile="^(|arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:profile/${re_uuid})$"
re_role='^(|arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512})$'

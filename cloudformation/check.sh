#!/usr/bin/env bash
# Template checks: cloudformation/check.sh <venv-dir>
#   1. the two SSM Command documents: structure, parameters, {{ }} use, and shellcheck of the
#      bash scripts taken from the template exactly as the hosts (and the emulator) run them;
#   2. cfn-lint, no errors or warnings (justified exceptions live in the template's Metadata);
#   3. checkov, no failed check (skips live in the template's Metadata, each with a reason).
# The venv must hold cfn-lint, checkov and PyYAML; shellcheck comes from the system (Debian package).
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 <venv-dir>" >&2
  exit 2
fi
venv=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
template="${here}/template.yaml"

for tool in "${venv}/bin/python" "${venv}/bin/cfn-lint" "${venv}/bin/checkov"; do
  if [ ! -x "$tool" ]; then
    echo "check.sh: ${tool} not found (pip install cfn-lint checkov pyyaml into ${venv})" >&2
    exit 2
  fi
done
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "check.sh: shellcheck not found (apt-get install -y shellcheck)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1/3 SSM documents"
"${venv}/bin/python" - "$template" "$work" <<'PY'
import re
import sys

import yaml

template, outdir = sys.argv[1], sys.argv[2]


class Tagged:
    """A CloudFormation short-form intrinsic (!Ref, !Sub, ...), kept so it can be detected."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class Loader(yaml.SafeLoader):
    pass


def construct_tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tagged("!" + suffix, value)


Loader.add_multi_constructor("!", construct_tagged)

with open(template, encoding="utf-8") as f:
    doc = yaml.load(f, Loader=Loader)

errors = []


def err(msg):
    errors.append(msg)


def no_intrinsics(value, where):
    if isinstance(value, Tagged):
        err(f"{where}: intrinsic function {value.tag} inside Content")
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and (k == "Ref" or k.startswith("Fn::")):
                err(f"{where}: intrinsic function {k} inside Content")
            no_intrinsics(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_intrinsics(v, f"{where}[{i}]")


PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
EXPECTED = {
    "GenerateCsrDocument": ["hostId", "keyPath", "csrPath", "keyAlgorithm", "rotationId"],
    "DeployCertDocument": [
        "hostId", "certPath", "keyPath", "cacertPath", "signingHelperPath", "certificate", "chain",
        "requireSigningHelper", "trustAnchorArn", "profileArn", "roleArn", "reloadHook", "rotationId",
    ],
}
resources = doc.get("Resources", {})
for name, expected_params in EXPECTED.items():
    res = resources.get(name)
    if res is None:
        err(f"{name}: resource missing")
        continue
    props = res.get("Properties", {})
    if res.get("Type") != "AWS::SSM::Document":
        err(f"{name}: Type must be AWS::SSM::Document")
    if props.get("DocumentType") != "Command" or props.get("DocumentFormat") != "YAML":
        err(f"{name}: DocumentType Command and DocumentFormat YAML expected")
    content = props.get("Content")
    if not isinstance(content, dict):
        err(f"{name}: Content must be a plain YAML mapping")
        continue
    no_intrinsics(content, f"{name}.Content")
    if content.get("schemaVersion") != "2.2":
        err(f"{name}: schemaVersion must be the string '2.2'")
    params = content.get("parameters", {})
    if sorted(params) != sorted(expected_params):
        err(f"{name}: parameters {sorted(params)} != expected {sorted(expected_params)}")
    for pname, spec in params.items():
        if spec.get("type") != "String":
            err(f"{name}.{pname}: type must be String")
        if not spec.get("description"):
            err(f"{name}.{pname}: description missing")
        pattern = spec.get("allowedPattern")
        if not pattern or not pattern.startswith("^") or not pattern.endswith("$"):
            err(f"{name}.{pname}: allowedPattern must be anchored with ^...$")
            continue
        if "'" in pattern or "\\s" in pattern or re.search(r"(?<!\\)\.[*+]", pattern):
            err(f"{name}.{pname}: allowedPattern must not admit quotes, blanks or anything")
        for bad in ("'", "a'b", "$(id)", "`id`", "a b", "a\nb", "a;b"):
            if re.search(pattern, bad):
                err(f"{name}.{pname}: allowedPattern accepts {bad!r}")
        if "default" in spec and not re.search(pattern, str(spec["default"])):
            err(f"{name}.{pname}: default does not match allowedPattern")
    steps = content.get("mainSteps", [])
    if len(steps) != 1 or steps[0].get("action") != "aws:runShellScript":
        err(f"{name}: exactly one aws:runShellScript step expected")
        continue
    commands = steps[0].get("inputs", {}).get("runCommand")
    if not isinstance(commands, list) or len(commands) != 1 or not isinstance(commands[0], str):
        err(f"{name}: runCommand must be a list with one block-scalar script")
        continue
    script = commands[0]
    lines = script.splitlines()
    if not lines or lines[0] != 'if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi':
        err(f"{name}: the script must start with the bash re-exec guard")
    for required in ("set -euo pipefail", "umask 077"):
        if required not in lines:
            err(f"{name}: '{required}' line missing")
    # Every parameter is used exactly once, as a single-quoted assignment on its own line.
    used = {}
    for number, line in enumerate(lines, 1):
        for match in PLACEHOLDER.finditer(line):
            pname = match.group(1)
            used[pname] = used.get(pname, 0) + 1
            if not re.fullmatch(r"[a-z_][a-z0-9_]*='\{\{ " + re.escape(pname) + r" \}\}'", line):
                err(f"{name}: line {number}: {{{{ {pname} }}}} outside a single-quoted assignment")
            if pname not in params:
                err(f"{name}: line {number}: undeclared parameter {pname}")
    if "{{" in PLACEHOLDER.sub("", script):
        err(f"{name}: stray '{{{{' in the script (SSM would try to substitute it)")
    for pname in params:
        if used.get(pname, 0) != 1:
            err(f"{name}: parameter {pname} used {used.get(pname, 0)} times (expected once)")
    with open(f"{outdir}/{name}.sh", "w", encoding="utf-8") as out:
        out.write(script)

# Every function gets the environment the Rust Config reads.
ENV_VARS = {
    "TABLE_NAME", "ALERT_TOPIC_ARN", "CA_ARN", "SIGNING_ALGORITHM", "CERT_VALIDITY_DAYS",
    "RENEWAL_SHARE", "HOST_KEY_ALGORITHM", "GENERATE_CSR_DOCUMENT", "DEPLOY_CERT_DOCUMENT",
    "DEFAULT_CERT_PATH", "DEFAULT_KEY_PATH", "DEFAULT_CACERT_PATH", "DEFAULT_CSR_PATH",
    "DEFAULT_SIGNING_HELPER_PATH", "REQUIRE_SIGNING_HELPER", "RELOAD_HOOK", "TRUST_ANCHOR_ARN",
    "PROFILE_ARN", "ROLE_ARN", "REISSUE_REVOKED", "CRL_BUCKET", "CRL_PREFIX", "RUST_LOG",
}
functions = {n: r for n, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"}
if len(functions) != 4:
    err(f"expected 4 Lambda functions, found {sorted(functions)}")
for fname, res in functions.items():
    variables = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
    missing = ENV_VARS - set(variables)
    if missing:
        err(f"{fname}: environment lacks {sorted(missing)}")

# Every checkov skip carries a reason.
for rname, res in resources.items():
    skips = (res.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    for skip in skips:
        if not skip.get("id") or not str(skip.get("comment", "")).strip():
            err(f"{rname}: checkov skip without id or comment")

if errors:
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    sys.exit(1)
print(f"documents OK: {', '.join(EXPECTED)}")
PY
for script in "$work"/*.sh; do
  echo "shellcheck -s bash $(basename "$script" .sh)"
  shellcheck -s bash "$script"
done

echo "== 2/3 cfn-lint"
"${venv}/bin/cfn-lint" "$template"
echo "cfn-lint OK"

echo "== 3/3 checkov"
# Run from the template's folder with a relative path: checkov feeds the file name it was given
# into CKV_AWS_45's secret patterns (as a `__file__` key among the Lambda variables), and an
# absolute path whose first segments happen to total 40 characters reads as an AWS secret key
# (it did on CI, under /check/work/main/cloudformation/template).
(cd "$here" && "${venv}/bin/checkov" -f template.yaml --framework cloudformation --skip-download --compact --quiet)
echo "checkov OK"

#!/usr/bin/env bash
# Template checks: cloudformation/check.sh <venv-dir>
#   1. template.yaml is what render.py makes of documents/ (the committed text is the deployed one);
#   2. the two SSM Command documents: structure, parameters, {{ }} use; every function gets the
#      environment the Rust Config reads; the stateful resources are retained;
#   3. shellcheck of the scripts as the hosts (and the emulator) run them, taken from the template,
#      and of their sources and tests; bats runs the tests of the scripts' shell functions;
#   4. cfn-lint, no errors or warnings (justified exceptions live in the template's Metadata);
#   5. checkov, no failed check (skips live in the template's Metadata, each with a reason);
#   6. the README's deployment commands, run with the real AWS CLI against a local moto S3.
# The venv must hold cfn-lint, checkov, PyYAML and awscli; shellcheck and bats come from the system
# (Debian packages).
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 <venv-dir>" >&2
  exit 2
fi
venv=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
template="${here}/template.yaml"

for tool in "${venv}/bin/python" "${venv}/bin/cfn-lint" "${venv}/bin/checkov" "${venv}/bin/aws"; do
  if [ ! -x "$tool" ]; then
    echo "check.sh: ${tool} not found (make venv: pip install -r requirements-dev.txt into ${venv})" >&2
    exit 2
  fi
done
for tool in shellcheck bats; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check.sh: ${tool} not found (make system-deps: apt-get install -y ${tool})" >&2
    exit 2
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1/6 rendering"
python3 "${here}/render.py" --output "${work}/rendered.yaml"
if ! diff -u "$template" "${work}/rendered.yaml" >"${work}/render.diff"; then
  head -n 60 "${work}/render.diff" >&2
  echo "ERROR: cloudformation/template.yaml is stale: run 'make render' (cloudformation/render.py) and commit it" >&2
  exit 1
fi
echo "template.yaml is up to date with documents/"

echo "== 2/6 template structure"
"${venv}/bin/python" - "$template" "$work" <<'PY'
import json
import os
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
    "GenerateCsrDocument": ["rotations", "keyPath", "csrPath", "keyAlgorithm"],
    "DeployCertDocument": [
        "certificates", "certPath", "keyPath", "cacertPath", "signingHelperPath", "chain",
        "requireSigningHelper", "trustAnchorArn", "profileArn", "roleArn", "reloadHook",
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
    # Run Command counts a command's parameter values against the document's 64 KB: the
    # content as stored (JSON) plus what the senders put in its parameters at most. DeployCert's
    # certificates and chain are bounded in the Rust code (DEPLOY_PARAMETER_BUDGET); the other
    # values are paths and ARNs (allowedPattern bounds each).
    stored = len(json.dumps(content, separators=(",", ":")))
    if name == "DeployCertDocument":
        hosts_rs = os.path.join(os.path.dirname(template), "..", "shared", "rotation", "src", "hosts.rs")
        with open(hosts_rs, encoding="utf-8") as f:
            budget = re.search(r"pub const DEPLOY_PARAMETER_BUDGET: usize = ([0-9_]+);", f.read())
        budget = int(budget.group(1).replace("_", "")) if budget else 0
        if not budget:
            err("DEPLOY_PARAMETER_BUDGET not found in shared/rotation/src/hosts.rs")
        others = 5 * 256 + 3 * 200 + 256 + 5
        if stored + budget + others > 64 * 1024:
            err(f"{name}: {stored} characters stored + {budget} of certificates and chain + "
                f"{others} of other values exceed Run Command's 64 KB per command")
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

# Every function gets the environment the Rust Config reads (shared/adapters/src/config.rs).
# Each setting a user may want to change comes from a stack parameter of the same meaning, so
# nobody edits a function's environment by hand (an update of the stack would undo it).
FROM_PARAMETERS = {
    "SIGNING_ALGORITHM": "SigningAlgorithm", "CERT_VALIDITY_DAYS": "CertValidityDays",
    "RENEWAL_SHARE": "RenewalShare", "RENEWAL_JITTER_SHARE": "RenewalJitterShare",
    "HOST_KEY_ALGORITHM": "HostKeyAlgorithm", "MIN_RSA_BITS": "MinRsaBits",
    "IN_FLIGHT_TIMEOUT_MINUTES": "InFlightTimeoutMinutes",
    "START_CONCURRENCY": "StartConcurrency", "REACHABILITY_CONCURRENCY": "ReachabilityConcurrency",
    "SCAN_SEGMENTS": "ScanSegments", "DEFAULT_CERT_PATH": "CertPath", "DEFAULT_KEY_PATH": "KeyPath",
    "DEFAULT_CACERT_PATH": "CACertPath", "DEFAULT_CSR_PATH": "CSRPath",
    "DEFAULT_SIGNING_HELPER_PATH": "AWSSigningHelperPath",
    "REQUIRE_SIGNING_HELPER": "RequireSigningHelper", "RELOAD_HOOK": "ReloadHook",
    "REISSUE_REVOKED": "ReissueRevoked", "RUST_LOG": "LogLevel",
}
# Names of this stack's own resources, and CRL_PREFIX, fixed by the CA's CRL path.
FROM_RESOURCES = {
    "TABLE_NAME", "ALERT_TOPIC_ARN", "CA_ARN", "GENERATE_CSR_DOCUMENT", "DEPLOY_CERT_DOCUMENT",
    "TRUST_ANCHOR_ARN", "PROFILE_ARN", "ROLE_ARN", "CRL_BUCKET", "CRL_PREFIX",
}
ENV_VARS = set(FROM_PARAMETERS) | FROM_RESOURCES
stack_parameters = doc.get("Parameters", {})
functions = {n: r for n, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"}
if len(functions) != 4:
    err(f"expected 4 Lambda functions, found {sorted(functions)}")
for fname, res in functions.items():
    variables = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
    missing = ENV_VARS - set(variables)
    if missing:
        err(f"{fname}: environment lacks {sorted(missing)}")
    for var, param in FROM_PARAMETERS.items():
        value = variables.get(var)
        if param not in stack_parameters:
            err(f"stack parameter {param} (for {var}) missing")
        elif var in variables and not (isinstance(value, Tagged) and value.tag == "!Ref" and value.value == param):
            err(f"{fname}: {var} must be !Ref {param}")

# The defaults the Rust Config falls back to (with no variable set) are the parameters' defaults:
# a function run outside the stack behaves as the stack deploys it.
config_rs = os.path.join(os.path.dirname(os.path.abspath(template)), "..", "shared", "rotation", "src", "config.rs")
with open(config_rs, encoding="utf-8") as f:
    code_defaults = dict(re.findall(r'(?:parse_num|parse_bool|opt|path)\("([A-Z_]+)", "([^"]*)"\)', f.read()))
for var, param in FROM_PARAMETERS.items():
    if var in code_defaults and param in stack_parameters:
        default = str(stack_parameters[param].get("Default", ""))
        if code_defaults[var] != default:
            err(f"{var} defaults to {code_defaults[var]!r} in config.rs, {param} to {default!r} in the template")

# Stateful resources outlive the stack and a replacement: the table holds every host's state,
# the CA and the trust anchor are what the hosts' certificates chain to and are accepted by, the
# bucket holds the CRLs. Losing one by a stack delete or a replacing update would cut off hosts.
RETAINED_TYPES = {
    "AWS::DynamoDB::Table", "AWS::ACMPCA::CertificateAuthority", "AWS::RolesAnywhere::TrustAnchor",
    "AWS::S3::Bucket",
}
for rtype in sorted(RETAINED_TYPES - {r.get("Type") for r in resources.values()}):
    err(f"no {rtype} resource (the retention check expects one)")
for rname, res in resources.items():
    if res.get("Type") in RETAINED_TYPES:
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if res.get(policy) != "Retain":
                err(f"{rname}: {policy} must be Retain (it is {res.get(policy)!r})")

# CertIssue and CertDeploy are fed by queues: the rule targets the queue, the event source
# mapping reports per-message failures under a maximum concurrency, the queue redrives to a
# dead-letter queue, and an alarm on that queue alerts.
def ref_name(v):
    if isinstance(v, Tagged):
        return v.value.split(".")[0] if isinstance(v.value, str) else v.value[0]
    return None
mappings = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::Lambda::EventSourceMapping"]
for fn, rule, q in (("CertIssue", "GenerateCsrStatusRule", "CertIssueQueue"), ("CertDeploy", "CertIssuedRule", "CertDeployQueue")):
    dlq = f"{fn}DeadLetterQueue"
    rule_targets = [ref_name(t.get("Arn")) for t in resources.get(rule, {}).get("Properties", {}).get("Targets", [])]
    if rule_targets != [q]:
        err(f"{rule} must target {q} only (targets {rule_targets})")
    fn_maps = [m for m in mappings if ref_name(m.get("FunctionName")) == f"{fn}Function"]
    if len(fn_maps) != 1:
        err(f"{fn} needs exactly one event source mapping (its queue)")
    else:
        m = fn_maps[0]
        if ref_name(m.get("EventSourceArn")) != q:
            err(f"{fn}'s event source mapping must read {q}")
        if "ReportBatchItemFailures" not in (m.get("FunctionResponseTypes") or []):
            err(f"{fn}'s event source mapping must report batch item failures")
        if "MaximumConcurrency" not in (m.get("ScalingConfig") or {}):
            err(f"{fn}'s event source mapping needs ScalingConfig.MaximumConcurrency")
    queue = resources.get(q, {}).get("Properties", {})
    redrive = queue.get("RedrivePolicy") or {}
    if ref_name(redrive.get("deadLetterTargetArn")) != dlq or not redrive.get("maxReceiveCount"):
        err(f"{q} must redrive to {dlq} after maxReceiveCount receives")
    if int(queue.get("VisibilityTimeout", 0)) < 6 * int(resources.get(f"{fn}Function", {}).get("Properties", {}).get("Timeout", 0)):
        err(f"{q}'s VisibilityTimeout must be at least six times {fn}'s timeout")
    dlq_alarms = [
        r for r in resources.values()
        if r.get("Type") == "AWS::CloudWatch::Alarm"
        and any(ref_name(d.get("Value")) == dlq for d in r["Properties"].get("Dimensions", []))
        and any(ref_name(a) == "AlertTopic" for a in r["Properties"].get("AlarmActions", []))
    ]
    if not dlq_alarms:
        err(f"no alarm on {dlq} alerting the AlertTopic")

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
print(f"documents OK: {', '.join(EXPECTED)}; environment OK; retained: "
      f"{', '.join(n for n, r in resources.items() if r.get('Type') in RETAINED_TYPES)}")
PY

echo "== 3/6 shellcheck and bats"
# The scripts as the template holds them (what hosts and the emulator run) must be exactly what
# render.py makes of the sources, and pass shellcheck as they are.
for pair in GenerateCsrDocument:generate-csr.sh DeployCertDocument:deploy-cert.sh; do
  python3 "${here}/render.py" --script "${pair#*:}" >"${work}/expected.sh"
  if ! cmp -s "${work}/${pair%%:*}.sh" "${work}/expected.sh"; then
    echo "ERROR: the ${pair%%:*} script in the template is not the rendering of documents/${pair#*:}" >&2
    exit 1
  fi
  echo "shellcheck -s bash ${pair%%:*} (rendered)"
  shellcheck -s bash "${work}/${pair%%:*}.sh"
done
(cd "${here}/documents" && shellcheck -x -s bash ./*.sh test/*.bats)
echo "shellcheck OK: documents/*.sh, documents/test/*.bats"
bats "${here}/documents/test"

echo "== 4/6 cfn-lint"
"${venv}/bin/cfn-lint" "$template"
echo "cfn-lint OK"

echo "== 5/6 checkov"
# Run from the template's folder with a relative path: checkov feeds the file name it was given
# into CKV_AWS_45's secret patterns (as a `__file__` key among the Lambda variables), and an
# absolute path whose first segments happen to total 40 characters reads as an AWS secret key
# (it did once on CI, where the clone's path to the template was exactly 40 such characters).
(cd "$here" && "${venv}/bin/checkov" -f template.yaml --framework cloudformation --skip-download --compact --quiet)
echo "checkov OK"

echo "== 6/6 README deployment commands"
"${venv}/bin/python" "${here}/check-readme.py" "${venv}/bin/aws"

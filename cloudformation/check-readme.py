#!/usr/bin/env python3
"""Checks the README's deployment instructions against the template and the real AWS CLI.

    check-readme.py <path of the aws executable>

Why: the documented `aws cloudformation deploy` once failed for every new user (the packaged
template is over CloudFormation's 51,200-byte inline limit), and nothing ran the README. So the
commands are taken from README.md itself, between the `deploy-commands` marker comments, and
run as written with the AWS CLI against a local moto server (S3, and CloudFormation for deploy):

  * `aws cloudformation package` must succeed and upload the four function zips (placeholder
    zips stand in for `make package`'s: the packaged template does not depend on their bytes);
  * the packaged template must fit what the documented deploy sends: 51,200 bytes inline, or
    1 MB through S3 when the deploy command carries --s3-bucket;
  * the documented deploy (with --no-execute-changeset added) must get past the CLI's own checks
    and upload the template to the bucket. moto cannot read a template URL on a local endpoint,
    so a CreateChangeSet error from it afterwards is expected and accepted; a refusal by the CLI
    is not.

Also: every `aws lambda invoke` example carries `--cli-read-timeout 0` (a CertCheck run may last
15 minutes; the CLI otherwise gives up after 60 s and invokes again), and the stack parameter
table names exactly the template's parameters.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEMPLATE = ROOT / "cloudformation" / "template.yaml"
INLINE_LIMIT = 51_200  # TemplateBody
S3_LIMIT = 1_000_000  # TemplateURL: "1 MB", taken as the smaller reading
BUCKET = "cert-rotation-artifacts"
PLACEHOLDERS = {"<bucket>": BUCKET, "<you@example.com>": "ops@example.com"}
CLI_SIZE_REFUSAL = "must be deployed via an S3 Bucket"

errors = []


def err(msg):
    errors.append(msg)
    print(f"ERROR: {msg}", file=sys.stderr)


class Loader(yaml.SafeLoader):
    pass


Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def readme_commands(text):
    m = re.search(r"<!-- deploy-commands: begin[^>]*-->\s*```sh\n(.*?)```\s*<!-- deploy-commands: end -->",
                  text, re.S)
    if not m:
        raise SystemExit("check-readme.py: README.md has no ```sh block between the deploy-commands markers")
    joined = re.sub(r"\\\n\s*", " ", m.group(1))
    commands = [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for argv in commands:
        for i, arg in enumerate(argv):
            for placeholder, value in PLACEHOLDERS.items():
                arg = arg.replace(placeholder, value)
            if re.search(r"<[^>]*>", arg):
                raise SystemExit(f"check-readme.py: unknown placeholder in {arg!r} (known: {', '.join(PLACEHOLDERS)})")
            argv[i] = arg
    return commands


def option(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(workdir):
    port = free_port()
    log = open(workdir / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"check-readme.py: moto server did not start (see {workdir}/moto.log)")
            time.sleep(0.2)


def run(argv, env, cwd, timeout=180):
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def check_deploy_commands(aws, text):
    commands = readme_commands(text)
    kinds = [argv[:3] for argv in commands]
    if kinds != [["aws", "cloudformation", "package"], ["aws", "cloudformation", "deploy"]]:
        err(f"the deploy-commands block must hold `aws cloudformation package` then `aws cloudformation deploy`, found {kinds}")
        return
    package, deploy = commands
    packaged_name = option(package, "--output-template-file")
    if option(deploy, "--template-file") != packaged_name:
        err("deploy's --template-file is not package's --output-template-file")
        return
    deploy_bucket = option(deploy, "--s3-bucket")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # The repository's layout, as far as package reads it: the template and each local Code zip.
        template_file = work / option(package, "--template-file")
        template_file.parent.mkdir(parents=True)
        template_file.write_bytes(TEMPLATE.read_bytes())
        codes = re.findall(r"^\s+Code: (\S+\.zip)\s*$", TEMPLATE.read_text(encoding="utf-8"), re.M)
        for code in codes:
            zip_path = (template_file.parent / code).resolve()
            zip_path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(zip_path, "w") as z:
                z.writestr("bootstrap", "placeholder for make package's binary\n")
        proc, url = start_moto(work)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
                "AWS_CONFIG_FILE": str(work / "no-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials"),
            })
            r = run([aws, "s3api", "create-bucket", "--bucket", BUCKET], env, work)
            if r.returncode != 0:
                err(f"cannot create the test bucket: {r.stderr.strip()}")
                return
            started = time.monotonic()
            r = run([aws, *package[1:]], env, work)
            if r.returncode != 0:
                err(f"README's package step failed: {r.stderr.strip() or r.stdout.strip()}")
                return
            packaged = work / packaged_name
            size = packaged.stat().st_size
            doc = yaml.load(packaged.read_text(encoding="utf-8"), Loader=Loader)
            for name, res in doc["Resources"].items():
                code = (res.get("Properties") or {}).get("Code")
                if res.get("Type") == "AWS::Lambda::Function" and not (isinstance(code, dict) and code.get("S3Key")):
                    err(f"packaged template: {name}'s Code was not uploaded ({code!r})")
            print(f"package: OK in {time.monotonic() - started:.1f} s, {len(codes)} zips uploaded, "
                  f"packaged template {size:,} bytes")

            limit = S3_LIMIT if deploy_bucket else INLINE_LIMIT
            how = "through S3 (deploy --s3-bucket)" if deploy_bucket else "inline (deploy without --s3-bucket)"
            if size > limit:
                err(f"the packaged template is {size:,} bytes, over the {limit:,} CloudFormation accepts {how}")
            else:
                print(f"size: {size:,} bytes <= {limit:,}, the limit {how}")

            started = time.monotonic()
            r = run([aws, *deploy[1:], "--no-execute-changeset"], env, work)
            output = r.stdout + r.stderr
            if CLI_SIZE_REFUSAL in output:
                err(f"the AWS CLI refuses README's deploy step: {output.strip()}")
            elif r.returncode != 0 and "when calling the CreateChangeSet operation" not in output:
                err(f"README's deploy step failed before reaching CloudFormation: {output.strip()}")
            elif deploy_bucket:
                listed = run([aws, "s3api", "list-objects-v2", "--bucket", BUCKET, "--query",
                              "Contents[?ends_with(Key, '.template')].Size", "--output", "text"], env, work)
                if str(size) not in listed.stdout.split():
                    err(f"deploy did not upload the {size:,}-byte template to the bucket ({listed.stdout.strip()!r})")
                else:
                    print(f"deploy: the CLI accepted it and uploaded the template in {time.monotonic() - started:.1f} s "
                          f"(moto's CreateChangeSet: {'OK' if r.returncode == 0 else 'cannot read a local template URL, as expected'})")
            else:
                print("deploy: the CLI accepted it (template sent inline)")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


TAG_ARGV = []


def check_tag_command(lines, host):
    """The enrol block's second command tags the node with the key and value that the template's
    SendCommand condition requires (`ssm:resourceTag/<key>: !Ref AWS::StackName`)."""
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=Loader)
    keys = set()
    for role in ("CertCheckRole", "CertDeployRole"):
        for policy in template["Resources"][role]["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                if "ssm:SendCommand" in st.get("Action", []) and "Condition" in st:
                    for k, v in st["Condition"].get("StringEquals", {}).items():
                        # (The loader drops intrinsic functions: `!Ref AWS::StackName` reads as None.)
                        if k.startswith("ssm:resourceTag/") and v is None:
                            keys.add(k.split("/", 1)[1])
    if len(keys) != 1:
        err(f"the SendCommand roles must require one node tag valued with the stack name, found {sorted(keys)}")
        return False
    key = keys.pop()
    if len(lines) != 1:
        err("the enrol-command block must hold the put-item and one `aws ssm add-tags-to-resource`")
        return False
    argv = shlex.split(lines[0].replace("<stack name>", "cert-rotation"))
    want = ["aws", "ssm", "add-tags-to-resource", "--resource-type", "ManagedInstance", "--resource-id", host]
    if argv[:7] != want or option(argv, "--tags") != f"Key={key},Value=cert-rotation":
        err(f"the tag command must be `{' '.join(want)} --tags Key={key},Value=<stack name>`, found {lines[0]}")
        return False
    TAG_ARGV[:] = argv
    return True


def check_enrol_command(aws, text):
    """README's enrolment command, run twice against moto's DynamoDB: the second run must be
    refused and leave the host's item (with a certificate recorded meanwhile) unchanged."""
    m = re.search(r"<!-- enrol-command: begin[^>]*-->\s*```sh\n(.*?)```\s*<!-- enrol-command: end -->",
                  text, re.S)
    if not m:
        err("README.md has no ```sh block between the enrol-command markers")
        return
    table = "hosts"
    lines = [line for line in m.group(1).strip().splitlines() if line.strip()]
    argv = shlex.split(lines[0].replace("<TableName output>", table))
    if argv[:3] != ["aws", "dynamodb", "put-item"]:
        err(f"the enrol-command block must start with an `aws dynamodb put-item`, found {argv[:3]}")
        return
    if not check_tag_command(lines[1:], json.loads(option(argv, "--item"))["hostID"]["S"]):
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, url = start_moto(work)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update({
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
                "AWS_CONFIG_FILE": str(work / "no-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials"),
            })
            r = run([aws, "dynamodb", "create-table", "--table-name", table, "--billing-mode", "PAY_PER_REQUEST",
                     "--attribute-definitions", "AttributeName=hostID,AttributeType=S",
                     "--key-schema", "AttributeName=hostID,KeyType=HASH"], env, work)
            if r.returncode != 0:
                err(f"cannot create the test table: {r.stderr.strip()}")
                return
            r = run([aws, *argv[1:]], env, work)
            if r.returncode != 0:
                err(f"README's enrolment command failed on a new host: {r.stderr.strip()}")
                return
            host = json.loads(option(argv, "--item"))
            key = json.dumps({"hostID": host["hostID"]})
            r = run([aws, "dynamodb", "update-item", "--table-name", table, "--key", key,
                     "--update-expression", "SET serial = :s", "--expression-attribute-values",
                     '{":s": {"S": "0a:0b"}}'], env, work)
            r = run([aws, *argv[1:]], env, work)
            if r.returncode == 0 or "ConditionalCheckFailedException" not in r.stderr:
                err(f"README's enrolment command does not refuse an enrolled host: {r.stderr.strip() or 'it succeeded'}")
                return
            r = run([aws, "dynamodb", "get-item", "--table-name", table, "--key", key], env, work)
            if json.loads(r.stdout or "{}").get("Item", {}).get("serial") != {"S": "0a:0b"}:
                err(f"enrolling an enrolled host changed its item: {r.stdout.strip()}")
                return
            r = run([aws, *TAG_ARGV[1:]], env, work)
            # moto keeps no managed nodes and answers InvalidResourceId for any ManagedInstance;
            # reaching that answer means the CLI accepted every argument as written.
            if r.returncode != 0 and "InvalidResourceId" not in r.stderr:
                err(f"README's tag command is refused by the AWS CLI: {r.stderr.strip()}")
                return
            print("enrol: a new host is written; enrolling it again is refused and changes nothing; "
                  "the tag command is accepted")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_invoke_examples(text):
    invokes = [line for line in text.splitlines() if "aws lambda invoke" in line]
    if not invokes:
        err("README has no `aws lambda invoke` example")
    bad = [line for line in invokes if "--cli-read-timeout 0" not in line]
    for line in bad:
        err(f"`aws lambda invoke` without --cli-read-timeout 0: {line.strip()}")
    if invokes and not bad:
        print(f"invoke examples: {len(invokes)}, each with --cli-read-timeout 0")


def check_parameter_table(text):
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=Loader)
    parameters = set(template["Parameters"])
    section = text.split("### Stack parameters", 1)[-1].split("\n#", 1)[0]
    named = set()
    for row in re.findall(r"^\| ([A-Za-z, ]+) \|", section, re.M):
        if row.strip() != "parameter":
            named.update(n.strip() for n in row.split(","))
    # The default column says what the template's Default is (names and defaults may be listed
    # together, `LogLevel, LogRetentionInDays | info, 90`; an empty cell is no default).
    for names, defaults in re.findall(r"^\| ([A-Za-z, ]+) \| ([^|]*) \|", section, re.M):
        names = [n.strip() for n in names.split(",")]
        if names == ["parameter"]:
            continue
        cells = [d.strip().strip("`") for d in defaults.split(",")] if defaults.strip() else [""] * len(names)
        if len(cells) != len(names):
            cells = [defaults.strip().strip("`")] * len(names)
        for name, cell in zip(names, cells):
            if name in template["Parameters"]:
                default = str(template["Parameters"][name].get("Default", ""))
                if cell != default:
                    err(f"README's stack parameter table gives {name} the default {cell!r}; the template's is {default!r}")
    if named != parameters:
        for missing in sorted(parameters - named):
            err(f"README's stack parameter table lacks {missing}")
        for extra in sorted(named - parameters):
            err(f"README's stack parameter table names {extra}, which the template does not have")
    else:
        print(f"parameter table: the template's {len(parameters)} parameters")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    aws = str(Path(sys.argv[1]).resolve())
    text = README.read_text(encoding="utf-8")
    check_invoke_examples(text)
    check_parameter_table(text)
    check_deploy_commands(aws, text)
    check_enrol_command(aws, text)
    if errors:
        sys.exit(1)
    print("README deployment commands OK")


if __name__ == "__main__":
    main()

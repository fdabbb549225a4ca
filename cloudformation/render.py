#!/usr/bin/env python3
"""Renders the SSM documents' scripts and patterns into cloudformation/template.yaml.

    cloudformation/render.py                  rewrite template.yaml in place (`make render`)
    cloudformation/render.py --output FILE    write the rendered template to FILE instead
    cloudformation/render.py --script NAME    print one rendered script (e.g. generate-csr.sh)

Why: CloudFormation needs the whole document text inside the template, but shell is best edited,
linted (shellcheck) and tested (bats) as shell files. The sources live in documents/; the template
stays committed, and check.sh renders it again and fails when the committed one differs.

The template is both the input and the output, so everything but the marked parts is edited in
template.yaml as usual. Two kinds of marks:

  * a comment line `# script: NAME` right above the `- |` of a runCommand entry: the block scalar
    below it is replaced with documents/NAME rendered;
  * a trailing `# pattern: re_NAME` on an `allowedPattern:` / `AllowedPattern:` line: the quoted
    value is replaced with that pattern from documents/patterns.sh (read by bash itself, so the
    value is exactly what the scripts see).

Rendering a script: each `. "$(dirname "${BASH_SOURCE[0]}")/FILE"` line (with the `# shellcheck
source=` line above it) is replaced by FILE's own rendering; patterns.sh is replaced by only the
assignments the script reads (and those they build on). Full-line comments are dropped except the
main script's header (what it does, its output, its exit codes), which names the source files:
the rendered text is what runs, the sources are what people read. Plain text throughout, no YAML
library, so the output is byte-stable and the diff of a change is the change itself.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"
TEMPLATE = HERE / "template.yaml"
PATTERNS = "patterns.sh"

INCLUDE = re.compile(r'^\. "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/([a-z0-9-]+\.sh)"$')
SOURCE_DIRECTIVE = re.compile(r"^# shellcheck source=([a-z0-9-]+\.sh)$")
ASSIGNMENT = re.compile(r"^(re_[a-z0-9_]+)=(.*)$")
REFERENCE = re.compile(r"\$\{?(re_[a-z0-9_]+)")
PATTERN_LINE = re.compile(r"^(\s*(?:allowedPattern|AllowedPattern): )'[^']*'(  # pattern: (re_[a-z0-9_]+))$")
SCRIPT_MARK = re.compile(r"^(\s*)# script: ([a-z0-9-]+\.sh)\b.*$")
PATTERNS_SLOT = "\0patterns\0"


class RenderError(Exception):
    pass


def load_patterns():
    """(ordered assignment lines by name, values by name) of documents/patterns.sh."""
    path = DOCUMENTS / PATTERNS
    lines = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = ASSIGNMENT.match(line)
        if not m:
            raise RenderError(f"{PATTERNS}:{number}: only re_NAME=... assignments belong here")
        if m.group(1) in lines:
            raise RenderError(f"{PATTERNS}:{number}: {m.group(1)} assigned twice")
        lines[m.group(1)] = line
    # bash evaluates the file: the values are the ones the scripts get, quoting and all.
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-euc",
         '. "$1"; for n in $(compgen -v re_); do printf "%s\\0%s\\0" "$n" "${!n}"; done', "bash", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.split("\0")[:-1]
    values = dict(zip(out[0::2], out[1::2]))
    for name in lines:
        if name not in values:
            raise RenderError(f"{PATTERNS}: {name} has no value")
        if "'" in values[name] or "\n" in values[name]:
            raise RenderError(f"{PATTERNS}: {name} holds a quote or a newline")
    return lines, values


def is_comment(line):
    return line.lstrip().startswith("#")


def render_file(name, keep_header, stack=()):
    """The rendered text of documents/NAME, with the patterns slot still open."""
    if name in stack:
        raise RenderError(f"include loop: {' -> '.join(stack + (name,))}")
    source = (DOCUMENTS / name).read_text(encoding="utf-8").splitlines()
    out = []
    i = 0
    if keep_header:
        # The guard line and the comment block right after it stay.
        while i < len(source) and (i == 0 or is_comment(source[i])):
            out.append(source[i])
            i += 1
        out.append(f"# Rendered by cloudformation/render.py from cloudformation/documents/{name} (commented there).")
    while i < len(source):
        line = source[i]
        if "<<" in line and not line.lstrip().startswith("#"):
            # A here-document's lines would look like comments to the stripping below.
            raise RenderError(f"{name}:{i + 1}: no here-documents in the document scripts")
        directive = SOURCE_DIRECTIVE.match(line)
        if directive:
            nxt = source[i + 1] if i + 1 < len(source) else ""
            m = INCLUDE.match(nxt)
            if not m or m.group(1) != directive.group(1):
                raise RenderError(f"{name}:{i + 1}: '# shellcheck source=' must sit on the line above its include")
            if m.group(1) == PATTERNS:
                out.append(PATTERNS_SLOT)
            else:
                out.extend(["", *render_file(m.group(1), False, stack + (name,)), ""])
            i += 2
            continue
        if INCLUDE.match(line):
            raise RenderError(f"{name}:{i + 1}: an include needs '# shellcheck source=' above it")
        if not is_comment(line):
            out.append(line.rstrip())
        i += 1
    # Blank lines only between code: none at either end, never two in a row, none after an
    # opening line (an included file's first comment may have sat between it and the code).
    tidy = []
    for line in out:
        if line == "" and (not tidy or tidy[-1] == "" or tidy[-1].endswith("{")):
            continue
        tidy.append(line)
    while tidy and tidy[-1] == "":
        tidy.pop()
    return tidy


def render_script(name, patterns):
    lines, _ = patterns
    body = render_file(name, True)
    text = "\n".join(body)
    # The patterns this script reads, and the ones those are built from, in patterns.sh order.
    wanted = set(REFERENCE.findall(text.replace(PATTERNS_SLOT, "")))
    unknown = wanted - set(lines)
    if unknown:
        raise RenderError(f"{name}: reads {sorted(unknown)}, which {PATTERNS} does not define")
    grew = True
    while grew:
        grew = False
        for n in list(wanted):
            for dep in REFERENCE.findall(lines[n].split("=", 1)[1]):
                if dep not in wanted:
                    wanted.add(dep)
                    grew = True
    if wanted and PATTERNS_SLOT not in body:
        raise RenderError(f"{name}: reads patterns but never sources {PATTERNS}")
    assignments = [line for n, line in lines.items() if n in wanted]
    rendered = []
    for line in body:
        if line == PATTERNS_SLOT:
            rendered.extend(assignments)
        else:
            rendered.append(line)
    return "\n".join(rendered) + "\n"


def render_template(text, patterns):
    _, values = patterns
    src = text.split("\n")
    out = []
    i = 0
    while i < len(src):
        line = src[i]
        m = PATTERN_LINE.match(line)
        if m:
            name = m.group(3)
            if name not in values:
                raise RenderError(f"template.yaml:{i + 1}: unknown pattern {name}")
            out.append(f"{m.group(1)}'{values[name]}'{m.group(2)}")
            i += 1
            continue
        if re.match(r"^\s*allowedPattern:", line):
            raise RenderError(f"template.yaml:{i + 1}: a document allowedPattern needs '# pattern: re_NAME'")
        mark = SCRIPT_MARK.match(line)
        if mark:
            indent = mark.group(1)
            out.append(line)
            if i + 1 >= len(src) or src[i + 1] != f"{indent}- |":
                raise RenderError(f"template.yaml:{i + 1}: '# script:' must sit right above '- |'")
            out.append(src[i + 1])
            content = indent + "  "
            # Skip the old block: its lines are indented deeper than the dash, or blank.
            j = i + 2
            while j < len(src) and (src[j].startswith(content) or src[j].strip() == ""):
                j += 1
            while j > i + 2 and src[j - 1].strip() == "":
                j -= 1  # blank lines after the block separate resources; they stay
            script = render_script(mark.group(2), patterns)
            out.extend(content + l if l else "" for l in script.rstrip("\n").split("\n"))
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", type=Path, help="write the rendered template here, not in place")
    ap.add_argument("--script", help="print one rendered script and stop")
    args = ap.parse_args()
    try:
        patterns = load_patterns()
        if args.script:
            sys.stdout.write(render_script(args.script, patterns))
            return 0
        rendered = render_template(TEMPLATE.read_text(encoding="utf-8"), patterns)
    except (RenderError, OSError, subprocess.CalledProcessError) as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    (args.output or TEMPLATE).write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

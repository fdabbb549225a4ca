#!/usr/bin/env python3
"""Check the Lambda zips `make package` builds.

Usage: check-lambda-zips.py LAMBDA_DIR FUNCTION...

Each LAMBDA_DIR/<function>/bootstrap.zip must hold exactly one entry, `bootstrap`, which must be an
executable 64-bit little-endian ELF for aarch64 (e_machine 183, EM_AARCH64), the provided.al2023 arm64
runtime's format. Prints `<function> <zip size in bytes>` per zip; exits 1 if any zip fails a check.
"""

import os
import struct
import sys
import zipfile

EM_AARCH64 = 183
ET_EXEC, ET_DYN = 2, 3


def check(path):
    """Return a list of problems with the zip at `path` (empty when it is fine)."""
    if not os.path.isfile(path):
        return [f"{path}: missing"]
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if names != ["bootstrap"]:
                return [f"{path}: expected exactly ['bootstrap'], found {names}"]
            info = zf.getinfo("bootstrap")
            with zf.open(info) as f:
                header = f.read(64)
    except zipfile.BadZipFile as e:
        return [f"{path}: not a zip file ({e})"]
    problems = []
    if len(header) < 64 or header[:4] != b"\x7fELF":
        return [f"{path}: bootstrap is not an ELF file"]
    if header[4] != 2:
        problems.append(f"{path}: bootstrap is not a 64-bit ELF (EI_CLASS {header[4]})")
    if header[5] != 1:
        problems.append(f"{path}: bootstrap is not little-endian (EI_DATA {header[5]})")
    e_type, e_machine = struct.unpack_from("<HH", header, 16)
    if e_machine != EM_AARCH64:
        problems.append(f"{path}: bootstrap e_machine is {e_machine}, expected {EM_AARCH64} (aarch64)")
    if e_type not in (ET_EXEC, ET_DYN):
        problems.append(f"{path}: bootstrap e_type is {e_type}, not an executable")
    # Unix permission bits live in the high 16 bits of external_attr; Lambda needs bootstrap executable.
    mode = info.external_attr >> 16
    if mode and not mode & 0o111:
        problems.append(f"{path}: bootstrap is not marked executable (mode {oct(mode)})")
    return problems


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    lambda_dir, functions = argv[1], argv[2:]
    failed = False
    for name in functions:
        path = os.path.join(lambda_dir, name, "bootstrap.zip")
        problems = check(path)
        if problems:
            failed = True
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
        else:
            print(f"{name} {os.path.getsize(path)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Re-import OONI's DNS blocking fingerprints into the shipped library, reproducibly.

    python scripts/import_ooni.py path/to/fingerprints_dns.csv [--commit 171641e]

The CSV is ooni/blocking-fingerprints' `fingerprints_dns.csv` at the given
commit (the shipped library was imported from 171641e, 2024-10-20).  The
script replaces the files an earlier import wrote (`signatures/dns/ooni/`,
only files that carry the import header, and `pcaps/dns/ooni-import-*/`),
then runs `fingerprint signatures import --with-fixtures`, which prints one
line per skipped or merged row and fails if a signature does not match its
crafted fixture.  Run `fingerprint signatures lint` and `test` afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path("signatures") / "dns" / "ooni"
FIXTURES = Path("pcaps") / "dns"
DEFAULT_COMMIT = "171641e"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="ooni/blocking-fingerprints fingerprints_dns.csv")
    parser.add_argument("--commit", default=DEFAULT_COMMIT,
                        help=f"the commit the CSV comes from (default {DEFAULT_COMMIT})")
    args = parser.parse_args(argv)
    csv_path = args.csv.resolve()
    if not csv_path.is_file():
        parser.error(f"{args.csv}: no such file")
    sys.path.insert(0, str(REPO))
    from fingerprint.cli import main as fingerprint_main

    # Generated fixture folders only: their names are the import's own.
    for folder in sorted((REPO / FIXTURES).glob("ooni-import-*")):
        if folder.is_dir():
            shutil.rmtree(folder)
    command = ["signatures", "import", str(csv_path), "--out", str(OUT), "--commit", args.commit,
               "--with-fixtures"]
    try:
        fingerprint_main(command)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    import os

    os.chdir(REPO)
    sys.exit(main())

#!/usr/bin/env python3
"""Regenerate (or check) what comes from the signature field registry.

    python scripts/signature_fields.py            # exit 1 naming each stale file
    python scripts/signature_fields.py --write    # rewrite the schema's field list and
                                                  # CONTRIBUTING.md's field table

The registry is `fingerprint/signature/fields.py`; tests fail while these are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fingerprint.signature.fields import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

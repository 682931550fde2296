"""Results researchers can use and share.

* `ooni`: analysis results as OONI measurements (df-000 envelope, df-002/005/006/008 test keys).
* `jsonl`: `JsonlWriter`, one measurement per line, flushed as each one ends.
* `evidence`: pcapng with a comment on every packet a finding rests on.
* `aggregate` + `render_*`: `fingerprint report`, combining runs into a platform x technique
  matrix per network.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fingerprint.output.evidence import annotate_captures, write_evidence
    from fingerprint.output.frames import RawFrame
    from fingerprint.output.jsonl import JsonlWriter
    from fingerprint.output.ooni.envelope import ProbeInfo
    from fingerprint.output.ooni.measurements import build_measurements, measurements_from_pipeline

_HOMES = {"annotate_captures": "evidence", "write_evidence": "evidence", "RawFrame": "frames",
          "JsonlWriter": "jsonl", "ProbeInfo": "ooni.envelope",
          "build_measurements": "ooni.measurements",
          "measurements_from_pipeline": "ooni.measurements"}
"""Where each name of the package lives: loaded on first use (PEP 562), so that a command
needing one submodule (the lab's `--jsonl` options) does not load the whole analysis."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = ["JsonlWriter", "ProbeInfo", "RawFrame", "annotate_captures", "build_measurements",
           "measurements_from_pipeline", "write_evidence"]

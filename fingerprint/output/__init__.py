"""Results researchers can use and share.

* `ooni`: analysis results as OONI measurements (df-000 envelope, df-002/005/006/008 test keys).
* `jsonl`: `JsonlWriter`, one measurement per line, flushed as each one ends.
* `evidence`: pcapng with a comment on every packet a finding rests on.
* `aggregate` + `render_*`: `fingerprint report`, combining runs into a platform x technique
  matrix per network.
"""

from __future__ import annotations

from fingerprint.output.evidence import annotate_captures, write_evidence
from fingerprint.output.frames import RawFrame
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.ooni.measurements import build_measurements, measurements_from_pipeline

__all__ = ["JsonlWriter", "ProbeInfo", "RawFrame", "annotate_captures", "build_measurements",
           "measurements_from_pipeline", "write_evidence"]

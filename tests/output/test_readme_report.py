"""The README's `fingerprint report` example against what `report` prints for a lab run.

The example in the README was printed by a live `lab run uzbekistan-2021`; here the
recorded fixture of that scenario stands in for it (measurements as `lab run` writes
them: source `lab`, annotated with the scenario), so the lines that say what the
report is (heading, matrix header, a finding's reference) are checked offline.
Counts, times and frame numbers differ between runs and are masked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fingerprint.output.cli import report
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.signature import load_library
from fingerprint.testing.fixtures import Fixture

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "uzbekistan-2021"


def _readme_report_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("$ fingerprint report runs.jsonl\n") + len("$ fingerprint report runs.jsonl\n")
    return text[start:text.index("```", start)].splitlines()


def _mask(line: str) -> str:
    line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", line)
    line = re.sub(r"\d+", "N", line)
    return " ".join(line.split())


def _printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    result, _report = Fixture(ROOT / "pcaps" / "lab" / SCENARIO).analyze(
        load_library(ROOT / "signatures"))
    assert result.pipeline is not None
    probe = ProbeInfo(annotations={"fingerprint_lab_scenario": SCENARIO})
    # `lab run --pcap-out` writes the packets in recording order: frame n stays frame n.
    frames = {(e.packet.capture, e.packet.frame): e.packet.frame
              for f in result.verdicts.findings for e in f.evidence}
    monkeypatch.chdir(tmp_path)
    with JsonlWriter("runs.jsonl") as out:
        for m in measurements_from_pipeline(result.pipeline, result.verdicts, probe,
                                            source="lab", evidence_pcap="evidence.pcapng",
                                            evidence_frames=frames):
            out.write(m)
    printed = CliRunner().invoke(report, ["runs.jsonl"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    return str(printed.stdout).splitlines()


def test_readme_report_heading_and_matrix_header_are_what_report_prints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _readme_report_block()
    printed = _printed(tmp_path, monkeypatch)
    assert _mask(shown[0]) == _mask(printed[0])
    assert shown[0].startswith(f"AS8193 UZ (lab: {SCENARIO}): 1 run(s), ")
    assert _mask(shown[1]) == _mask(printed[1])


def test_readme_report_reference_line_has_the_printed_shape(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = next(line for line in _readme_report_block() if line.startswith("[1] "))
    printed = next(line for line in _printed(tmp_path, monkeypatch) if line.startswith("[1] "))

    def shape(line: str) -> str:
        # The platform name differs (the fixture keeps Twitter and VKontakte, not Skype).
        return _mask(re.sub(r"^\[N\] .*? tls\.", "[N] P tls.", re.sub(r"\d+", "N", line))
                     .replace("/tmp/ooni-readme/", ""))

    assert shape(shown) == shape(printed)

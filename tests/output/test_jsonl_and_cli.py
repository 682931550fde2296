"""JSONL writing (flushed line by line) and `fingerprint analyze --jsonl/--pcap-out`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from synthetic import CLIENT, censored_network

from fingerprint.cli import cli
from fingerprint.output.jsonl import JsonlWriter, dumps_line


def test_each_line_is_on_disk_when_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = JsonlWriter(path)
    for n in range(3):
        writer.write({"n": n, "raw": b"\x00\xff", "set": {2, 1}})
        # Read through another handle before close: the line must be there.
        lines = path.read_text().splitlines()
        assert len(lines) == n + 1
        assert json.loads(lines[-1]) == {"n": n, "raw": "AP8=", "set": [1, 2]}
    writer.close()
    with JsonlWriter(path) as again:  # appends: runs accumulate in one file
        again.write({"n": 3})
    assert len(path.read_text().splitlines()) == 4
    assert dumps_line({"a": "ü"}) == '{"a":"ü"}\n'


def _analyze(args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["analyze", *args], catch_exceptions=False)


def test_analyze_writes_jsonl_and_evidence(catalog_file: Path, signatures_dir: Path,
                                           censored_capture: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "runs.jsonl"
    pcap = tmp_path / "evidence.pcapng"
    result = _analyze([str(censored_capture), "--catalog", str(catalog_file), "--signatures",
                       str(signatures_dir), "--jsonl", str(jsonl), "--pcap-out", str(pcap),
                       "--probe-asn", "8193", "--probe-cc", "uz", "--exit-code"])
    assert result.exit_code == 3, result.output
    measurements = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(measurements) == 4
    assert {(m["probe_asn"], m["probe_cc"]) for m in measurements} == {("AS8193", "UZ")}
    assert len({m["test_keys"]["x_fingerprint"]["run_id"] for m in measurements}) == 1
    assert CLIENT not in jsonl.read_text()
    twitter = next(m for m in measurements if m["input"] == "twitter.com")
    x_fp = twitter["test_keys"]["x_fingerprint"]
    assert x_fp["evidence_pcap"] == str(pcap) and x_fp["inputs"] == [censored_capture.name]
    frames = [p["evidence_frame"] for f in x_fp["findings"] for p in f["packets"]]
    assert frames and all(isinstance(n, int) for n in frames)
    # The report on stdout is unchanged by the output options.
    assert "Twitter / X" in result.stdout and "{" not in result.stdout.splitlines()[0]
    replay = _analyze([str(pcap), "--catalog", str(catalog_file), "--signatures",
                       str(signatures_dir), "--json"])
    techniques = {p["platform"]: sorted(p["techniques"])
                  for p in json.loads(replay.stdout)["platforms"]}
    assert techniques == {"telegram": ["ip.blackhole"],
                          "twitter": ["dns.injection", "tls.sni_reset"]}


def test_analyze_rejects_a_bad_asn(catalog_file: Path, censored_capture: Path,
                                   tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", str(censored_capture), "--catalog",
                                      str(catalog_file), "--probe-asn", "Uzbektelekom"])
    assert result.exit_code == 2
    assert "ASN" in result.stderr


def test_annotations_reach_every_measurement(catalog_file: Path, censored_capture: Path,
                                             tmp_path: Path) -> None:
    jsonl = tmp_path / "runs.jsonl"
    result = _analyze([str(censored_capture), "--catalog", str(catalog_file), "--jsonl", str(jsonl),
                       "--annotation", "campaign=uz-2021", "--annotation", "note=a=b"])
    assert result.exit_code == 0, result.output
    annotations = [json.loads(line)["annotations"] for line in jsonl.read_text().splitlines()]
    assert annotations and all(a["campaign"] == "uz-2021" and a["note"] == "a=b"
                               and a["fingerprint_source"] == "analyze" for a in annotations)
    bad = CliRunner().invoke(cli, ["analyze", str(censored_capture), "--annotation", "campaign"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr


def test_report_is_registered_in_the_main_command(tmp_path: Path, catalog_file: Path,
                                                  signatures_dir: Path) -> None:
    capture = censored_network().write(tmp_path / "c.pcapng")
    jsonl = tmp_path / "r.jsonl"
    run = [sys.executable, "-m", "fingerprint"]
    subprocess.run([*run, "analyze", str(capture), "--catalog", str(catalog_file),
                    "--signatures", str(signatures_dir), "--jsonl", str(jsonl)],
                   check=True, capture_output=True)
    done = subprocess.run([*run, "report", str(jsonl), "--format", "csv"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("probe_asn,probe_cc,platform")
    # stderr is not a terminal here: no progress lines at all.
    assert done.stderr == ""

"""Evidence as the outputs show it: attempt counts, the CSV evidence column, findings a
false-positive signature suppressed, and the response page of an HTTP finding."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from fingerprint.output.aggregate import PAGE_EXCERPT_CHARS
from fingerprint.output.cli import report
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.report import render_findings
from fingerprint.signature import load_library
from fingerprint.testing.fixtures import Fixture

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"
SCHEMAS = [ROOT / "fingerprint" / "schemas" / "report.schema.json",
           Path("/work/shared/contracts/report.schema.json")]


def _analyze(case: str) -> tuple[Any, dict[str, Any]]:
    result, built = Fixture(PCAPS / case).analyze(load_library(ROOT / "signatures"))
    assert result.pipeline is not None
    return result, built


def _jsonl(case: str, path: Path) -> list[dict[str, Any]]:
    result, _report = _analyze(case)
    measurements = measurements_from_pipeline(result.pipeline, result.verdicts)
    with JsonlWriter(path) as out:
        for m in measurements:
            out.write(m)
    return measurements


def _report(path: Path, fmt: str) -> str:
    result = CliRunner().invoke(report, [str(path), "--format", fmt], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


@pytest.mark.parametrize("case", ["ru/tspu-sni-drop", "kz/sni-timeout",
                                  "false-positive/injected-syn-rst"])
def test_one_attempt_is_singular(case: str) -> None:
    _result, built = _analyze(case)
    text = "\n".join(render_findings(built) + [
        line for p in built["platforms"] for f in [*p["findings"], *p.get("suppressed", [])]
        for line in f["evidence"]])
    assert not re.search(r"\b1 (connection )?attempts\b", text), text
    assert re.search(r"\b1 (connection )?attempt\b", text), text


def test_csv_evidence_names_each_measurement_line_once(tmp_path: Path) -> None:
    path = tmp_path / "blackhole.jsonl"
    measurements = _jsonl("lab/blackhole", path)
    # This run has measurements holding two findings of one technique (two attempts).
    assert any(len(m["test_keys"]["x_fingerprint"]["findings"]) > 1 for m in measurements)
    rows = list(csv.DictReader(io.StringIO(_report(path, "csv"))))
    evidence = [row["evidence"].split(";") for row in rows if row["evidence"]]
    assert evidence
    for entries in evidence:
        assert len(entries) == len(set(entries)), entries
    table = _report(path, "table")
    for line in table.splitlines():
        if "evidence:" in line:
            places = re.findall(r"\S+\.jsonl:\d+", line)
            assert len(places) == len(set(places)), line


def test_suppressed_finding_is_named_in_report_json_and_jsonl(tmp_path: Path) -> None:
    result, built = _analyze("false-positive/google-cctld")
    google = next(p for p in built["platforms"] if p["platform"] == "google")
    assert google["status"] == "accessible" and google["findings"] == []
    [suppressed] = google["suppressed"]
    assert suppressed["technique"] == "http.blockpage"
    assert suppressed["suppressed_by"] == ["fp-google-cctld-redirect"]
    assert suppressed["target"] == "google.com" and suppressed["evidence"]
    for schema_path in SCHEMAS:
        if schema_path.exists():
            jsonschema.validate(json.loads(json.dumps(built)), json.loads(schema_path.read_text()))
    line = next(m for m in measurements_from_pipeline(result.pipeline, result.verdicts)
                if m["input"] == "google.com")
    x_fp = line["test_keys"]["x_fingerprint"]
    assert x_fp["status"] == "accessible"
    assert [(s["technique"], s["suppressed_by"]) for s in x_fp["suppressed"]] == [
        ("http.blockpage", ["fp-google-cctld-redirect"])]
    # Platforms nothing was suppressed for carry no such key.
    assert all("suppressed" not in p for p in built["platforms"] if p["platform"] != "google")


def test_html_evidence_of_a_blockpage_shows_the_page_escaped(tmp_path: Path) -> None:
    path = tmp_path / "ir.jsonl"
    _jsonl("ir/http-iframe-blockpage", path)
    html = _report(path, "html")
    assert "HTTP/1.1 403 Forbidden" in html
    assert "Content-Length: 331" in html
    # The censor's markup is shown as text, never as markup of the report.
    assert "&lt;iframe src=&quot;http://10.10.34.34?type=Invalid Site" in html
    assert "<iframe" not in html
    data = json.loads(_report(path, "json"))
    refs = [ref for net in data["networks"] for p in net["platforms"]
            for cell in p["techniques"].values() for ref in cell["evidence"]]
    assert any(ref.get("page", {}).get("status_line") == "HTTP/1.1 403 Forbidden" for ref in refs)


def test_blockpage_redirect_shows_its_location(tmp_path: Path) -> None:
    path = tmp_path / "ru.jsonl"
    _jsonl("lab/russia", path)
    html = _report(path, "html")
    assert "HTTP/1.1 302 Found" in html and "Location: http://blocklist.rkn.gov.ru/" in html


def test_page_excerpt_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    measurements = _jsonl("ir/http-iframe-blockpage", path)
    blockpage = next(m for m in measurements if m["test_keys"]["x_fingerprint"]["findings"])
    big = "<p>" + "censored " * 5000 + "</p>"
    for request in blockpage["test_keys"]["requests"]:
        request["response"]["body"] = big
        request["response"]["x_body_length"] = len(big)
    path.write_text(json.dumps(blockpage) + "\n")
    html = _report(path, "html")
    assert "censored " * 100 not in html  # far fewer than the 5000 repeats
    assert f"excerpt of {len(big)} bytes" in html
    assert html.count("censored") <= PAGE_EXCERPT_CHARS // len("censored ") + 1

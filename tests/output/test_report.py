"""`fingerprint report`: combining runs per network, formats, exit codes, bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from synthetic import START, censored_network

from fingerprint.output.cli import report
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.ooni.measurements import measurements_from_pipeline

DAY = 86400.0


@pytest.fixture
def runs(analyze: Any, tmp_path: Path) -> dict[str, Path]:
    """Three runs in AS8193/UZ (blocked, blocked a day later, clean on day 3), one in AS64500/NL."""
    def run(name: str, start: float, blocked: bool, probe: ProbeInfo, out: Path) -> None:
        capture = censored_network(start, twitter_blocked=blocked).write(tmp_path / name)
        result = analyze(capture)
        with JsonlWriter(out) as writer:
            for m in measurements_from_pipeline(result.pipeline, result.verdicts, probe):
                writer.write(m)

    uz, nl = ProbeInfo(asn="AS8193", cc="UZ"), ProbeInfo(asn="AS64500", cc="NL")
    files = {"uz": tmp_path / "uz.jsonl", "nl": tmp_path / "nl.jsonl"}
    run("d1.pcapng", START, True, uz, files["uz"])
    run("d2.pcapng", START + DAY, True, uz, files["uz"])
    run("d3.pcapng", START + 2 * DAY, False, uz, files["uz"])
    run("nl.pcapng", START, False, nl, files["nl"])
    return files


def _report(*args: str) -> Any:
    return CliRunner().invoke(report, list(args), catch_exceptions=False)


def _json(*files: Path) -> dict[str, Any]:
    result = _report(*map(str, files), "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _platform(data: dict[str, Any], asn: str, platform: str) -> dict[str, Any]:
    net = next(n for n in data["networks"] if n["probe_asn"] == asn)
    return next(p for p in net["platforms"] if p["platform"] == platform)


def test_runs_combine_per_network(runs: dict[str, Path]) -> None:
    data = _json(runs["uz"], runs["nl"])
    assert data["measurements"] == 16 and data["skipped_lines"] == 0
    # Networks in AS-number order.
    assert [(n["probe_asn"], n["probe_cc"], n["runs"]) for n in data["networks"]] == [
        ("AS8193", "UZ", 3), ("AS64500", "NL", 1)]
    twitter = _platform(data, "AS8193", "twitter")
    reset = twitter["techniques"]["tls.sni_reset"]
    # Counted over runs, not over the platform's several measurements per run.
    assert (reset["runs_seen"], reset["runs_tested"]) == (2, 3)
    assert reset["first_seen"] == "2023-11-14 22:13:20"
    assert reset["last_seen"] == "2023-11-15 22:13:20"
    assert reset["signatures"] == {"test-rst-ttl64": 2}
    assert reset["evidence"][0]["file"] == str(runs["uz"])
    assert any(p["role"] == "injected" for p in reset["evidence"][0]["packets"])
    assert [t["status"] for t in twitter["timeline"]] == ["blocked", "blocked", "accessible"]
    assert twitter["latest_status"] == "accessible"
    assert _platform(data, "AS64500", "twitter")["techniques"] == {}
    telegram = _platform(data, "AS64500", "telegram")
    assert telegram["techniques"]["ip.blackhole"]["runs_seen"] == 1


def test_table_md_csv(runs: dict[str, Path]) -> None:
    table = _report(str(runs["uz"])).stdout
    assert "AS8193 UZ: 3 run(s)" in table
    assert "2/3 [" in table and f"{runs['uz']}:" in table
    md = _report(str(runs["uz"]), "--format", "md").stdout
    anchor = "ev-as8193-uz-twitter-tls-sni-reset"
    assert f"](#{anchor})" in md and f'<a id="{anchor}"></a>' in md
    assert "### Timeline" in md
    rows = list(csv.DictReader(io.StringIO(_report(str(runs["uz"]), "--format", "csv").stdout)))
    reset = next(r for r in rows if r["platform"] == "twitter" and r["technique"] == "tls.sni_reset")
    assert (reset["runs_seen"], reset["runs_tested"], reset["runs_blocked"]) == ("2", "3", "2")
    assert reset["signatures"] == "test-rst-ttl64"
    assert reset["evidence"].count(str(runs["uz"])) == 2


def test_html_is_self_contained(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = _report(str(runs["uz"]), str(runs["nl"]), "--format", "html", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for external in ("<script", "<link", "src=", "url(", "http://", "https://", "@import"):
        assert external not in page
    assert 'href="#ev-as8193-uz-twitter-tls-sni-reset"' in page
    assert 'id="ev-as8193-uz-twitter-tls-sni-reset"' in page
    assert 'class="timeline"' in page
    assert "TTL 64 vs server 47" in page


def test_exit_code(runs: dict[str, Path], tmp_path: Path) -> None:
    assert _report(str(runs["uz"]), "--exit-code").exit_code == 3
    assert _report(str(runs["uz"])).exit_code == 0
    clean = tmp_path / "clean.jsonl"
    lines = [json.loads(x) for x in runs["nl"].read_text().splitlines()]
    with JsonlWriter(clean) as out:
        for m in lines:
            if m["test_keys"]["x_fingerprint"]["platform"] == "twitter":
                out.write(m)
    assert _report(str(clean), "--exit-code").exit_code == 0


def test_bad_lines_are_named_and_the_rest_is_used(runs: dict[str, Path], tmp_path: Path) -> None:
    good = runs["uz"].read_text().splitlines()
    killed = tmp_path / "killed.jsonl"
    # A run killed mid-write: the last line is cut short, without its newline.
    killed.write_text("\n".join(good[:3]) + "\n" + good[3][: len(good[3]) // 2])
    other = tmp_path / "other.jsonl"
    other.write_text('{"software_name": "ooniprobe", "test_keys": {}}\n'
                     + good[4] + "\n[1, 2]\n\n" + good[5] + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = _report(str(killed), str(other), str(empty), str(tmp_path / "missing.jsonl"),
                     "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["measurements"] == 5 and data["skipped_lines"] == 5
    err = result.stderr
    assert f"{killed}:4: skipped: not valid JSON (the line is cut short" in err
    assert f"{other}:1: skipped: a measurement of another tool (software_name 'ooniprobe')" in err
    assert f"{other}:3: skipped: a JSON list, not a measurement object" in err
    assert f"{empty}: skipped: empty file" in err
    assert "missing.jsonl: skipped: cannot open" in err
    assert "warning:" not in result.stdout
    assert f"{killed}:4" in data["skipped"][0]


def test_nothing_readable_exits_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n")
    result = _report(str(junk))
    assert result.exit_code == 1
    assert f"{junk}:1: skipped: not valid JSON" in result.stderr
    assert "no measurement could be read" in result.stderr
    assert result.stdout == ""


def test_lab_runs_are_kept_apart_from_real_ones(analyze: Any, runs: dict[str, Path],
                                                tmp_path: Path) -> None:
    """A lab run carries the vantage point it emulates (AS8193 UZ) but is annotated as a
    lab measurement: the report never merges it into the real network."""
    result = analyze(censored_network(START + 3 * DAY).write(tmp_path / "lab.pcapng"))
    lab = ProbeInfo(asn="AS8193", cc="UZ", annotations={
        "fingerprint_source": "lab", "fingerprint_lab_scenario": "uzbekistan-2021"})
    lab_file = tmp_path / "lab.jsonl"
    with JsonlWriter(lab_file) as writer:
        for m in measurements_from_pipeline(result.pipeline, result.verdicts, lab):
            writer.write(m)
    data = _json(runs["uz"], lab_file)
    keys = sorted((n["probe_asn"], n.get("lab_scenario", ""), n["runs"]) for n in data["networks"])
    assert keys == [("AS8193", "", 3), ("AS8193", "uzbekistan-2021", 1)]
    table = _report(str(runs["uz"]), str(lab_file)).stdout
    assert "AS8193 UZ (lab: uzbekistan-2021): 1 run(s)" in table
    assert "AS8193 UZ: 3 run(s)" in table
    rows = list(csv.DictReader(io.StringIO(_report(str(lab_file), "--format", "csv").stdout)))
    assert rows and {r["lab_scenario"] for r in rows} == {"uzbekistan-2021"}

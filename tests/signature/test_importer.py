"""`fingerprint signatures import`: OONI blocking-fingerprints CSV rows -> signature files.

Each test writes its own small CSV in OONI's published format (header, quoting,
multi-value cells) and checks what becomes of every row: the signature written,
or the one line that says why it was skipped or merged.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP

from fingerprint.analysis.findings import Finding
from fingerprint.analysis.pipeline import Pipeline
from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.catalog import load_catalog
from fingerprint.errors import InputError
from fingerprint.model import Technique
from fingerprint.signature.cli import lint_paths, signatures
from fingerprint.signature.importer import (
    Origin,
    import_rows,
    parse_ooni_csv,
    read_ooni_csv,
    signature_id,
    write_signatures,
)
from fingerprint.signature.library import SignatureLibrary, load_library, load_signature
from fingerprint.testing.fixtures import Fixture, verdict_summary
from fingerprint.trust import TrustStore

HEADER = ["name", "scope", "other_names", "location_found", "pattern_type", "pattern",
          "confidence_no_fp", "expected_countries", "source", "exp_url", "notes"]

DNS_ROWS = [
    ["ooni.xx_0", "nat", "cl.dns_nat_xx_poison_01", "dns", "full", "203.0.113.65", "5", "CN", "ooni", "",
     "A poison reply, seen in 2014"],
    ["ooni.xx_1", "nat", "cl.dns_nat_xx_1,ooni.xx_legacy", "dns", "full", "10.10.34.34", "10", "IR", "",
     "https://explorer.ooni.org/measurement/x", "Redirect, to a private address"],
    ["ooni.xx_v6", "nat", "", "dns", "full", "D0::11", "10", "IR", "", "", ""],
    ["ooni.xx_cname", "isp", "", "dns", "full", "blockpage.isp.example", "5", "ID", "", "", ""],
    ["ooni.xx_bad", "isp", "", "dns", "full", "300.1.2.3", "5", "ID", "", "", ""],
    ["ooni.xx_dup", "isp", "", "dns", "full", "203.0.113.65", "5", "TW", "", "", ""],
    ["ooni.xx_conf", "isp", "", "dns", "full", "203.0.113.9", "high", "ID", "", "", ""],
    ["ooni.xx_cc", "isp", "", "dns", "full", "203.0.113.10", "5", "Indonesia", "", "", ""],
    ["cl.dns_br_localhost", "vbw", "", "dns", "full", "127.0.0.1", "10", "", "", "", ""],
    ["ooni.xx_pre", "isp", "", "dns", "prefix", "203.0.113.4", "5", "", "", "", ""],
    ["ooni.xx_scope", "planet", "", "dns", "full", "203.0.113.11", "5", "", "", "", ""],
]

HTTP_ROWS = [
    ["ooni.hh_0", "nat", "ooni.hh_legacy", "header.server", "prefix", "Protected by WireFilter", "5",
     "AE,SA", "ooni", "", ""],
    ["ooni.hh_1", "isp", "", "header.location", "prefix", "http://blocked.example/", "5", "RU",
     "https://isp.example/,https://isp.example/faq", "", ""],
    ["ooni.hh_2", "isp", "", "body", "contains", "<title>Access denied</title>", "8", "", "", "", ""],
    ["ooni.hh_3", "fp", "", "body", "full", "<HTML></HTML>", "5", "", "", "", "a false positive"],
    ["ooni.hh_4", "nat", "", "body", "regexp", r"blocked by order .* of the court", "5", "", "", "", ""],
    ["ooni.hh_re", "nat", "", "body", "regexp", "unbalanced (paren", "5", "", "", "", ""],
    ["ooni.hh_dos", "nat", "", "body", "regexp", "(a+)+$", "5", "", "", "", ""],
    ["ooni.hh_loc", "nat", "", "url", "contains", "x", "5", "", "", "", ""],
    ["ooni.hh_glob", "nat", "", "body", "glob", "*blocked*", "5", "", "", "", ""],
    ["ooni.hh_ru", "isp", "", "body", "contains", "Доступ ограничен", "5", "RU", "", "", ""],
    ["ooni.hh_ru_prefix", "isp", "", "body", "prefix", "Доступ", "5", "RU", "", "", ""],
    ["cp.x_isp_sky@net", "isp", "", "body", "contains", "skynet blocked", "5", "", "", "", ""],
]


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text(csv_text(rows), encoding="utf-8")
    return path


def by_alias(result: Any) -> dict[str, Any]:
    return {alias: item for item in result.imported for alias in item.document["aliases"]}


def skip_lines(result: Any) -> dict[str, str]:
    return {s.row.name: s.text() for s in result.skipped}


# ------------------------------------------------------------------ DNS rows

def test_dns_rows_become_answer_signatures_and_unexpressible_rows_are_named() -> None:
    rows = parse_ooni_csv(io.StringIO(csv_text(DNS_ROWS)))
    result = import_rows(rows, Origin("fingerprints_dns.csv", "abc1234"))
    items = by_alias(result)
    cn = items["ooni.xx_0"].document
    assert cn["id"] == "ooni.xx_0"
    assert cn["techniques"] == ["dns.redirect", "dns.injection"]
    assert cn["match"]["matchers"] == [{"field": "dns.answer", "op": "equals", "value": "203.0.113.65"}]
    assert cn["kind"] == "censor" and cn["scope"] == "nat"
    assert cn["confidence"] == 0.5
    assert cn["aliases"] == ["ooni.xx_0", "cl.dns_nat_xx_poison_01", "ooni.xx_dup"]
    assert cn["countries"] == ["CN", "TW"]  # the merged repeat adds its country
    first_ref = cn["references"][0]
    assert "ooni/blocking-fingerprints fingerprints_dns.csv @ abc1234" in first_ref["source"]
    assert "row 1 (line 2)" in first_ref["source"]
    assert first_ref["url"].endswith("/blob/abc1234/fingerprints_dns.csv?plain=1#L2")
    assert 'pattern="203.0.113.65"' in first_ref["values"]
    assert "A poison reply, seen in 2014" in cn["description"]
    assert cn["fixtures"]["positive"] == ["pcaps/dns/ooni-import-cn/"]

    ir = items["cl.dns_nat_xx_1"].document
    assert ir["aliases"] == ["ooni.xx_1", "cl.dns_nat_xx_1", "ooni.xx_legacy"]
    assert ir["confidence"] == 1.0
    assert {"source": "OONI Explorer measurement cited by ooni.xx_1 (exp_url)",
            "url": "https://explorer.ooni.org/measurement/x"} in ir["references"]
    # IPv6 answers are compared in canonical form: the same address, never a different one.
    assert items["ooni.xx_v6"].document["match"]["matchers"][0]["value"] == "d0::11"
    assert items["ooni.xx_pre"].document["match"]["matchers"][0] == {
        "field": "dns.answer", "op": "prefix", "value": "203.0.113.4"}
    assert "countries" not in items["cl.dns_br_localhost"].document

    skipped = skip_lines(result)
    assert set(skipped) == {"ooni.xx_bad", "ooni.xx_conf", "ooni.xx_cc", "ooni.xx_scope"}
    # A host name is the CNAME target the answer leads to: matched over dns.cname.
    assert items["ooni.xx_cname"].document["match"]["matchers"] == [
        {"field": "dns.cname", "op": "equals", "value": "blockpage.isp.example"}]
    assert items["ooni.xx_cname"].address is None
    assert items["ooni.xx_cname"].cname == "blockpage.isp.example"
    assert "malformed address '300.1.2.3'" in skipped["ooni.xx_bad"]
    assert "confidence_no_fp 'high' is not an integer" in skipped["ooni.xx_conf"]
    assert "malformed country code(s) 'Indonesia'" in skipped["ooni.xx_cc"]
    assert "unknown scope 'planet'" in skipped["ooni.xx_scope"]
    merged = [m for m in result.messages if "merged into" in m]
    assert merged == ["row 6 (line 7, ooni.xx_dup): merged into ooni.xx_0 (same dns full pattern as "
                      "row 1 (line 2, ooni.xx_0)); kept as an alias"]
    assert "CNAME target (host name) pattern" not in result.skip_reasons()


def test_written_files_load_and_lint_clean_with_their_fixtures(tmp_path: Path) -> None:
    runner = CliRunner()
    csv_file = write_csv(tmp_path / "fingerprints_dns.csv", DNS_ROWS)
    out = tmp_path / "signatures" / "dns" / "ooni"
    res = runner.invoke(signatures, ["import", str(csv_file), "--out", str(out), "--commit", "abc1234",
                                     "--with-fixtures", "--library", str(tmp_path / "signatures")])
    assert res.exit_code == 0, res.output
    assert "skipped: malformed address '300.1.2.3'" in res.output
    assert "11 rows: 6 signatures, 1 rows merged into them as aliases, 4 skipped" in res.stderr
    names = sorted(p.name for p in out.glob("*.yaml"))
    assert names == ["cl.dns_br_localhost.yaml", "ooni.xx_0.yaml", "ooni.xx_1.yaml", "ooni.xx_cname.yaml",
                     "ooni.xx_pre.yaml", "ooni.xx_v6.yaml"]
    # The prefix row has no exact address, so no crafted fixture proves it yet: lint says so.
    loaded, problems = lint_paths(tmp_path / "signatures")
    assert len(loaded) == 6
    assert len(problems) == 1
    assert re.fullmatch(rf"{re.escape(str(out / 'ooni.xx_pre.yaml'))}:\d+: fixture folder "
                        "'pcaps/dns/ooni-import-ooni.xx_pre/' not found", problems[0]), problems
    # Replay each crafted fixture with the imported library: every signature it proves matches.
    library = load_library(tmp_path / "signatures")
    for sig in loaded:
        ref = sig.positive_fixtures[0]
        if sig.id == "ooni.xx_pre":
            continue
        result, report = Fixture(tmp_path / ref).analyze(library)
        assert sig.id in {s for f in result.verdicts.findings for s in f.signatures}, sig.id
        expected = json.loads((tmp_path / ref / "expected.json").read_text())
        assert verdict_summary(expected) == verdict_summary(report)
    for country in ("cn", "ir", "id"):
        folder = tmp_path / "pcaps" / "dns" / f"ooni-import-{country}"
        assert (folder / "expected.json").is_file() and (folder / "README.md").is_file()
        assert (folder / f"ooni-import-{country}.pcap").is_file()
    assert "ooni.xx_1" in (tmp_path / "pcaps/dns/ooni-import-ir/README.md").read_text()


def test_http_import_with_fixtures_lints_clean_and_every_signature_matches(tmp_path: Path) -> None:
    """--with-fixtures crafts the HTTP fixtures too: a response carrying each row's pattern
    (a regex row: a text it matches; a false positive: a redirect it suppresses)."""
    csv_file = write_csv(tmp_path / "fingerprints_http.csv", HTTP_ROWS)
    out = tmp_path / "signatures" / "http" / "ooni"
    res = CliRunner().invoke(signatures, ["import", str(csv_file), "--out", str(out), "--commit",
                                          "abc1234", "--with-fixtures", "--library",
                                          str(tmp_path / "signatures")])
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.output
    loaded, problems = lint_paths(tmp_path / "signatures")
    assert problems == [] and len(loaded) >= 6, problems
    library = load_library(tmp_path / "signatures")
    for sig in loaded:
        result, report = Fixture(tmp_path / sig.positive_fixtures[0]).analyze(library)
        found = [*result.verdicts.findings, *result.verdicts.suppressed]
        assert sig.id in {s for f in found for s in f.signatures}, sig.id
        expected = json.loads((tmp_path / sig.positive_fixtures[0] / "expected.json").read_text())
        assert verdict_summary(expected) == verdict_summary(report)
    ids = {s.id for s in loaded}
    assert {"ooni.hh_3", "ooni.hh_4", "ooni.hh_ru"} <= ids  # false positive, regex, UTF-8 bytes


def test_regex_examples_match_their_pattern() -> None:
    from fingerprint.signature.import_fixtures import regex_example

    for pattern in (r"URL .* Sp.*er Gate", r"<p>The document has moved <a href=.*here</a>\.</p>",
                    r"U\.S\..*Command", r"(?:blocked|denied) by [a-z]+ \d{2}"):
        example = regex_example(pattern)
        assert example is not None and re.search(pattern, example, re.IGNORECASE), pattern
    assert regex_example(r"[^a-z]+") is None  # no example is guessed for a negated class


def test_imported_signature_matches_a_finding_carrying_its_answer(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "fingerprints_dns.csv", DNS_ROWS[:3])
    result = import_rows(read_ooni_csv(csv_file), Origin(csv_file.name))
    write_signatures(result, tmp_path / "sigs")
    library = load_library(tmp_path / "sigs")
    catalog = load_catalog()
    pipeline = Pipeline(catalog, library, TrustStore())
    client, resolver = "192.0.2.10", "198.51.100.53"
    exchanges = [("example.com", "203.0.113.99"), ("twitter.com", "203.0.113.65"),
                 ("vk.com", "203.0.113.66")]
    ts = 1_700_000_000.0
    frame = 0
    for i, (name, answer) in enumerate(exchanges):
        for pkt in (IP(src=client, dst=resolver) / UDP(sport=40000 + i, dport=53)
                    / DNS(id=i, rd=1, qd=DNSQR(qname=name)),
                    IP(src=resolver, dst=client, ttl=58) / UDP(sport=53, dport=40000 + i)
                    / DNS(id=i, qr=1, rd=1, ra=1, qd=DNSQR(qname=name),
                          an=DNSRR(rrname=name, rdata=answer))):
            frame += 1
            ts += 0.02
            packet = dissect(frame, ts, LINKTYPE_RAW, bytes(pkt))
            assert packet is not None
            pipeline.feed(packet)
    verdicts = pipeline.finish()
    found = {(f.target, f.technique, tuple(f.signatures)) for f in verdicts.findings}
    # The known address is a redirect named by its signature; the neighbour address is not.
    assert found == {("twitter.com", Technique.DNS_REDIRECT, ("ooni.xx_0",))}


def test_rows_a_hand_written_signature_covers_are_skipped_with_its_id(tmp_path: Path) -> None:
    library_dir = tmp_path / "signatures"
    (library_dir / "dns").mkdir(parents=True)
    base: dict[str, Any] = {"schema_version": 1, "kind": "censor", "status": "test",
                            "references": [{"source": "a published report"}],
                            "fixtures": {"positive": ["pcaps/dns/x/"]}}
    hand = [
        {"id": "gfw-forged", "title": "GFW forged answers", "techniques": ["dns.injection"],
         "match": {"matchers": [{"field": "dns.answer", "op": "one_of",
                                 "values": ["203.0.113.65", "203.0.113.98"]}]}},
        {"id": "ir-redirect", "title": "Iran redirect", "techniques": ["dns.redirect"],
         "aliases": ["ooni.xx_1"],
         "match": {"matchers": [{"field": "dns.answer", "op": "cidr", "values": ["10.10.34.0/24"]}]}},
        {"id": "ir-v6", "title": "Iran v6 with TTL", "techniques": ["dns.redirect"],
         "match": {"matchers": [{"field": "dns.answer", "op": "equals", "value": "d0::11"},
                                {"field": "ip.ttl", "op": "range", "min": 30, "max": 40}]}},
    ]
    for doc in hand:
        (library_dir / "dns" / f"{doc['id']}.yaml").write_text(yaml.safe_dump({**base, **doc}))
    existing = load_library(library_dir)
    rows = parse_ooni_csv(io.StringIO(csv_text(DNS_ROWS[:3])))
    result = import_rows(rows, Origin("fingerprints_dns.csv"), existing)
    skipped = skip_lines(result)
    assert "already covered by gfw-forged (matches the same answer 203.0.113.65)" in skipped["ooni.xx_0"]
    assert "already covered by ir-redirect (lists ooni.xx_1 as an alias)" in skipped["ooni.xx_1"]
    # A more specific hand-written rule is not a twin: both are kept, and the import says so.
    assert [i.id for i in result.imported] == ["ooni.xx_v6"]
    assert any("note: ir-v6 also tests this answer" in m for m in result.messages)


def test_reimport_replaces_its_own_files_but_never_hand_written_ones(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "signatures" / "dns" / "ooni"
    out.mkdir(parents=True)
    mine = out / "my-own.yaml"
    mine.write_text("# a contributor's file\nid: my-own\n")
    first = write_csv(tmp_path / "a.csv", DNS_ROWS[:2])
    assert runner.invoke(signatures, ["import", str(first), "--out", str(out)]).exit_code == 0
    second = write_csv(tmp_path / "b.csv", DNS_ROWS[1:2])
    res = runner.invoke(signatures, ["import", str(second), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "replacing 2 from an earlier import" in res.stderr
    assert sorted(p.name for p in out.glob("*.yaml")) == ["my-own.yaml", "ooni.xx_1.yaml"]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "f.csv", DNS_ROWS)
    out = tmp_path / "signatures" / "dns" / "ooni"
    res = CliRunner().invoke(signatures, ["import", str(csv_file), "--out", str(out), "--dry-run"])
    assert res.exit_code == 0
    assert "skipped" in res.output and not out.exists()


# ----------------------------------------------------------------- HTTP rows

def test_http_rows_map_location_and_pattern_type_to_fields_and_ops() -> None:
    rows = parse_ooni_csv(io.StringIO(csv_text(HTTP_ROWS)))
    result = import_rows(rows, Origin("fingerprints_http.csv", "abc1234"))
    items = by_alias(result)

    def matcher(name: str) -> dict[str, Any]:
        m: dict[str, Any] = items[name].document["match"]["matchers"][0]
        return m

    assert matcher("ooni.hh_0") == {"field": "http.header.server", "op": "prefix",
                                    "value": "Protected by WireFilter"}
    assert matcher("ooni.hh_1") == {"field": "http.header.location", "op": "prefix",
                                    "value": "http://blocked.example/"}
    assert matcher("ooni.hh_2") == {"field": "http.body", "op": "contains",
                                    "value": "<title>Access denied</title>"}
    assert matcher("ooni.hh_3") == {"field": "http.body", "op": "equals", "value": "<HTML></HTML>"}
    assert matcher("ooni.hh_4")["op"] == "regex"
    # Bodies are read as latin-1 text: a Cyrillic pattern keeps its meaning only as UTF-8 bytes.
    assert matcher("ooni.hh_ru") == {"field": "http.body", "op": "bytes_contains",
                                     "value": "Доступ ограничен".encode().hex()}
    assert items["ooni.hh_3"].document["kind"] == "false-positive"
    assert items["ooni.hh_0"].document["techniques"] == ["http.blockpage"]
    assert items["ooni.hh_0"].document["countries"] == ["AE", "SA"]
    assert items["ooni.hh_2"].document["confidence"] == 0.8
    refs = items["ooni.hh_1"].document["references"]
    assert [r.get("url") for r in refs[1:]] == ["https://isp.example/", "https://isp.example/faq"]
    sky = items["cp.x_isp_sky@net"]
    assert sky.id == "cp.x_isp_sky-net" and "cp.x_isp_sky@net" in sky.document["aliases"]
    assert any("written as cp.x_isp_sky-net" in m for m in result.messages)

    skipped = skip_lines(result)
    assert set(skipped) == {"ooni.hh_re", "ooni.hh_dos", "ooni.hh_loc", "ooni.hh_glob",
                            "ooni.hh_ru_prefix"}
    assert "invalid regular expression" in skipped["ooni.hh_re"]
    assert "nested quantifier" in skipped["ooni.hh_dos"]
    assert "unknown location_found 'url'" in skipped["ooni.hh_loc"]
    assert "unknown pattern_type 'glob'" in skipped["ooni.hh_glob"]
    assert "non-ASCII prefix pattern on body" in skipped["ooni.hh_ru_prefix"]


def _http_finding(body: bytes, headers: dict[str, str]) -> Finding:
    context: dict[str, Any] = {"trigger.host": "blocked.example", "http.status": 200, "http.body": body}
    context.update({f"http.header.{k}": v for k, v in headers.items()})
    return Finding("other", "blocked.example", Technique.HTTP_BLOCKPAGE, 0.8, "203.0.113.10",
                   context=context)


def test_imported_http_signatures_load_and_match_blockpages(tmp_path: Path) -> None:
    rows = parse_ooni_csv(io.StringIO(csv_text(HTTP_ROWS)))
    result = import_rows(rows, Origin("fingerprints_http.csv"))
    write_signatures(result, tmp_path)
    sigs = {p.stem: load_signature(p) for p in tmp_path.glob("*.yaml")}
    assert len(sigs) == len(result.imported) == 7
    page = "<html><title>Access denied</title>Доступ ограничен: blocked by order 12 of the court</html>"
    finding = _http_finding(page.encode(), {"server": "Protected by WireFilter 2.1",
                                            "location": "http://blocked.example/?u=x"})
    hits = {sid for sid, sig in sigs.items() if sig.matches(finding)}
    assert hits == {"ooni.hh_0", "ooni.hh_1", "ooni.hh_2", "ooni.hh_4", "ooni.hh_ru"}
    plain = _http_finding(b"<html><title>Welcome</title></html>", {"server": "nginx"})
    assert not any(sig.matches(plain) for sig in sigs.values())
    fp = _http_finding(b"<HTML></HTML>", {})
    library = SignatureLibrary(list(sigs.values()))
    assert library.apply(fp) is False  # the false-positive row suppresses the finding


# ---------------------------------------------------------------- the format

def test_quoted_multi_value_cells_and_multiline_rows_keep_their_line_numbers() -> None:
    text = ('name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,'
            'expected_countries,source,exp_url,notes\n'
            'ooni.aa_0,nat,"cl.a,cl.b",dns,full,198.18.0.1,5,"AA",ooni,,"two\nlines"\n'
            'ooni.aa_1,nat,,dns,full,198.18.0.2,5,AA,ooni,,\n')
    rows = parse_ooni_csv(io.StringIO(text))
    assert [(r.number, r.line, r.name) for r in rows] == [(1, 2, "ooni.aa_0"), (2, 4, "ooni.aa_1")]
    assert rows[0].other_names == ["cl.a", "cl.b"]
    assert rows[0]["notes"] == "two\nlines"


def test_a_file_that_is_not_a_blocking_fingerprints_csv_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text("domain,ip\nexample.com,192.0.2.1\n")
    with pytest.raises(InputError, match="missing column") as refused:
        read_ooni_csv(bad)
    message = str(refused.value)
    # Each missing column is named once (the message used to list them all twice).
    for column in ("name", "pattern_type", "expected_countries", "exp_url"):
        assert len(re.findall(rf"\b{column}\b", message)) == 1, message
    assert "domain, ip" in message  # what the file has instead
    with pytest.raises(InputError, match="cannot read"):
        read_ooni_csv(tmp_path / "absent.csv")
    res = CliRunner().invoke(signatures, ["import", str(bad), "--dry-run"])
    assert res.exit_code != 0


def test_extra_cells_are_a_skipped_row_not_a_shifted_pattern() -> None:
    text = csv_text([]) + "ooni.zz_1,nat,,dns,full,198.18.0.1,5,ZZ,ooni,,note,surplus\n"
    result = import_rows(parse_ooni_csv(io.StringIO(text)), Origin("f.csv"))
    assert not result.imported
    assert "more cells than columns" in result.skipped[0].text()


@pytest.mark.parametrize(("name", "expected"), [
    ("ooni.cn_0", "ooni.cn_0"), ("cp.d_corp_Grupo_energia", "cp.d_corp_grupo_energia"),
    ("cp.fp_x_\ufffd", "cp.fp_x"), ("x", "ooni-x"), ("_lead", "lead"),
])
def test_signature_ids_are_valid_and_unique(name: str, expected: str) -> None:
    assert signature_id(name, set()) == expected
    assert signature_id(name, {expected}) == f"{expected}-2"

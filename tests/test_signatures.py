"""The shipped signature library, and the matcher semantics it relies on.

Library: `fingerprint signatures lint` and `test` pass; every signature's
positive fixtures match it and nothing of another country's censor; every
false-positive signature really suppresses a finding; matches are listed best
first.  Matchers: one test per op and modifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fingerprint.errors import SignatureError
from fingerprint.signature import Signature, SignatureLibrary, load_library
from fingerprint.signature.cli import lint_paths
from fingerprint.signature.cli import signatures as signatures_command
from fingerprint.signature.match import Matcher, build_matcher, compile_pattern
from fingerprint.testing.fixtures import resolve_fixture

REPO = Path(__file__).resolve().parents[1]
SIGNATURES = REPO / "signatures"


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(SIGNATURES)


@pytest.fixture(scope="module")
def matches(library: SignatureLibrary) -> dict[str, dict[str, Any]]:
    """Per fixture reference: matched ids, suppressed ids, and the findings."""
    out: dict[str, dict[str, Any]] = {}
    refs = {ref for sig in library.signatures
            for ref in (*sig.positive_fixtures, *sig.negative_fixtures)}
    for ref in sorted(refs):
        result, _report = resolve_fixture(ref, REPO).analyze(library)
        out[ref] = {
            "matched": {s for f in result.verdicts.findings for s in f.signatures},
            "suppressed": {s for f in result.verdicts.suppressed for s in f.signatures},
            "findings": result.verdicts.findings,
        }
    return out


# --------------------------------------------------------------------------- library

def test_library_is_big_enough(library: SignatureLibrary) -> None:
    curated = [s for s in library.signatures if not s.id.startswith(("ooni.", "cl."))]
    assert len(curated) >= 30
    assert any(s.is_false_positive for s in curated)


def test_lint_passes() -> None:
    loaded, problems = lint_paths(SIGNATURES)
    assert problems == []
    assert len(loaded) == len(list(SIGNATURES.rglob("*.yaml")))


def test_signatures_test_command_passes() -> None:
    result = CliRunner().invoke(signatures_command, ["test", str(SIGNATURES)])
    assert result.exit_code == 0, result.output
    assert "0 failures" in result.output


def test_every_signature_cites_values_from_its_source(library: SignatureLibrary) -> None:
    for sig in library.signatures:
        assert any(r.get("values", "").strip() for r in sig.references), sig.id


def test_every_signature_has_a_positive_fixture_and_ids_are_file_names(
        library: SignatureLibrary) -> None:
    for sig in library.signatures:
        assert sig.positive_fixtures, sig.id
        assert Path(sig.path).stem == sig.id


def _censor(library: SignatureLibrary, sig_id: str) -> Signature:
    sig = library.get(sig_id)
    assert sig is not None
    return sig


def test_positive_fixtures_match_nothing_of_another_countrys_censor(
        library: SignatureLibrary, matches: dict[str, dict[str, Any]]) -> None:
    for sig in library.signatures:
        if sig.is_false_positive or not sig.countries:
            continue
        for ref in sig.positive_fixtures:
            for other_id in matches[ref]["matched"]:
                other = _censor(library, other_id)
                if other.countries:
                    assert set(other.countries) & set(sig.countries), (
                        f"{ref}: positive for {sig.id} ({sig.countries}) also matches "
                        f"{other.id} ({other.countries})")


def test_negative_fixtures_match_nothing_of_the_signature(
        library: SignatureLibrary, matches: dict[str, dict[str, Any]]) -> None:
    for sig in library.signatures:
        for ref in sig.negative_fixtures:
            hit = matches[ref]["suppressed" if sig.is_false_positive else "matched"]
            assert sig.id not in hit, f"{sig.id} matches its negative fixture {ref}"


def test_false_positive_signatures_suppress_a_real_finding(library: SignatureLibrary) -> None:
    """Without the false-positive signature, its fixture reports a finding it covers."""
    for sig in [s for s in library.signatures if s.is_false_positive]:
        without = SignatureLibrary([s for s in library.signatures if s.id != sig.id])
        for ref in sig.positive_fixtures:
            result, _report = resolve_fixture(ref, REPO).analyze(without)
            techniques = {f.technique for f in result.verdicts.findings}
            assert techniques & sig.techniques, f"{sig.id}: {ref} has nothing to suppress"


def test_false_positive_signatures_are_checked_first(library: SignatureLibrary) -> None:
    kinds = [s.is_false_positive for s in library.signatures]
    assert kinds == sorted(kinds, reverse=True)


def test_matches_are_listed_most_specific_first(
        library: SignatureLibrary, matches: dict[str, dict[str, Any]]) -> None:
    for ref, data in matches.items():
        for finding in data["findings"]:
            confidences = [_censor(library, s).confidence for s in finding.signatures]
            assert confidences == sorted(confidences, reverse=True), (ref, finding.signatures)


def test_specific_signature_outranks_generic_one(matches: dict[str, dict[str, Any]]) -> None:
    finding = next(f for f in matches["pcaps/tm/dns-injection-127"]["findings"])
    assert finding.signatures[0] == "tm-dns-injection"
    assert "generic-dns-loopback" in finding.signatures[1:]


def test_vantage_scoped_signatures_need_the_probe_country(matches: dict[str, dict[str, Any]]) -> None:
    """The same silent drop is attributed by probe_cc only."""
    assert matches["pcaps/uz/sni-drop-2021"]["matched"] == {"uz-sni-drop-2021"}
    assert matches["pcaps/kz/sni-timeout"]["matched"] == {"kz-sni-timeout"}
    assert matches["pcaps/ru/tspu-sni-drop"]["matched"] == {"ru-tspu-sni-drop"}
    assert matches["pcaps/ir/sni-handshake-failure"]["matched"] == {"ir-sni-handshake-failure"}


# --------------------------------------------------------------------------- matchers

def m(**spec: Any) -> Matcher:
    return build_matcher(spec)


def packets(*fields: dict[str, Any], role: str = "injected") -> dict[str, list[dict[str, Any]]]:
    items = list(fields)
    return {"injected": items if role == "injected" else [],
            "responses": items, "all": items}


NO_PACKETS: dict[str, list[dict[str, Any]]] = {"injected": [], "responses": [], "all": []}


def test_equals_compares_numbers_text_and_booleans_strictly() -> None:
    assert m(field="ip.id", op="equals", value=30000).evaluate({}, packets({"ip.id": 30000}))
    assert not m(field="ip.id", op="equals", value=30000).evaluate({}, packets({"ip.id": 30001}))
    assert m(field="outcome", op="equals", value="SILENCE").evaluate({"outcome": "silence"},
                                                                     NO_PACKETS)
    df_false = m(field="ip.df", op="equals", value=False)
    assert df_false.evaluate({}, packets({"ip.df": False}))
    assert not df_false.evaluate({}, packets({"ip.df": 0}))  # 0 is not False
    assert not m(field="ip.id", op="equals", value=1).evaluate({}, packets({"ip.id": True}))


def test_one_of() -> None:
    rule = m(field="tcp.seq_delta", op="one_of", values=[0, 1460, 4380])
    assert rule.evaluate({}, packets({"tcp.seq_delta": 1460}))
    assert not rule.evaluate({}, packets({"tcp.seq_delta": 1461}))


def test_prefix_suffix_contains_ignore_case_and_read_bytes() -> None:
    ctx = {"http.header.location": "HTTP://Reestr.mitc.uz/x", "trigger.sni": "abs.twimg.com",
           "response.payload": b"\x00Middlebox v 1.0\r\n"}
    assert m(field="http.header.location", op="prefix",
             value="http://reestr.mitc.uz/").evaluate(ctx, NO_PACKETS)
    assert m(field="trigger.sni", op="suffix", value=".TWIMG.com").evaluate(ctx, NO_PACKETS)
    assert m(field="response.payload", op="contains", value="middlebox v 1.0").evaluate(
        ctx, NO_PACKETS)
    assert not m(field="trigger.sni", op="prefix", value="twimg").evaluate(ctx, NO_PACKETS)


def test_regex_searches_and_refuses_catastrophic_patterns() -> None:
    rule = m(field="trigger.sni", op="regex", value=r"t\.co|\.twimg\.com$|twitter\.com$")
    for name in ("t.co", "microsoft.com", "abs.twimg.com", "api.twitter.com"):
        assert rule.evaluate({"trigger.sni": name}, NO_PACKETS), name
    assert not rule.evaluate({"trigger.sni": "example.com"}, NO_PACKETS)
    with pytest.raises(ValueError, match="nested quantifier"):
        compile_pattern("(a+)+$")
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_pattern("(unclosed")


def test_cidr_matches_its_version_only_and_rejects_bad_networks() -> None:
    rule = m(field="dns.answer", op="cidr", values=["2001::/32", "10.0.0.0/8"])
    assert rule.evaluate({}, packets({"dns.answer": ["2001::1f0d:5a24"]}))
    assert rule.evaluate({}, packets({"dns.answer": ["10.10.34.35"]}))
    assert not rule.evaluate({}, packets({"dns.answer": ["2001:db8::1", "11.0.0.1"]}))
    assert not rule.evaluate({}, packets({"dns.answer": ["not an address"]}))
    with pytest.raises(ValueError, match="not a CIDR"):
        m(field="dns.answer", op="cidr", values=["10.0.0.0/33"])


def test_range_is_inclusive_and_ignores_non_numbers() -> None:
    rule = m(field="ip.ttl", op="range", min=246, max=250)
    assert rule.evaluate({}, packets({"ip.ttl": 246})) and rule.evaluate({}, packets({"ip.ttl": 250}))
    assert not rule.evaluate({}, packets({"ip.ttl": 251}))
    assert not rule.evaluate({}, packets({"ip.ttl": "248"}))
    assert m(field="tcp.synack_conflicts", op="range", min=1).evaluate(
        {"tcp.synack_conflicts": 3}, NO_PACKETS)
    with pytest.raises(ValueError, match="min"):
        m(field="ip.ttl", op="range")


def test_bytes_ops_compare_raw_payloads() -> None:
    henan = bytes.fromhex("01020304050607080900")
    assert m(field="tcp.payload", op="bytes_equals", value="01020304050607080900").evaluate(
        {}, packets({"tcp.payload": henan}))
    assert not m(field="tcp.payload", op="bytes_equals", value="0102").evaluate(
        {}, packets({"tcp.payload": henan}))
    assert m(field="tcp.payload", op="bytes_contains", value="0809").evaluate(
        {}, packets({"tcp.payload": henan}))
    with pytest.raises(ValueError, match="hex"):
        m(field="tcp.payload", op="bytes_equals", value="zz")


def test_exists_and_missing_fields() -> None:
    assert m(field="tls.cert.issuer", op="exists").evaluate({"tls.cert.issuer": "CN=x"},
                                                            NO_PACKETS)
    assert not m(field="tls.cert.issuer", op="exists").evaluate({}, NO_PACKETS)
    assert not m(field="ip.id", op="equals", value=0).evaluate({}, packets({"ip.ttl": 3}))


def test_negate_inverts_the_whole_matcher() -> None:
    rule = m(field="dns.answer", op="cidr", values=["127.0.0.0/8"], negate=True)
    assert rule.evaluate({}, packets({"dns.answer": ["8.7.198.45"]}))
    assert not rule.evaluate({}, packets({"dns.answer": ["127.0.0.1"]}))


def test_count_and_quantifier_over_packets() -> None:
    three = packets({"tcp.flags": "RA"}, {"tcp.flags": "RA"}, {"tcp.flags": "RA"})
    two = packets({"tcp.flags": "RA"}, {"tcp.flags": "R"}, {"tcp.flags": "RA"})
    assert m(field="tcp.flags", op="equals", value="RA", count=3).evaluate({}, three)
    assert not m(field="tcp.flags", op="equals", value="RA", count=3).evaluate({}, two)
    assert m(field="tcp.flags", op="equals", value="RA", quantifier="all").evaluate({}, three)
    assert not m(field="tcp.flags", op="equals", value="RA", quantifier="all").evaluate({}, two)
    assert not m(field="tcp.flags", op="equals", value="RA", quantifier="all").evaluate(
        {}, NO_PACKETS)


def test_quantifier_all_over_list_values() -> None:
    rule = m(field="dns.answer", op="cidr", values=["10.0.0.0/8"], quantifier="all")
    assert rule.evaluate({}, packets({"dns.answer": ["10.0.0.1", "10.2.3.4"]}))
    assert not rule.evaluate({}, packets({"dns.answer": ["10.0.0.1", "8.8.8.8"]}))
    assert not rule.evaluate({}, packets({"dns.answer": []}))


def test_packet_fields_fall_back_from_injected_to_responses() -> None:
    responses_only = packets({"ip.id": 0}, role="response")
    assert m(field="ip.id", op="equals", value=0).evaluate({}, responses_only)
    # An explicit selection does not fall back.
    assert not m(field="ip.id", op="equals", value=0, packets="injected").evaluate(
        {}, responses_only)
    assert m(field="ip.id", op="equals", value=0, packets="responses").evaluate(
        {}, responses_only)


def test_dns_answer_reads_the_finding_when_it_holds_one() -> None:
    rule = m(field="dns.answer", op="one_of", values=["95.167.13.50"])
    assert rule.evaluate({"dns.answer": ["95.167.13.50"]}, NO_PACKETS)


def test_build_matcher_requires_values() -> None:
    for spec in ({"field": "ip.id", "op": "equals"}, {"field": "ip.id", "op": "one_of"},
                 {"field": "dns.answer", "op": "cidr"}):
        with pytest.raises(ValueError):
            build_matcher(spec)


def test_a_signature_with_a_bad_matcher_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "xx-bad.yaml"
    bad.write_text("id: xx-bad\ntitle: bad one\nkind: censor\ntechniques: [dns.redirect]\n"
                   "status: test\nreferences: [{source: test}]\nmatch:\n  matchers:\n"
                   "    - {field: dns.answer, op: cidr, values: [300.0.0.0/8]}\n"
                   "fixtures: {positive: [pcaps/none]}\n")
    with pytest.raises(SignatureError, match=r"xx-bad\.yaml"):
        load_library(bad)

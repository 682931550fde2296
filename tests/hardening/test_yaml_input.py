"""Malformed signature and catalog files: each is refused with its file and line, a
library holding one is not loaded at all, `signatures lint` names every problem, and
the CLI prints one line.  Regex matching stays bounded on adversarial input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzz_deadline import deadline

from fingerprint._yaml import MAX_YAML_BYTES, MAX_YAML_DEPTH
from fingerprint.catalog import load_catalog
from fingerprint.errors import CatalogError, InputError, SignatureError
from fingerprint.signature.library import load_library, load_signature
from fingerprint.signature.match import MAX_MATCH_INPUT, build_matcher, compile_pattern

REPO = Path(__file__).resolve().parents[2]
GOOD_SIGNATURE = REPO / "signatures" / "cn" / "cn-gfw-rst-type1.yaml"
MARK = "# <- here"
"""Appended to the line each case expects in the error (removed before the YAML is written)."""

Edit = Callable[[str], str]


def _replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


# The refusal names the anchor that an alias shares (the first one).
LAUGHS = (f"lol0: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]  {MARK}\n"
          + "".join(f"lol{i}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9)))

SIGNATURE_CASES: dict[str, Edit] = {
    "malformed": _replace("kind: censor", f"kind: [censor  {MARK}"),
    "wrong-type": _replace("confidence: 0.6", f"confidence: high  {MARK}"),
    "wrong-type-matcher": _replace("{field: ip.id, op: equals, value: 0}",
                                   f"{{field: [ip.id], op: equals, value: 0}}  {MARK}"),
    "unknown-field": _replace("kind: censor", f"kind: censor\ncolour: blue  {MARK}"),
    "unknown-matcher-field": _replace("{field: ip.id, op: equals, value: 0}",
                                      f"{{field: ip.id, op: equals, value: 0, colour: 1}}  {MARK}"),
    "duplicate-key": _replace("kind: censor", f"kind: censor\nkind: isp  {MARK}"),
    "alias": _replace("scope: nat", f"scope: &s nat  {MARK}").__call__,
    "billion-laughs": lambda text: LAUGHS + text,
    "python-tag": _replace("scope: nat", f"scope: !!python/object/apply:os.system [id]  {MARK}"),
    "nan-confidence": _replace("confidence: 0.6", f"confidence: .nan  {MARK}"),
    "regex-nested-plus": _replace("{field: ip.id, op: equals, value: 0}",
                                  f"{{field: trigger.sni, op: regex, value: '(a+)+$'}}  {MARK}"),
    "regex-alternation": _replace("{field: ip.id, op: equals, value: 0}",
                                  f"{{field: trigger.sni, op: regex, value: '(a|a)*b'}}  {MARK}"),
    "regex-star-star": _replace("{field: ip.id, op: equals, value: 0}",
                                f"{{field: trigger.sni, op: regex, value: '(.*)*x'}}  {MARK}"),
    "regex-backreference": _replace("{field: ip.id, op: equals, value: 0}",
                                    f"{{field: trigger.sni, op: regex, value: '(a)\\1'}}  {MARK}"),
    "control-character": _replace("scope: nat", f"scope: n\x00at  {MARK}"),
    "deeply-nested": _replace("scope: nat", "scope: nat\nextra: " + "[" * 400 + "]" * 400 + f"  {MARK}"),
    "huge": lambda text: text + f"description2: x  {MARK}\n" + ("# padding\n" * (MAX_YAML_BYTES // 10 + 1)),
}


def _write_case(folder: Path, name: str, edit: Edit) -> tuple[Path, int]:
    """The signature file for a case and the line its error must name."""
    base = GOOD_SIGNATURE.read_text().replace("id: cn-gfw-rst-type1", f"id: {name}")
    if name == "alias":
        # The anchor is refused where the alias shares it.
        base = base.replace("author: fingerprint maintainers", "author: *s")
    text = edit(base)
    lines = text.splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if MARK in line)
    path = folder / f"{name}.yaml"
    path.write_text(text.replace(f"  {MARK}", ""))
    return path, _reported_line(name, path, expected)


def _reported_line(name: str, path: Path, marked: int) -> int:
    if name == "huge":
        # The limit is reached inside the padding: the error names where.
        return path.read_bytes()[:MAX_YAML_BYTES].count(b"\n") + 1
    if name == "malformed":
        # The parser fails on the line after the unclosed bracket (and names that one too).
        return marked + 1
    return marked


@pytest.mark.parametrize("name", sorted(SIGNATURE_CASES))
def test_bad_signature_is_refused_with_file_and_line(tmp_path: Path, name: str) -> None:
    library = tmp_path / "signatures"
    library.mkdir()
    (library / GOOD_SIGNATURE.name).write_text(GOOD_SIGNATURE.read_text())
    path, line = _write_case(library, name, SIGNATURE_CASES[name])
    with deadline(30), pytest.raises(InputError) as refused:
        load_signature(path)
    assert str(refused.value).startswith(f"{path}:{line}: "), str(refused.value)
    if name == "malformed":
        assert f"started on line {line - 1}" in str(refused.value)
    # A library holding the bad file is not loaded at all (no partial library).
    with deadline(30), pytest.raises(SignatureError if name not in (
            "malformed", "duplicate-key", "alias", "billion-laughs", "python-tag", "control-character",
            "deeply-nested", "huge") else InputError) as whole:
        load_library(library)
    assert str(whole.value) == str(refused.value)


def test_lint_reports_every_bad_file_with_line_and_fails(tmp_path: Path) -> None:
    library = tmp_path / "signatures"
    library.mkdir()
    (library / GOOD_SIGNATURE.name).write_text(GOOD_SIGNATURE.read_text())
    expected = {}
    for name, edit in SIGNATURE_CASES.items():
        path, line = _write_case(library, name, edit)
        expected[name] = f"{path}:{line}: "
    done = subprocess.run([sys.executable, "-m", "fingerprint", "signatures", "lint", str(library)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    out = done.stdout.splitlines()
    for name, prefix in expected.items():
        assert sum(line.startswith(prefix) for line in out) == 1, (name, prefix, out)
    assert f"1 signatures, {len(SIGNATURE_CASES)} problems" in done.stderr


def test_analyze_with_a_bad_library_is_one_line_and_fails(tmp_path: Path) -> None:
    library = tmp_path / "signatures"
    library.mkdir()
    (library / GOOD_SIGNATURE.name).write_text(GOOD_SIGNATURE.read_text())
    path, line = _write_case(library, "regex-alternation", SIGNATURE_CASES["regex-alternation"])
    capture = next(REPO.glob("pcaps/cn/gfw-rst-type1/capture.pcap*"))
    done = subprocess.run([sys.executable, "-m", "fingerprint", "analyze", "--signatures", str(library),
                           str(capture)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"fingerprint: error: {path}:{line}: match/matchers/1: repeated alternation")


# ---------------------------------------------------------------- catalogs

GOOD_CATALOG = """platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com, x.com]
    addresses: [203.0.113.10]
control:
  domains: [example.com]
"""

CATALOG_CASES: dict[str, Edit] = {
    "malformed": _replace("domains: [twitter.com, x.com]", f"domains: [twitter.com, x.com  {MARK}"),
    "wrong-type": _replace("domains: [twitter.com, x.com]", f"domains: twitter.com  {MARK}"),
    "unknown-field": _replace("name: Twitter / X", f"name: Twitter / X\n    colour: blue  {MARK}"),
    "unknown-top-level": lambda text: text + f"extras: 1  {MARK}\n",
    "duplicate-key": _replace("name: Twitter / X", f"name: Twitter / X\n    name: X  {MARK}"),
    "duplicate-platform": lambda text: text.replace("control:", f"  twitter:  {MARK}\n    domains: [t.co]\ncontrol:"),
    "bad-address": _replace("addresses: [203.0.113.10]", f"addresses: [203.0.113.300]  {MARK}"),
    "billion-laughs": lambda text: LAUGHS + text,
    "deeply-nested": lambda text: text + "extras: " + "{a: " * 200 + "1" + "}" * 200 + f"  {MARK}\n",
    "huge": lambda text: text + f"# start  {MARK}\n" + ("# padding\n" * (MAX_YAML_BYTES // 10 + 1)),
}


@pytest.mark.parametrize("name", sorted(CATALOG_CASES))
def test_bad_catalog_is_refused_with_file_and_line(tmp_path: Path, name: str) -> None:
    text = CATALOG_CASES[name](GOOD_CATALOG)
    marked = next(i for i, line in enumerate(text.splitlines(), 1) if MARK in line)
    path = tmp_path / "catalog.yaml"
    path.write_text(text.replace(f"  {MARK}", ""))
    expected = _reported_line(name, path, marked)
    with deadline(30), pytest.raises(InputError) as refused:
        load_catalog(path)
    assert str(refused.value).startswith(f"{path}:{expected}: "), str(refused.value)
    if name in ("wrong-type", "unknown-field", "unknown-top-level", "bad-address"):
        assert isinstance(refused.value, CatalogError)
    done = subprocess.run([sys.executable, "-m", "fingerprint", "platforms", "--catalog", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"fingerprint: error: {refused.value}\n"


def test_good_catalog_and_library_still_load(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(GOOD_CATALOG)
    assert list(load_catalog(path).platforms) == ["twitter"]
    assert len(load_library(None)) > 30
    assert MAX_YAML_DEPTH >= 8


# ---------------------------------------------------------------- regex matching is bounded

# Accepted at load (no nested quantifier, no repeated group) yet polynomial or worse in a
# backtracking engine over the 64 KiB a matcher reads; RE2 runs each in linear time.
ADVERSARIAL = [
    (r"a*a*a*a*a*a*b", "a" * (2 * MAX_MATCH_INPUT)),
    (r"\w*\w*\w*\w*\w*!$", "x" * (2 * MAX_MATCH_INPUT)),
    (r"^(\d+)\s*x\s*(\d+)$", "1" * MAX_MATCH_INPUT + " " * MAX_MATCH_INPUT),
    (r".*.*.*.*=.*z", "=" * (2 * MAX_MATCH_INPUT)),
]


@pytest.mark.parametrize(("pattern", "payload"), ADVERSARIAL, ids=[p for p, _ in ADVERSARIAL])
def test_regex_matching_is_bounded_on_adversarial_payloads(pattern: str, payload: str) -> None:
    context_matcher = build_matcher({"field": "http.body", "op": "regex", "value": pattern})
    packet_matcher = build_matcher({"field": "tcp.payload", "op": "regex", "value": pattern,
                                    "packets": "all"})
    with deadline(30):
        assert not context_matcher.evaluate({"http.body": payload}, {})
        assert not context_matcher.evaluate({"http.body": payload.encode()}, {})
        assert not packet_matcher.evaluate({}, {"all": [{"tcp.payload": payload.encode()}] * 4})
    # The same pattern still matches what it should.
    assert context_matcher.evaluate({"http.body": _witness(pattern)}, {})


def _witness(pattern: str) -> str:
    return {r"a*a*a*a*a*a*b": "aab", r"\w*\w*\w*\w*\w*!$": "ab!", r"^(\d+)\s*x\s*(\d+)$": "12 x 3",
            r".*.*.*.*=.*z": "a=bz"}[pattern]


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*b", "(.*)*x", "(x{1000}){1000}", "([ab]|a)+c",
                                     "a{100000}", "(?=lookahead)", "(unclosed", "x" * 1001])
def test_refused_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_pattern(pattern)

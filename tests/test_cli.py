"""The command line as a user meets it: bad input gets one line, never a traceback."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import wrpcap

CATALOG_OK = """platforms:
  twitter:
    name: Twitter / X
    domains: [twitter.com]
control:
  domains: [example.com]
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fingerprint", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1
    return "\n".join(lines)


@pytest.fixture()
def good_capture(tmp_path: Path) -> Path:
    path = tmp_path / "good.pcap"
    wrpcap(str(path), [IP(src="192.0.2.1", dst="203.0.113.10") / TCP(sport=40000, dport=443, flags="S")])
    return path


def test_non_capture_file_is_named_and_others_still_analysed(tmp_path: Path, good_capture: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, not a capture\n")
    proc = run("analyze", str(bad), str(good_capture), "--json")
    assert proc.returncode == 1
    err = one_line_error(proc)
    assert "notes.txt" in err
    report = json.loads(proc.stdout)
    assert report["packets"] == 1
    assert report["source"] == "analyze"


@pytest.mark.parametrize("content", [b"", b"\xd4\xc3\xb2\xa1\x02\x00", b"\x1f\x8b\x08\x00garbage"])
def test_empty_truncated_or_corrupt_gzip(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    proc = run("analyze", str(bad))
    assert proc.returncode == 1
    assert "bad.pcap" in one_line_error(proc)


def test_truncated_last_record_keeps_earlier_packets(tmp_path: Path, good_capture: Path) -> None:
    data = good_capture.read_bytes()
    cut = tmp_path / "cut.pcap.gz"
    with gzip.open(cut, "wb") as fh:
        fh.write(data + data[24:40])  # a second record header with no body
    proc = run("analyze", str(cut), "--json")
    assert proc.returncode == 1
    assert "cut.pcap.gz" in one_line_error(proc)
    assert json.loads(proc.stdout)["packets"] == 1


def test_missing_file(tmp_path: Path) -> None:
    proc = run("analyze", str(tmp_path / "nope.pcap"))
    assert proc.returncode != 0
    assert "nope.pcap" in one_line_error(proc)


def test_catalog_errors_name_file_and_line(tmp_path: Path, good_capture: Path) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text(CATALOG_OK.replace("domains: [twitter.com]", "domains: twitter.com"))
    proc = run("analyze", "--catalog", str(bad), str(good_capture))
    assert proc.returncode == 1
    err = one_line_error(proc)
    assert f"{bad}:4" in err and "domains" in err
    bad.write_text(CATALOG_OK + "    addresses: [not-an-ip]\n")
    bad.write_text(CATALOG_OK.replace("    domains: [twitter.com]\n",
                                      "    domains: [twitter.com]\n    addresses: [300.1.1.1]\n"))
    err = one_line_error(run("platforms", "--catalog", str(bad)))
    assert f"{bad}:5" in err and "300.1.1.1" in err


def test_custom_catalog_replaces_builtin(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG_OK)
    proc = run("platforms", "--catalog", str(path))
    assert proc.returncode == 0
    assert "twitter" in proc.stdout and "telegram" not in proc.stdout


def test_builtin_catalog_covers_required_platforms() -> None:
    proc = run("platforms", "--json")
    data = json.loads(proc.stdout)["platforms"]
    required = {"twitter", "facebook", "instagram", "google", "youtube", "skype", "telegram", "wechat",
                "tiktok", "vkontakte", "odnoklassniki", "linkedin", "moimir", "whatsapp", "signal"}
    assert required <= set(data)
    domains = {d for p in data.values() for d in p["domains"]}
    assert {"twimg.com", "fbcdn.net", "googlevideo.com", "tiktokcdn.com"} <= domains
    assert data["telegram"]["addresses"]
    # `quic: true` only where a cited source says the platform serves QUIC (rules.quic).
    assert data["google"]["quic"] and not data["twitter"]["quic"]


def test_malformed_signature_is_rejected_with_line(tmp_path: Path, good_capture: Path) -> None:
    sig = tmp_path / "bad-sig.yaml"
    sig.write_text("id: bad-sig\ntitle: a bad signature\nkind: censor\ntechniques: [tls.sni_reset]\n"
                   "status: experimental\nreferences: [{source: a paper}]\n"
                   "match:\n  matchers:\n    - {field: tcp.payload, op: regex, value: '(a+)+$'}\n"
                   "fixtures: {positive: [pcaps/x]}\n")
    proc = run("analyze", "--signatures", str(sig), str(good_capture))
    assert proc.returncode == 1
    err = one_line_error(proc)
    assert "bad-sig.yaml:9" in err and "nested quantifier" in err
    proc = run("signatures", "lint", str(sig))
    assert proc.returncode == 1
    assert "bad-sig.yaml:9" in proc.stdout


# An unreadable scapy cache (secdev/scapy#4618) simulated without dropping privileges:
# os.stat raises PermissionError under the fake home's folders.
UNREADABLE_HOME = """
import os, sys
home = sys.argv[1]
real_stat = os.stat
def stat(path, *args, **kwargs):
    if str(path).startswith(home + "/."):
        raise PermissionError(13, "Permission denied", str(path))
    return real_stat(path, *args, **kwargs)
os.stat = stat
os.environ["HOME"] = home
os.environ.pop("XDG_CACHE_HOME", None)
os.environ.pop("XDG_CONFIG_HOME", None)
"""


def test_importing_the_package_changes_no_environment(tmp_path: Path) -> None:
    code = UNREADABLE_HOME + """
before = dict(os.environ)
import fingerprint, fingerprint.cli, fingerprint.analysis, fingerprint.signature
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_scapy_skips_an_unreadable_cache_only_for_its_own_import(tmp_path: Path) -> None:
    """scapy (a stand-in recording what it saw) is imported with the folder skipped; the
    environment is the user's again at once, so a child process never inherits it."""
    fake = tmp_path / "fake"
    (fake / "scapy").mkdir(parents=True)
    (fake / "scapy" / "__init__.py").write_text("")
    (fake / "scapy" / "main.py").write_text(
        "import os\nSEEN = (os.environ.get('XDG_CACHE_HOME'), os.environ.get('XDG_CONFIG_HOME'))\n")
    code = UNREADABLE_HOME + f"""
sys.path.insert(0, {str(fake)!r})
import subprocess
from fingerprint.cli import import_scapy_despite_unreadable_folders
import_scapy_despite_unreadable_folders()
import scapy.main
assert scapy.main.SEEN == (os.path.join(os.devnull, "fingerprint"),) * 2, scapy.main.SEEN
assert "XDG_CACHE_HOME" not in os.environ and "XDG_CONFIG_HOME" not in os.environ
child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('XDG_CACHE_HOME'))"],
                       capture_output=True, text=True, check=True)
assert child.stdout.strip() == "None", child.stdout
"""
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("args", [
    ("signatures", "list"),
    ("signatures", "list", "--json"),
    ("signatures", "show", "tm-rst"),
    ("platforms",),
    ("analyze", "pcaps/tm/rst-http/capture.pcapng.gz"),
    ("analyze", "pcaps/tm/rst-http/capture.pcapng.gz", "--json"),
    ("--help",),
])
def test_a_closed_output_pipe_exits_quietly_with_0(args: tuple[str, ...]) -> None:
    """`fingerprint ... | head`: the reader is gone before the output is written."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` exits
    try:
        proc = subprocess.run([sys.executable, "-m", "fingerprint", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[1])
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("output", [(), ("--json",)])
def test_analyze_prints_nothing_on_stdout_when_no_input_could_be_read(
        tmp_path: Path, output: tuple[str, ...]) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all\n")
    proc = run("analyze", str(tmp_path / "missing.pcap"), str(garbage), *output)
    assert proc.returncode == 1
    assert proc.stdout == ""
    errors = one_line_error(proc).splitlines()
    assert len(errors) == 2 and "missing.pcap" in errors[0] and "garbage.pcap" in errors[1]


def test_analyze_still_reports_the_readable_inputs(tmp_path: Path) -> None:
    capture = Path(__file__).resolve().parents[1] / "pcaps" / "tm" / "rst-http" / "capture.pcapng.gz"
    proc = run("analyze", str(tmp_path / "missing.pcap"), str(capture))
    assert proc.returncode == 1
    assert "http.reset" in proc.stdout and "missing.pcap" in proc.stderr


# The core install: NetfilterQueue (the `lab` extra) made unimportable in the child.
WITHOUT_LAB_EXTRA = ("import sys; sys.modules['netfilterqueue'] = None; "
                     "from fingerprint.cli import main; main(sys.argv[1:])")


def run_without_lab_extra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_LAB_EXTRA, *args], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("args", [("lab", "up", "clean"), ("lab", "--help"), ("lab",),
                                  ("lab", "down", "--instance", "x")])
def test_lab_without_its_extra_says_which_extra_in_one_line(args: tuple[str, ...]) -> None:
    proc = run_without_lab_extra(*args)
    assert proc.returncode == 2  # click's usage status, as for an unknown command
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "fingerprint: error: `fingerprint lab` needs the 'lab' extra (netfilterqueue is not "
        "installed): pip install 'fingerprint[lab]'"]


@pytest.mark.parametrize("args", [
    ("analyze", "pcaps/tm/rst-http/capture.pcapng.gz", "--json"),
    ("signatures", "list"),
    ("report", "--help"),
    ("probe", "--help"),
    ("--help",),
])
def test_the_core_install_runs_analyze_probe_report_and_signatures(args: tuple[str, ...]) -> None:
    proc = run_without_lab_extra(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "netfilterqueue" not in proc.stderr


def test_netfilterqueue_is_the_lab_extra_not_a_core_dependency() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    core = " ".join(project["project"]["dependencies"]).lower()
    assert "netfilterqueue" not in core
    assert any(d.lower().startswith("netfilterqueue")
               for d in project["project"]["optional-dependencies"]["lab"])
    bootstrap = (Path(__file__).resolve().parents[1] / "scripts" / "bootstrap").read_text()
    assert "-e '.[dev,lab]'" in bootstrap
    assert "DPkg::Lock::Timeout=" in bootstrap

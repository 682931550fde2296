"""Privileges (issue 7): `probe` and `lab` refuse to run without them, in one line, exit 77;
`analyze`, `report` and `signatures` work without them.

The commands really run without privileges.  Under root (CI) they are started as
user nobody through `setpriv`, with every capability dropped, and `probe` also as
root without CAP_NET_RAW; when the suite itself runs unprivileged they run as
they are.  The probe runs in a fresh network namespace when we are root and
with a catalog and resolvers on loopback in any case, so even a broken check
could not send a packet anywhere else.  When user nobody cannot read this
checkout or its virtualenv (a clone under /root), the package, its
dependencies and the inputs are copied to a world-readable directory first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
FIXTURE = Path("pcaps") / "tm" / "rst-http" / "capture.pcapng.gz"
"""An HTTP reset (Turkmenistan): analyze must find http.reset in it."""
IMPORT_CHECK = "import fingerprint.cli, scapy.layers.inet, click, yaml, jsonschema, dns.message"
LOOPBACK_CATALOG = """\
platforms:
  loop:
    name: Loopback only (privilege test)
    domains: [loop.test]
    addresses: [127.0.0.2]
control:
  domains: [control.test]
  addresses: [127.0.0.3]
"""
PROBE_ARGS = ["probe", "--catalog", "catalog.yaml", "--resolver", "127.0.0.1",
              "--control-resolver", "127.0.0.1", "--timeout", "0.5", "--no-localise"]
DEV_TOOLS = ("mypy*", "*mypyc*", "pip", "pip-*", "setuptools*", "pygments*", "hypothesis*",
             "_pytest", "pytest*", "ruff*", "__pycache__")


def _raw_socket_allowed() -> bool:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    except PermissionError:
        return False
    sock.close()
    return True


@dataclass
class Unprivileged:
    """How to start `python -m fingerprint` without privileges, and where."""

    drop: list[str]
    """Command prefix that drops privileges (empty when we have none to drop)."""
    python: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    as_root: bool = False

    def run(self, *args: str, prefix: list[str] | None = None, home: Path | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        command = [*(self.drop if prefix is None else prefix), self.python, "-m", "fingerprint",
                   *args]
        env = dict(self.env, HOME=str(home)) if home is not None else self.env
        return subprocess.run(command, cwd=self.workdir, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)


def _works(drop: list[str], python: str, env: dict[str, str], cwd: Path) -> bool:
    proc = subprocess.run([*drop, python, "-c", IMPORT_CHECK], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode == 0


def _stage(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Copy the package, its dependencies and the inputs where user nobody can read them."""
    source = workdir / "src"
    for name in ("fingerprint", "signatures", "pcaps"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    site = workdir / "site"
    site.mkdir()
    for entry in map(Path, sys.path):
        if entry.name != "site-packages" or not entry.is_dir():
            continue
        for item in entry.iterdir():
            if any(item.match(pattern) for pattern in DEV_TOOLS) or (site / item.name).exists():
                continue
            if item.is_dir():
                shutil.copytree(item, site / item.name, symlinks=True)
            elif item.suffix != ".pth":
                shutil.copy2(item, site / item.name)
    for path in workdir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644 | (path.stat().st_mode & 0o111))
    interpreters = [sys.executable, os.path.realpath(sys.executable),
                    getattr(sys, "_base_executable", sys.executable),
                    f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    return interpreters, {"PYTHONPATH": f"{source}{os.pathsep}{site}"}


@pytest.fixture(scope="module")
def unprivileged() -> Iterator[Unprivileged]:
    root = os.geteuid() == 0
    if not root and _raw_socket_allowed():
        pytest.skip("this user has CAP_NET_RAW and is not root: there is nothing to drop")
    if root and shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop privileges as root")
    # World-readable, and writable for the outputs of the commands under test.
    workdir = Path(tempfile.mkdtemp(prefix="fingerprint-privileges-"))
    try:
        workdir.chmod(0o755)
        drop = (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all"] if root else [])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
               "HOME": str(workdir), "PYTHONDONTWRITEBYTECODE": "1",
               # Lab state and namespace names of our own, never a running lab's.
               "FINGERPRINT_LAB_INSTANCE": "privtest",
               "FINGERPRINT_LAB_STATE": str(workdir / "lab-state")}
        inputs = REPO
        python = sys.executable
        if not _works(drop, python, env, workdir):
            interpreters, extra = _stage(workdir)
            env.update(extra)
            python = next((p for p in interpreters if Path(p).exists()
                           and _works(drop, p, env, workdir)), "")
            if not python:
                pytest.fail("user nobody can run neither this interpreter nor a copy of the "
                            "package: cannot test without privileges")
            inputs = workdir / "src"
        (workdir / "catalog.yaml").write_text(LOOPBACK_CATALOG)
        shutil.copy2(inputs / FIXTURE, workdir / "capture.pcapng.gz")
        out = workdir / "out"
        out.mkdir()
        out.chmod(0o777)
        for path in (workdir / "catalog.yaml", workdir / "capture.pcapng.gz"):
            path.chmod(0o644)
        yield Unprivileged(drop, python, workdir, env, root)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _assert_refused(proc: subprocess.CompletedProcess[str], *needs: str) -> str:
    """Exit 77, nothing on stdout, exactly one line on stderr naming what is needed."""
    assert proc.returncode == 77, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    for need in needs:
        assert need in line, line
    # The sudo advice names this installation by absolute path (sudo resets PATH).
    match = re.search(r"`sudo (/\S+)", line)
    assert match is not None, line
    assert Path(match.group(1)).is_absolute()
    return line


def test_commands_really_run_unprivileged(unprivileged: Unprivileged) -> None:
    check = ("import os, socket\n"
             "status = open('/proc/self/status').read()\n"
             "print(os.geteuid(), [l.split()[1] for l in status.splitlines()"
             " if l.startswith('CapEff')][0])\n"
             "try:\n"
             "    socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)\n"
             "    print('raw')\n"
             "except PermissionError:\n"
             "    print('no-raw')\n")
    proc = subprocess.run([*unprivileged.drop, unprivileged.python, "-c", check],
                          cwd=unprivileged.workdir, env=unprivileged.env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    euid, caps, raw = proc.stdout.split()
    assert int(euid) != 0 and int(caps, 16) == 0 and raw == "no-raw"
    if unprivileged.as_root:
        assert int(euid) == NOBODY


def test_probe_without_privileges_exits_77(unprivileged: Unprivileged) -> None:
    # A fresh network namespace (when root) on top of the loopback-only catalog.
    prefix = (["unshare", "--net", *unprivileged.drop] if unprivileged.as_root
              else unprivileged.drop)
    line = _assert_refused(unprivileged.run(*PROBE_ARGS, prefix=prefix), "CAP_NET_RAW", "root")
    assert "setcap" in line  # the capabilities alternative to sudo


@pytest.mark.needs_root
def test_probe_as_root_without_cap_net_raw_exits_77(unprivileged: Unprivileged) -> None:
    prefix = ["unshare", "--net", "setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw"]
    _assert_refused(unprivileged.run(*PROBE_ARGS, prefix=prefix), "CAP_NET_RAW")


@pytest.mark.parametrize("args", [("lab", "up", "clean"), ("lab", "run", "clean"),
                                  ("lab", "down")], ids=["up", "run", "down"])
def test_lab_without_privileges_exits_77(unprivileged: Unprivileged,
                                         args: tuple[str, ...]) -> None:
    _assert_refused(unprivileged.run(*args), "root", "CAP_NET_ADMIN")
    # Refused before anything was created: no state directory, no namespace.
    assert not (unprivileged.workdir / "lab-state").exists()
    assert "fpprivtest-" not in _namespaces()


@pytest.mark.needs_root
def test_lab_as_root_without_capabilities_exits_77(unprivileged: Unprivileged) -> None:
    prefix = ["setpriv", "--inh-caps=-net_admin,-sys_admin",
              "--bounding-set=-net_admin,-sys_admin"]
    _assert_refused(unprivileged.run("lab", "up", "clean", prefix=prefix), "CAP_SYS_ADMIN")
    assert "fpprivtest-" not in _namespaces()


def _namespaces() -> str:
    ip = shutil.which("ip")
    if ip is None:
        return ""
    return subprocess.run([ip, "netns", "list"], capture_output=True, text=True,
                          check=False).stdout


def test_analyze_and_report_work_unprivileged(unprivileged: Unprivileged) -> None:
    analyzed = unprivileged.run("analyze", "capture.pcapng.gz", "--json",
                                "--jsonl", "out/measurements.jsonl")
    assert analyzed.returncode == 0, analyzed.stderr
    report = json.loads(analyzed.stdout)
    techniques = {t for p in report["platforms"] for t in p["techniques"]}
    assert "http.reset" in techniques
    lines = (unprivileged.workdir / "out" / "measurements.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["test_keys"]["x_fingerprint"] for line in lines)

    combined = unprivileged.run("report", "out/measurements.jsonl", "--format", "json")
    assert combined.returncode == 0, combined.stderr
    assert "http.reset" in combined.stdout
    assert "Traceback" not in combined.stderr


@pytest.mark.parametrize("args", [("signatures", "list"), ("signatures", "lint"),
                                  ("signatures", "test")], ids=["list", "lint", "test"])
def test_signatures_work_unprivileged(unprivileged: Unprivileged, args: tuple[str, ...]) -> None:
    proc = unprivileged.run(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    output = proc.stdout + proc.stderr  # summaries go to stderr, listings to stdout
    match = re.search(r"(\d+) signatures", output)
    assert match is not None and int(match.group(1)) > 0, output[-500:]
    if args[1] == "list":
        assert len(proc.stdout.splitlines()) >= int(match.group(1))
    if args[1] == "lint":
        assert ", 0 problems" in output
    if args[1] == "test":
        assert ", 0 failures" in output


@pytest.mark.needs_root
def test_root_owned_cache_left_by_sudo_does_not_break_unprivileged_runs(
        unprivileged: Unprivileged) -> None:
    # `sudo -E fingerprint probe` keeps HOME: root's scapy leaves a root-only ~/.cache.
    home = unprivileged.workdir / "home-after-sudo"
    home.mkdir(mode=0o755)
    subprocess.run([unprivileged.python, "-c", "import scapy.layers.inet"], check=True,
                   env=dict(unprivileged.env, HOME=str(home)), cwd=unprivileged.workdir,
                   timeout=60)
    cache = home / ".cache"
    assert (cache / "scapy").is_dir() and cache.stat().st_uid == 0
    cache.chmod(0o700)
    for args in (("signatures", "list"), ("analyze", "capture.pcapng.gz", "--json")):
        proc = unprivileged.run(*args, home=home)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr

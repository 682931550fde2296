"""`.ci/run`: the README's exact test command, then ruff and mypy; any failure fails the run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"# the whole test suite \(what CI runs: \.ci/run\)\n(.+)\n", text)
    assert match is not None, "README lost its test command"
    return match.group(1).strip()


def test_ci_runs_the_readme_command_and_both_linters() -> None:
    script = (REPO / ".ci" / "run").read_text()
    lines = [line.strip() for line in script.splitlines()]
    assert any(line.startswith(readme_test_command()) for line in lines)
    assert any(line.startswith(".venv/bin/ruff check ") for line in lines)
    assert any(line.startswith(".venv/bin/mypy") for line in lines)


@pytest.mark.parametrize("failing", [None, "pytest", "ruff", "mypy"])
def test_ci_fails_when_any_step_fails(tmp_path: Path, failing: str | None) -> None:
    """The script run on a copy whose tools are stand-ins that pass or fail on demand."""
    bash = shutil.which("bash")
    assert bash is not None
    (tmp_path / ".ci").mkdir()
    shutil.copy2(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "bootstrap").write_text("exit 0\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "ruff", "mypy"):
        name = "pytest" if tool == "python" else tool
        stub = bin_dir / tool
        stub.write_text(f"#!/bin/sh\necho ran {name} >> \"$(dirname \"$0\")/../../ran\"\n"
                        f"exit {1 if failing == name else 0}\n")
        stub.chmod(0o755)
    proc = subprocess.run([bash, str(tmp_path / ".ci" / "run")], capture_output=True, text=True,
                          timeout=60, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert (tmp_path / "ran").read_text().split("\n")[:3] == ["ran pytest", "ran ruff", "ran mypy"]
    assert proc.returncode == (0 if failing is None else 1), proc.stderr


def test_bootstrap_waits_for_another_apt_gets_dpkg_lock(tmp_path: Path) -> None:
    """scripts/bootstrap, run on a copy with stand-in apt-get, dpkg-query, id and python:
    every apt-get call waits for the dpkg lock another apt-get holds instead of failing."""
    bash = shutil.which("bash")
    assert bash is not None
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    record = tmp_path / "apt-get.calls"
    scripts = {
        "apt-get": f"#!/bin/sh\necho \"$@\" >> {record}\nexit 0\n",
        "dpkg-query": "#!/bin/sh\nexit 1\n",  # nothing installed: every package is missing
        "id": "#!/bin/sh\necho 0\n",
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text("#!/bin/sh\nexit 0\n")
    (venv_bin / "python").chmod(0o755)
    proc = subprocess.run([bash, str(tmp_path / "scripts" / "bootstrap")], capture_output=True,
                          text=True, timeout=60,
                          env={"PATH": f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    assert proc.returncode == 0, proc.stderr
    calls = record.read_text().splitlines()
    assert any(" update" in f" {call}" for call in calls) and any(" install " in f" {call} "
                                                                 for call in calls)
    assert all("DPkg::Lock::Timeout=" in call for call in calls), calls

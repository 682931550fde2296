"""The README's examples, checked: what it shows is what the tool prints.

* Every `$ fingerprint analyze PATH...` block is run on the shipped fixtures it names
  and its lines are compared, in order, with what `analyze` prints (`...` in a README
  line stands for elided text).
* The main job's table (`lab run uzbekistan-2021`) is compared with the scenario's
  expectations and with the recorded run of that scenario (`pcaps/lab/uzbekistan-2021`):
  status, technique, signature and hop of every platform the recording holds.

The `report` example is checked by `tests/output/test_readme_report.py`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from fingerprint.catalog import load_catalog
from fingerprint.cli import cli
from fingerprint.lab.scenarios import load_scenario
from fingerprint.signature import load_library
from fingerprint.testing.fixtures import Fixture

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def example_blocks() -> list[tuple[str, list[str]]]:
    """(command, output lines) of every `$ ` command in a fenced text block."""
    blocks: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```text\n(.*?)```", README, flags=re.S):
        command: str | None = None
        output: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    blocks.append((command, output))
                command, output = line[2:], []
            elif command is not None:
                output.append(line)
        if command is not None:
            blocks.append((command, output))
    return blocks


ANALYZE_EXAMPLES = [(c, o) for c, o in example_blocks() if c.startswith("fingerprint analyze ")]


def test_the_readme_has_analyze_examples() -> None:
    assert ANALYZE_EXAMPLES, "no `$ fingerprint analyze` example found in README.md"


def _pattern(readme_line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in readme_line.split("...")) + r"\Z")


@pytest.mark.parametrize("command,expected", ANALYZE_EXAMPLES, ids=[c for c, _o in ANALYZE_EXAMPLES])
def test_analyze_example_prints_what_the_readme_shows(command: str, expected: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    args = shlex.split(command)[1:]
    paths = [a for a in args[1:] if not a.startswith("-")]
    assert paths and all((REPO / p).is_file() for p in paths), \
        f"README example {command!r} names a capture that is not shipped"
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    position = 0
    for line in (x for x in expected if x.strip()):
        pattern = _pattern(line)
        while position < len(printed) and not pattern.match(printed[position]):
            position += 1
        assert position < len(printed), f"README line not printed (in order): {line!r}"
        position += 1


def test_main_job_table_matches_the_scenario_and_its_recorded_run() -> None:
    [(_command, lines)] = [(c, o) for c, o in example_blocks()
                          if c == ".venv/bin/fingerprint lab run uzbekistan-2021"]
    header = lines.index(next(x for x in lines if x.startswith("platform ")))
    rows: dict[str, list[str]] = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    scenario = load_scenario("uzbekistan-2021")
    catalog = load_catalog(None)
    expected = scenario.expected(sorted(catalog.platforms))
    assert set(rows) == set(expected), "the README's table lists other platforms than the catalog"
    for platform, cells in rows.items():
        status, found, _signatures, _location, shown_expected = cells[1:6]
        techniques = expected[platform]
        assert shown_expected == (", ".join(techniques) or "(accessible)"), platform
        assert (status, found) == (("blocked", ", ".join(techniques)) if techniques
                                   else ("accessible", "-")), platform
    recorded = Fixture(REPO / "pcaps" / "lab" / "uzbekistan-2021")
    _result, report = recorded.analyze(load_library(None))
    assert report["platforms"], "the recorded run holds no platform"
    for entry in report["platforms"]:
        cells = rows[entry["platform"]]
        assert cells[1] == entry["status"], entry["platform"]
        for finding in entry.get("findings", []):
            assert finding["technique"] in cells[2].split(", ")
            assert set(finding.get("signatures", [])) <= set(cells[3].split(", "))
            hop = (finding.get("location") or {}).get("hop")
            assert cells[4] == (f"hop {hop}" if hop is not None else "-"), entry["platform"]

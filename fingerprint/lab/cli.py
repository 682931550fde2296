"""`fingerprint lab`: list, run, up, exec, down."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fingerprint.errors import FingerprintError
from fingerprint.lab import lab as lab_core
from fingerprint.lab import state, topology
from fingerprint.lab._system import LabError
from fingerprint.lab.scenarios import Scenario, load_scenario, scenario_ids
from fingerprint.output.cli import jsonl_options, jsonl_path, probe_info_from_options
from fingerprint.report import render_findings

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(command: F) -> F:
    """Tool faults become one line on stderr with the error's exit code."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FingerprintError as error:
            click.echo(f"fingerprint lab: {error}", err=True)
            sys.exit(error.exit_code)
    return wrapper  # type: ignore[return-value]


def _set_instance(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            topology.check_instance(value)
        except LabError as error:
            raise click.BadParameter(str(error).removeprefix("--instance=")) from None
        # The environment, so the lab's own subprocesses see the same instance.
        os.environ["FINGERPRINT_LAB_INSTANCE"] = value
    return value


@click.group()
@click.option("--instance", metavar="NAME", callback=_set_instance, expose_value=False,
              is_eager=True,
              help="run or manage lab instance NAME (1-8 lowercase letters or digits): its own "
                   "namespaces fpNAME-* and state /run/fingerprint-lab-NAME, so labs run side "
                   "by side [default: $FINGERPRINT_LAB_INSTANCE]")
def lab() -> None:
    """An emulated censored network in Linux namespaces (needs root)."""


@lab.command("list")
@_one_line_errors
def list_scenarios() -> None:
    """The scenarios, with what each emulates."""
    for scenario_id in scenario_ids():
        click.echo(f"{scenario_id:22} {load_scenario(scenario_id).title}")


def _table(report: dict[str, Any]) -> str:
    """What was found next to what the scenario does, then each finding's proof."""
    expected: dict[str, list[str]] = report.get("expected", {})
    vantage = report.get("vantage") or {}
    head = f"scenario {report.get('scenario')}"
    if vantage:
        head += " (probed as a vantage point in " + " ".join(str(v) for v in vantage.values()) + ")"
    rows = [("platform", "status", "found", "signatures", "location", "expected")]
    for entry in report.get("platforms", []):
        found = ", ".join(entry.get("techniques", [])) or "-"
        signatures: list[str] = []
        locations: list[str] = []
        for finding in entry.get("findings", []):
            signatures += [s for s in finding.get("signatures", [])[:1] if s not in signatures]
            location = finding.get("location") or {}
            if "hop" in location and f"hop {location['hop']}" not in locations:
                locations.append(f"hop {location['hop']}")
        wanted = ", ".join(expected.get(entry["platform"], [])) or "(accessible)"
        rows.append((entry["platform"], entry["status"], found, ", ".join(signatures) or "-",
                     ", ".join(locations) or "-", wanted))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [head] + ["  ".join(row[i].ljust(widths[i]) for i in range(5)) + "  " + row[5]
                      for row in rows]
    return "\n".join(lines + render_findings(report))


@lab.command("run")
@click.argument("scenario")
@click.option("--json", "as_json", is_flag=True, help="print the contract report JSON")
@click.option("--pcap-out", type=click.Path(dir_okay=False, path_type=Path),
              help="write the probe's evidence capture here")
@click.option("--timeout", type=float, default=3.0, show_default=True,
              help="per-probe timeout passed to `fingerprint probe`")
@click.option("--quic/--no-quic", default=None,
              help="probe with or without QUIC Initials and ECH ClientHellos [default: as the "
                   "scenario says (probe_quic), else with]")
@jsonl_options
@_one_line_errors
def run_scenario(scenario: str, as_json: bool, pcap_out: Path | None, timeout: float,
                 quic: bool | None) -> None:
    """Build SCENARIO, probe every platform from the client, tear down.

    Ctrl-C or SIGTERM stops the probe (its finished measurements stay in
    --jsonl), tears the lab down and exits 130 / 143.
    """
    state.require_root()
    report = lab_core.run(scenario, timeout, pcap_out, _probe_args(load_scenario(scenario), quic))
    click.echo(json.dumps(report, indent=2) if as_json else _table(report))
    if pcap_out is not None:
        catalog, ca = lab_core.replay_files(pcap_out)
        click.echo(f"evidence in {pcap_out}; replay it with: fingerprint analyze {pcap_out} "
                   f"--catalog {catalog} --ca-file {ca}", err=True)


def _probe_args(scenario: Scenario, quic: bool | None = None) -> list[str]:
    """--jsonl and the vantage point options, passed on to the probe.

    Unless the user names a vantage point, the probe takes the one the scenario
    emulates (e.g. UZ, AS8193), so signatures scoped to that country can name the
    censor, as they would for a probe run there.
    """
    jsonl = jsonl_path()
    info = probe_info_from_options()
    cc = scenario.vantage_cc if info.cc == "ZZ" and scenario.vantage_cc else info.cc
    asn = scenario.vantage_asn if info.asn == "AS0" and scenario.vantage_asn else info.asn
    # Lab measurements say so, whatever vantage point they emulate.
    annotations = {**info.annotations, "fingerprint_source": "lab",
                   "fingerprint_lab_scenario": scenario.id}
    return [*(["--jsonl", str(Path(jsonl).resolve())] if jsonl else []),
            "--probe-asn", asn, "--probe-cc", cc,
            *([] if (scenario.probe_quic if quic is None else quic) else ["--no-quic"]),
            *(["--share-ip"] if info.share_ip else []),
            *(arg for key, value in annotations.items() for arg in ("--annotation", f"{key}={value}"))]


@lab.command("up")
@click.argument("scenario")
@_one_line_errors
def up(scenario: str) -> None:
    """Build SCENARIO and leave it running (see `lab exec`, `lab down`)."""
    state.require_root()
    info = lab_core.up(load_scenario(scenario))
    click.echo(f"lab up: {scenario} ({info.scenario.title})")
    click.echo(f"  catalog           {info.catalog_path}")
    click.echo(f"  lab CA            {info.ca_path}")
    click.echo(f"  resolver          {info.resolver}")
    click.echo(f"  control resolver  {info.control_resolver} , {info.control_resolver_doh}")
    for platform in info.catalog.platforms.values():
        click.echo(f"  {platform.id:17} {platform.addresses[0]}  {platform.domains[0]}")
    click.echo("run commands in the client namespace with `fingerprint lab exec -- CMD`")


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_one_line_errors
def exec_command(command: tuple[str, ...]) -> None:
    """Run COMMAND inside the client namespace of the running lab."""
    state.require_root()
    info = lab_core.current()
    if info is None:
        raise LabError("no lab is running: start one with `fingerprint lab up SCENARIO`")
    proc = subprocess.run(["ip", "netns", "exec", info.client_namespace, *command],
                          check=False)
    sys.exit(proc.returncode)


@lab.command("down")
@_one_line_errors
def down() -> None:
    """Remove every namespace, rule and process of the lab (also stale ones)."""
    removed = lab_core.down()
    click.echo("lab down: " + (", ".join(removed) if removed else "nothing to remove"))

"""The `fingerprint` command line.

Errors of the user's input or of the tool reach the user as one line on
stderr (never a traceback); network outcomes are part of the report.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from fingerprint import __version__
from fingerprint.errors import FingerprintError
from fingerprint.output.cli import measurement_options

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

OPTIONAL_GROUPS = {
    "signatures": "fingerprint.signature.cli:signatures",
    "lab": "fingerprint.lab.cli:lab",
    "probe": "fingerprint.probes.cli:probe",
    "report": "fingerprint.output.cli:report",
}
"""Command groups imported only when named (or listed by --help): the lab's pulls in
scapy, a fifth of a small capture's `analyze` run.  One that fails to import is absent."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *OPTIONAL_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in OPTIONAL_GROUPS:
            return command
        module_name, _, attribute = OPTIONAL_GROUPS[cmd_name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        loaded = getattr(module, attribute, None)
        if not isinstance(loaded, click.Command):
            return None
        self.add_command(loaded, cmd_name)
        return loaded


@click.group(cls=_LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="fingerprint")
def cli() -> None:
    """Tell how a platform is censored: DNS, TLS-SNI, HTTP and IP blocking, from live probes
    or from capture files, matched against known censors' signatures."""


catalog_option = click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
                              help="Platform catalog (YAML) replacing the built-in one.")
signatures_option = click.option("--signatures", "signatures_path", type=click.Path(),
                                 help="Signature file or folder (default: the shipped library).")


def emit_report(report: dict[str, Any], as_json: bool) -> None:
    from fingerprint._json import dumps_indented
    from fingerprint.report import render_table

    if as_json:
        click.echo(dumps_indented(report))
    else:
        click.echo(render_table(report))


def blocked_exit(report: dict[str, Any], exit_code: bool) -> int:
    if exit_code and any(p["status"] == "blocked" for p in report["platforms"]):
        return 3
    return 0


@cli.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=False))
@catalog_option
@signatures_option
@click.option("--ca-file", type=click.Path(dir_okay=False),
              help="Trust anchors (PEM) for certificate checks; default: the system store.")
@click.option("--json", "as_json", is_flag=True, help="Print the contract report as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit with 3 when any platform is blocked.")
@measurement_options
def analyze(captures: tuple[str, ...], catalog_path: str | None, signatures_path: str | None,
            ca_file: str | None, as_json: bool, exit_code: bool) -> None:
    """Analyse pcap/pcapng captures (gzip too) and report, per platform, how it is blocked.

    Several captures are analysed together, so a control run in one file serves the
    target run in another.
    """
    from fingerprint.analysis import analyze_files, fewer_collections
    from fingerprint.catalog import load_catalog
    from fingerprint.output.cli import vantage_hints, write_analyze_outputs
    from fingerprint.report import build_report
    from fingerprint.signature import load_library
    from fingerprint.trust import TrustStore

    catalog = load_catalog(catalog_path)
    library = load_library(signatures_path)
    trust = TrustStore(ca_file)
    # The report is built while every observation is still alive: collect rarely here too.
    with fewer_collections():
        result = analyze_files(list(captures), catalog, library, trust, vantage=vantage_hints())
        from fingerprint.probes.notes import missing_notes_warning

        lost_notes = missing_notes_warning(list(captures), result.hints)
        if lost_notes is not None:
            result.problems.append(lost_notes)
            click.echo(f"warning: {lost_notes}", err=True)
        extra = {"inputs": list(captures), "packets": result.packets, "problems": result.problems}
        report = build_report(result.verdicts, catalog, "analyze", extra=extra)
        emit_report(report, as_json)
        write_analyze_outputs(result, list(captures))
    code = 1 if result.failed_inputs else blocked_exit(report, exit_code)
    if _PROCESS.whole:
        _exit_without_teardown(code)
    sys.exit(code)


@dataclass(slots=True)
class _ProcessState:
    whole: bool = False
    """The command runs as its own process (`main`), not inside a caller (tests, scripts)."""


_PROCESS = _ProcessState()


def _exit_without_teardown(code: int) -> NoReturn:
    """Exit once the output is written, without freeing the analysis object by object:
    a big capture leaves millions of small objects, and freeing them took a tenth of
    the run.  Output files are closed by then; the standard streams are flushed here."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.command()
@catalog_option
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def platforms(catalog_path: str | None, as_json: bool) -> None:
    """List the platforms of the catalog (built-in unless --catalog)."""
    from fingerprint.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    if as_json:
        data = {p.id: {"name": p.name, "domains": list(p.domains), "addresses": list(p.addresses),
                       "networks": list(p.networks)} for p in catalog.platforms.values()}
        click.echo(json.dumps({"platforms": data, "control": {
            "domains": list(catalog.control_domains),
            "addresses": list(catalog.control_addresses)}}, indent=2))
        return
    width = max(len(p.id) for p in catalog.platforms.values())
    for p in catalog.platforms.values():
        known = f"  [{len(p.addresses)} addresses, {len(p.networks)} networks]" if (
            p.addresses or p.networks) else ""
        click.echo(f"{p.id.ljust(width)}  {p.name}: {', '.join(p.domains)}{known}")
    click.echo(f"{'control'.ljust(width)}  {', '.join(catalog.control_domains)}"
               + (f" / {', '.join(catalog.control_addresses)}" if catalog.control_addresses else ""))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line per error, exit codes 0/1/2/3/77/130."""
    # Only the console script / `python -m fingerprint` (no argv given) owns the process.
    _PROCESS.whole = argv is None
    try:
        result = cli.main(args=argv, prog_name="fingerprint", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("fingerprint: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("fingerprint: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FingerprintError as exc:
        click.echo(f"fingerprint: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"fingerprint: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main(sys.argv[1:])

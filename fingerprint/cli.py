"""The `fingerprint` command line.

Errors of the user's input or of the tool reach the user as one line on
stderr (never a traceback); network outcomes are part of the report.
"""

from __future__ import annotations

import errno
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

EXTRAS = {"lab": ("lab", ("netfilterqueue", "aioquic"))}
"""Command group -> (the pyproject extra it needs, the modules that extra installs)."""
EXIT_USAGE = 2
"""click's status for usage errors ("No such command" included): also a missing extra."""


class MissingExtraError(FingerprintError):
    exit_code = EXIT_USAGE


def _missing_extra(cmd_name: str) -> click.Command | None:
    """A stand-in for a command group whose extra is not installed: running it (with any
    arguments) says in one line which extra to install."""
    extra, modules = EXTRAS[cmd_name]
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return None

    def refuse() -> None:
        raise MissingExtraError(f"`fingerprint {cmd_name}` needs the {extra!r} extra ({', '.join(missing)}"
                                f" is not installed): pip install 'fingerprint[{extra}]'")

    return click.Command(cmd_name, callback=refuse, add_help_option=False,
                         help=f"(needs: pip install 'fingerprint[{extra}]')",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def import_scapy_despite_unreadable_folders() -> None:
    """Import scapy once with its cache/config folder skipped when that folder is unreadable.

    `sudo -E fingerprint probe` keeps HOME, so root may leave a root-owned ~/.cache
    behind; scapy then dies at import with PermissionError in every later unprivileged
    run (secdev/scapy#4618).  scapy reads the folders once, when `scapy.main` is first
    imported, and skips one that cannot be created: so only for that import the
    variable points where nothing can be created, and it is restored at once (child
    processes, such as the lab's, see the user's environment).
    """
    home = os.path.expanduser("~")
    unreadable: dict[str, str | None] = {}
    for variable, default in (("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config")):
        base = os.environ.get(variable) or os.path.join(home, default)
        try:
            os.stat(os.path.join(base, "scapy", "_"))
        except PermissionError:
            unreadable[variable] = os.environ.get(variable)
        except OSError:
            pass  # missing: scapy creates it, or copes when it cannot
    if not unreadable or "scapy.main" in sys.modules:
        return
    try:
        for variable in unreadable:
            os.environ[variable] = os.path.join(os.devnull, "fingerprint")
        import scapy.main  # noqa: F401  (reads the folders now, once)
    finally:
        for variable, value in unreadable.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


class _OutputClosed(Exception):
    """The reader of our standard output went away (`| head`): not an error of ours.

    Raised past click, which would turn the broken pipe into exit status 1."""


def _raise_closed(exc: OSError) -> NoReturn:
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        raise _OutputClosed from None
    raise exc


class _LazyGroup(click.Group):
    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:  # --help and --version print while the context is made
            return super().make_context(info_name, args, parent, **extra)
        except OSError as exc:
            _raise_closed(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            _raise_closed(exc)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *OPTIONAL_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in OPTIONAL_GROUPS:
            return command
        module_name, _, attribute = OPTIONAL_GROUPS[cmd_name].partition(":")
        stand_in = _missing_extra(cmd_name) if cmd_name in EXTRAS else None
        if stand_in is not None:
            self.add_command(stand_in, cmd_name)
            return stand_in
        import_scapy_despite_unreadable_folders()  # these groups import scapy
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
@click.option("--vantage", type=click.Choice(["client", "server"]), default=None,
              help="Which end of the connections the capture was taken at "
                   "(default: guessed from the handshakes' TTLs).")
@measurement_options
def analyze(captures: tuple[str, ...], catalog_path: str | None, signatures_path: str | None,
            ca_file: str | None, as_json: bool, exit_code: bool, vantage: str | None) -> None:
    """Analyse pcap/pcapng captures (gzip too) and report, per platform, how it is blocked.

    Several captures are analysed together, so a control run in one file serves the
    target run in another.
    """
    from fingerprint.analysis.pipeline import analyze_files, fewer_collections
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
        hints = vantage_hints()
        if vantage is not None:
            from fingerprint.analysis.observe import CaptureHints

            hints = hints or CaptureHints()
            hints.raw["capture_point"] = vantage
        result = analyze_files(list(captures), catalog, library, trust, vantage=hints)
        if result.packets == 0 and set(captures) <= set(result.failed_inputs):
            # Nothing was read: the one-line errors are the whole answer, no empty report
            # (a file cut short still gave its first packets: those are reported).
            code = 1
        else:
            from fingerprint.probes.notes import missing_notes_warning

            lost_notes = missing_notes_warning(list(captures), result.hints)
            if lost_notes is not None:
                result.problems.append(lost_notes)
                click.echo(f"warning: {lost_notes}", err=True)
            extra = {"inputs": list(captures), "packets": result.packets,
                     "problems": result.problems}
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
                       "networks": list(p.networks), "quic": p.quic}
                for p in catalog.platforms.values()}
        click.echo(json.dumps({"platforms": data, "control": {
            "domains": list(catalog.control_domains),
            "addresses": list(catalog.control_addresses)}}, indent=2))
        return
    width = max(len(p.id) for p in catalog.platforms.values())
    for p in catalog.platforms.values():
        facts = ([f"{len(p.addresses)} addresses, {len(p.networks)} networks"]
                 if p.addresses or p.networks else []) + (["serves QUIC"] if p.quic else [])
        known = f"  [{'; '.join(facts)}]" if facts else ""
        click.echo(f"{p.id.ljust(width)}  {p.name}: {', '.join(p.domains)}{known}")
    click.echo(f"{'control'.ljust(width)}  {', '.join(catalog.control_domains)}"
               + (f" / {', '.join(catalog.control_addresses)}" if catalog.control_addresses else ""))


def _quiet_after_closed_output() -> None:
    """Point stdout at /dev/null so that the exit's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (a test runner's buffer): nothing to flush


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
    except (_OutputClosed, BrokenPipeError):
        _quiet_after_closed_output()
        sys.exit(0)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"fingerprint: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main(sys.argv[1:])

"""`fingerprint report`, and the output options other commands share.

    fingerprint analyze run.pcapng --jsonl results.jsonl --pcap-out evidence.pcapng
    fingerprint report day1.jsonl day2.jsonl --format html --out report.html

Commands that produce measurements take `measurement_options` (--jsonl,
--pcap-out, --probe-asn, --probe-cc, --share-ip) and call
`write_analyze_outputs` (analyze) or use a `MeasurementSink` (probe, lab run).
Progress goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fingerprint.errors import FingerprintError, InputError

if TYPE_CHECKING:
    from fingerprint.analysis.observe import CaptureHints

__all__ = ["MeasurementSink", "measurement_options", "report", "write_analyze_outputs"]

F = TypeVar("F", bound=Callable[..., Any])
META_KEY = "fingerprint.output"
FORMATS = ("table", "md", "html", "csv", "json")
MAX_SKIP_LINES_SHOWN = 1000
EXIT_BLOCKED = 3


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(message, err=True)


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name in ("probe_asn", "probe_cc") and value:
        from fingerprint.output.ooni.envelope import MeasurementError, normalize_asn, normalize_cc

        try:
            value = normalize_asn(value) if param.name == "probe_asn" else normalize_cc(value)
        except MeasurementError as exc:
            raise click.BadParameter(str(exc)) from None
    if param.name == "annotations":
        value = dict(_annotation(text) for text in value or ())
    if param.name is not None:
        ctx.meta.setdefault(META_KEY, {})[param.name] = value
    return value


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE")
    return key.strip(), value


def measurement_options(command: F, *, with_pcap_out: bool = True) -> F:
    """--jsonl, --pcap-out and the envelope facts, kept in the click context (not as arguments)."""
    options = [
        click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_store, help="Append OONI-format measurements (JSONL), one per "
                     "platform target, each line flushed as it is written."),
        click.option("--probe-asn", "probe_asn", default="AS0", show_default=True,
                     expose_value=False, callback=_store,
                     help="Network of the vantage point, recorded in the measurements "
                     "(left at AS0: the one the capture's notes record, if any)."),
        click.option("--probe-cc", "probe_cc", default="ZZ", show_default=True,
                     expose_value=False, callback=_store,
                     help="Country code of the vantage point, recorded in the measurements "
                     "(left at ZZ: the one the capture's notes record, if any)."),
        click.option("--share-ip", "share_ip", is_flag=True, expose_value=False, callback=_store,
                     help="Record the probe's own address (default: 127.0.0.1, and the address "
                     "is replaced in evidence)."),
        click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
                     expose_value=False, callback=_store,
                     help="Add KEY=VALUE to every measurement's annotations (repeatable), "
                     "as OONI Probe's --annotation does."),
    ]
    if with_pcap_out:
        options.insert(1, click.option(
            "--pcap-out", "pcap_out", type=click.Path(dir_okay=False), expose_value=False,
            callback=_store, help="Write the packets as pcapng with a comment on every packet "
            "a finding rests on (name it .pcapng)."))
    for option in reversed(options):
        command = option(command)
    return command


def jsonl_options(command: F) -> F:
    """`measurement_options` without --pcap-out, for commands that have their own (probe)."""
    return measurement_options(command, with_pcap_out=False)


def jsonl_path() -> str | None:
    """The --jsonl value of the running command (None when not given)."""
    value = _options().get("jsonl")
    return str(value) if value else None


def _options() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return dict(ctx.meta.get(META_KEY, {})) if ctx is not None else {}


def probe_info_from_options(options: dict[str, Any] | None = None) -> Any:
    from fingerprint.output.ooni.envelope import MeasurementError, ProbeInfo

    opts = _options() if options is None else options
    try:
        return ProbeInfo(asn=opts.get("probe_asn") or "AS0", cc=opts.get("probe_cc") or "ZZ",
                         share_ip=bool(opts.get("share_ip")),
                         annotations=dict(opts.get("annotations") or {}))
    except MeasurementError as exc:
        raise click.BadParameter(str(exc)) from None


def vantage_hints(options: dict[str, Any] | None = None) -> CaptureHints | None:
    """--probe-cc / --probe-asn as analysis hints (None when both are left unset: ZZ, AS0),
    so country- or network-scoped signatures match on captures that do not record them."""
    from fingerprint.analysis.observe import CaptureHints

    opts = _options() if options is None else options
    raw: dict[str, Any] = {}
    cc = opts.get("probe_cc")
    if cc and str(cc).upper() != "ZZ":
        raw["probe_cc"] = str(cc).upper()
    asn = opts.get("probe_asn")
    if asn and str(asn).upper() != "AS0":
        raw["probe_asn"] = str(asn)
    return CaptureHints(raw=raw) if raw else None


class MeasurementSink:
    """Writes the measurements of one run as each platform finishes (probe, lab run).

        sink = MeasurementSink.from_options(source="probe")   # None without --jsonl
        ...after a platform is done:
        sink.emit(pipeline, verdicts, platforms=[platform_id])
        ...at the end:
        sink.close()

    All measurements of the run share its run id and test_start_time.
    """

    def __init__(self, jsonl: str, probe: Any, source: str, evidence_pcap: str | None = None,
                 start: float | None = None) -> None:
        from fingerprint.output.jsonl import JsonlWriter
        self.writer = JsonlWriter(jsonl)
        self.probe = probe
        self.source = source
        self.evidence_pcap = evidence_pcap
        self.start = start if start is not None else time.time()
        self.run_id: str | None = None
        """Made at the first emit, when the vantage point is known (user's or capture notes)."""
        self.inputs: list[str] = []

    @classmethod
    def from_options(cls, source: str, start: float | None = None) -> MeasurementSink | None:
        opts = _options()
        if not opts.get("jsonl"):
            return None
        return cls(opts["jsonl"], probe_info_from_options(opts), source,
                   evidence_pcap=opts.get("pcap_out"), start=start)

    def emit(self, pipeline: Any, verdicts: Any, platforms: Iterable[str] | None = None) -> int:
        from fingerprint.output.ooni.envelope import capture_vantage, new_run_id
        from fingerprint.output.ooni.measurements import measurements_from_pipeline

        if self.run_id is None:
            asn, cc = capture_vantage(self.probe, pipeline.hints.raw)
            self.run_id = new_run_id(self.start, cc, asn)
        measurements = measurements_from_pipeline(
            pipeline, verdicts, self.probe, source=self.source, run_id=self.run_id,
            test_start_time=self.start, inputs=self.inputs, evidence_pcap=self.evidence_pcap,
            platforms=platforms)
        for measurement in measurements:
            self.writer.write(measurement)
        return len(measurements)

    def close(self) -> None:
        self.writer.close()


def write_analyze_outputs(result: Any, captures: list[str]) -> None:
    """--pcap-out and --jsonl for `fingerprint analyze` (no-op without them)."""
    opts = _options()
    if not opts.get("jsonl") and not opts.get("pcap_out"):
        return
    from fingerprint.output.evidence import annotate_captures
    from fingerprint.output.jsonl import JsonlWriter
    from fingerprint.output.ooni.measurements import measurements_from_pipeline

    probe = probe_info_from_options(opts)
    if result.pipeline is None:
        raise FingerprintError("the analysis kept no observations to write")
    pcap_out = opts.get("pcap_out")
    frames: dict[tuple[str | None, int], int] = {}
    if pcap_out:
        readable = [c for c in captures if c not in result.failed_inputs]
        _progress(f"writing evidence capture {pcap_out}")
        hints = result.hints
        section = hints.to_comment() if (hints.raw or hints.control_answers or hints.no_resolver
                                         or hints.address_platform) else None
        written = annotate_captures(readable, pcap_out, result.verdicts.findings,
                                    section_comment=section)
        for line in written.missing:
            click.echo(f"warning: {pcap_out}: {line}", err=True)
        frames = written.frames
    jsonl = opts.get("jsonl")
    if jsonl:
        measurements = measurements_from_pipeline(
            result.pipeline, result.verdicts, probe, source="analyze",
            inputs=[Path(c).name for c in captures], evidence_pcap=pcap_out,
            evidence_frames=frames)
        with JsonlWriter(jsonl) as out:
            for measurement in measurements:
                out.write(measurement)
        _progress(f"{len(measurements)} measurements appended to {jsonl}")


# --------------------------------------------------------------------------- report

@click.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Write the report to this file instead of stdout.")
@click.option("--title", default="fingerprint report", show_default=True,
              help="Title of the HTML / Markdown report.")
@click.option("--exit-code", is_flag=True, help="Exit with 3 when any platform was blocked in "
              "any run.")
def report(files: tuple[str, ...], fmt: str, out_path: str | None, title: str,
           exit_code: bool) -> None:
    """Combine measurement files (JSONL from --jsonl) into a platform x technique matrix per
    network, with counts over runs, first/last seen, signatures and the evidence of each cell.

    Lines that cannot be used (a cut last line, another tool's output) are named on stderr
    and skipped; every other line is used.  Exit 1 when no measurement could be read.
    """
    from fingerprint.output.aggregate import Skipped, aggregate, require_files

    paths = require_files(files)
    shown = 0

    def on_skip(item: Skipped) -> None:
        nonlocal shown
        shown += 1
        if shown <= MAX_SKIP_LINES_SHOWN:
            click.echo(f"warning: {item}", err=True)

    total = len(paths)
    seen = 0

    def on_file(path: str) -> None:
        nonlocal seen
        seen += 1
        if total > 1:
            _progress(f"reading {path} ({seen}/{total})")

    agg = aggregate(paths, on_skip=on_skip, on_file=on_file)
    if shown > MAX_SKIP_LINES_SHOWN:
        click.echo(f"warning: {shown - MAX_SKIP_LINES_SHOWN} more skipped lines not listed",
                   err=True)
    if agg.measurements == 0:
        click.echo("fingerprint report: no measurement could be read", err=True)
        sys.exit(1)
    text = render(agg, fmt, title)
    if out_path:
        try:
            Path(out_path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(out_path, f"cannot write: {exc.strerror or exc}") from None
        _progress(f"report written to {out_path}")
    else:
        click.echo(text, nl=not text.endswith("\n"))
    sys.exit(EXIT_BLOCKED if exit_code and agg.blocked else 0)


def render(agg: Any, fmt: str, title: str = "fingerprint report") -> str:
    if fmt == "json":
        import json

        return json.dumps(agg.to_json(), indent=2) + "\n"
    if fmt == "csv":
        from fingerprint.output.render_csv import render_csv

        return render_csv(agg)
    if fmt == "html":
        from fingerprint.output.render_html import render_html

        return render_html(agg, title)
    from fingerprint.output.render_text import render_markdown, render_table

    if fmt == "md":
        return render_markdown(agg, title)
    return render_table(agg) + "\n"

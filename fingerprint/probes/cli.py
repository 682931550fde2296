"""`fingerprint probe`: live probes from inside the network under test (root or CAP_NET_RAW)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from fingerprint.capture.writer import name_says_pcapng
from fingerprint.errors import FingerprintError, InputError
from fingerprint.output.cli import jsonl_options, jsonl_path, probe_info_from_options
from fingerprint.probes.runner import DEFAULT_IN_FLIGHT, DEFAULT_PER_DESTINATION, DEFAULT_RATE

if TYPE_CHECKING:
    from fingerprint.interrupt import Interrupted
    from fingerprint.output.run import LiveMeasurements


class ProbeUsageError(FingerprintError):
    """The probe cannot run with these options."""


@click.command()
@click.option("--platform", "platform_ids", multiple=True, metavar="ID",
              help="Platform to probe (repeatable); default: every catalog platform.")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
              help="Platform catalog (YAML) replacing the built-in one.")
@click.option("--signatures", "signatures_path", type=click.Path(),
              help="Signature file or folder (default: the shipped library).")
@click.option("--resolver", help="Resolver under test (IP); default: the first nameserver "
              "of /etc/resolv.conf.")
@click.option("--control-resolver", "control_spec", metavar="SPEC",
              help="Encrypted control resolver: https://HOST/PATH (DoH), tls://IP (DoT) or a "
                   "plain IP; default: https://1.1.1.1/dns-query.")
@click.option("--control-sni", help="Control server name (SNI and Host); default: the "
              "catalog's first control domain.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True),
              help="Trust anchors (PEM) for certificate checks and the control resolver; "
                   "default: the system store.")
@click.option("--timeout", type=click.FloatRange(min=0.2), default=5.0, show_default=True,
              help="Seconds each probe waits for answers.")
@click.option("--rate", type=click.FloatRange(min=0), default=DEFAULT_RATE, show_default=True,
              help="At most this many packets sent per second, counting every packet of the "
                   "probe's connections (kernel ACKs and FINs too), and no more than twice the "
                   "rate's share in any 100 ms (no bursts); a 1 s window may exceed it by 25% "
                   "when the kernel sends late packets of open connections; 0: no limit.")
@click.option("--per-destination", type=click.IntRange(1, 64), default=DEFAULT_PER_DESTINATION,
              show_default=True, help="Connections in flight to one address at once.")
@click.option("--in-flight", type=click.IntRange(1, 256), default=DEFAULT_IN_FLIGHT,
              show_default=True, help="Connections in flight overall.")
@click.option("--quic/--no-quic", default=True, show_default=True,
              help="QUIC and ECH probing: to each platform address, QUIC v1 Initials on UDP "
                   "443 (a TLS 1.3 ClientHello with the control SNI, then each target SNI; "
                   "padded to 1200 bytes, resent twice while unanswered; TTL-limited ones to "
                   "localise a quic.* finding) and ClientHellos on TCP 443 with and without a "
                   "GREASE encrypted_client_hello extension (control name, then each target as "
                   "the outer SNI), beside the TCP tests; on each address the controls go "
                   "first.  --no-quic sends none of them.")
@click.option("--no-confirm", "no_confirm", is_flag=True,
              help="Skip the confirmation round (each finding tested again after the sweep, "
                   "its control just before it).")
@click.option("--repeats", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Attempts per target trigger.")
@click.option("--all-domains", is_flag=True, help="Probe every domain of each platform, not "
              "only its first.")
@click.option("--no-localise", "no_localise", is_flag=True,
              help="Skip TTL-limited repeats (where on the path the censor sits).")
@click.option("--max-hops", type=click.IntRange(1, 64), default=16, show_default=True,
              help="Largest TTL of the localisation repeats.")
@click.option("--residual-pause", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait before localisation (censors that keep blocking a flow "
                   "for a while after a trigger).")
@click.option("--pcap-out", type=click.Path(dir_okay=False),
              help="Write every packet sent and received as it is recorded, as pcapng whatever "
                   "the file's name (it keeps the probe's notes, which replay needs, and a "
                   "comment on each evidence packet).")
@click.option("--json", "as_json", is_flag=True, help="Print the contract report as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit with 3 when any platform is blocked.")
@jsonl_options
def probe(platform_ids: tuple[str, ...], catalog_path: str | None, signatures_path: str | None,
          resolver: str | None, control_spec: str | None, control_sni: str | None,
          ca_file: str | None, timeout: float, rate: float, per_destination: int,
          in_flight: int, quic: bool, no_confirm: bool, repeats: int,
          all_domains: bool, no_localise: bool, max_hops: int, residual_pause: float,
          pcap_out: str | None, as_json: bool, exit_code: bool) -> None:
    """Probe the platforms live and report, per platform, which technique blocks it.

    DNS (crafted queries, every answer kept, a query to an address that runs no
    resolver, control answers over DoH/DoT), TLS (target SNI vs control SNI and
    no SNI on the same address), HTTP (target Host vs control Host) and IP (SYNs
    to platform and control addresses), concurrently; then every finding is
    tested again, alone (the confirmation round), and TTL-limited repeats
    localise the blocked targets.  Needs root or CAP_NET_RAW.

    \b
    How it paces itself (so a slow or small middlebox does not drop the
    probe's own bursts and make open platforms look blocked):
    - at most --rate packets sent per second (default 320; replies about
      double what the path carries), spread out: no 100 ms carries more
      than twice its share (64 packets at 320/s);
    - at most --per-destination connections to one address (default 10) and
      --in-flight connections overall (default 24);
    - on each address the controls go before the targets;
    - after the sweep, the confirmation round re-tests each finding: its
      control, then the finding's test, one connection after the other
      (a throttle with a transfer on each).
      Which flows belong to the round is recorded in the capture's notes.

    \b
    What it sends packets to, and nothing else:
    - the probed platforms' addresses (control resolver answers, catalog) and
      the control addresses: TCP 443 and 80; one of those also gets the DNS
      queries (UDP 53) as the address that runs no resolver; unless --no-quic,
      the platforms' addresses also get QUIC Initials on UDP 443 (control SNI,
      then the targets) and ClientHellos with and without GREASE ECH on TCP
      443;
    - the resolver under test (UDP 53) and the control resolver (DoH/DoT);
    - an address the resolver under test returned for a probed name, unless it
      is private/bogon, the platform's own or a control answer: one TLS
      handshake on 443 (the certificate check that tells dns.redirect);
    - TTL-limited repeats (TTL <= --max-hops) toward those addresses, which
      draw ICMP from the routers on the way.

    With --jsonl, each platform's OONI-format measurements are appended as soon
    as the platform is done.  Ctrl-C or SIGTERM stops the run at once, keeping
    every finished measurement and the capture so far (exit 130 / 143).
    """
    from fingerprint.analysis.addresses import is_ip_address
    from fingerprint.catalog import load_catalog
    from fingerprint.cli import blocked_exit, emit_report
    from fingerprint.interrupt import Interrupted, StopSignal
    from fingerprint.output.run import LiveMeasurements, annotate_run_capture
    from fingerprint.probes import dns as dns_probe
    from fingerprint.probes.privileges import check_privileges
    from fingerprint.probes.runner import Progress
    from fingerprint.probes.sweep import ProbeConfig, run_probe
    from fingerprint.report import build_report
    from fingerprint.signature import load_library
    from fingerprint.trust import TrustStore

    catalog = load_catalog(catalog_path)
    ids = list(dict.fromkeys(platform_ids)) or list(catalog.platforms)
    catalog.select(ids)  # raises CatalogError naming an unknown id
    resolver = resolver or dns_probe.system_resolver()
    if resolver is None:
        raise ProbeUsageError("no resolver: /etc/resolv.conf names none; pass --resolver IP")
    if not is_ip_address(resolver):
        raise ProbeUsageError(f"--resolver {resolver!r}: expected an IP address")
    control = dns_probe.parse_resolver_spec(control_spec or dns_probe.DEFAULT_CONTROL_RESOLVER)
    control_name = control_sni or catalog.control_domains[0]
    check_privileges()
    library = load_library(signatures_path)
    trust = TrustStore(ca_file)
    info = probe_info_from_options()
    vantage = {key: value for key, value, unknown in (("probe_cc", info.cc, "ZZ"),
                                                      ("probe_asn", info.asn, "AS0"))
               if value != unknown}
    created = _check_writable(pcap_out) if pcap_out is not None else False
    if pcap_out is not None and not name_says_pcapng(pcap_out):
        click.echo(f"note: {pcap_out} is written as pcapng (its run notes need it); tools that "
                   "go by the name may want it renamed .pcapng", err=True)
    jsonl = jsonl_path()
    lines = LiveMeasurements(jsonl, info, source="probe", evidence_pcap=pcap_out) \
        if jsonl else None
    config = ProbeConfig(catalog, ids, resolver, control, control_name, timeout=timeout,
                         rate=rate or None, per_destination=per_destination,
                         in_flight=in_flight, confirm=not no_confirm,
                         ca_file=ca_file, repeats=repeats, all_domains=all_domains,
                         localise=not no_localise, max_hops=max_hops,
                         residual_pause=residual_pause, vantage=vantage, quic=quic)
    stop = StopSignal()
    with stop.installed():
        try:
            run = run_probe(config, library, trust, Progress(), pcap_out=pcap_out,
                            listener=lines, stop=stop)
        except Interrupted as interrupted:
            _exit_interrupted(interrupted, lines, pcap_out, created)
        if lines is not None:
            lines.close()
        # A signal after the last probe: the results are complete, finish writing them.
        for problem in run.problems:
            click.echo(f"warning: {problem}", err=True)
        if pcap_out is not None:
            written = annotate_run_capture(pcap_out, run.packets, run.hints,
                                           run.verdicts.findings)
            for line in written.missing if written is not None else []:
                click.echo(f"warning: {pcap_out}: {line}", err=True)
    extra = {
        "resolver": resolver,
        "control_resolver": control.label,
        "timeout": timeout,
        "packets": len(run.packets),
        "timing": {"control_resolver_s": round(run.control_seconds, 3),
                   "sweep_s": round(run.sweep_seconds, 3),
                   "confirmation_s": round(run.confirmation_seconds, 3),
                   "localisation_s": round(run.localisation_seconds, 3)},
        "problems": run.problems,
    }
    if pcap_out is not None:
        extra["pcap"] = pcap_out
    if jsonl:
        extra["jsonl"] = jsonl
    report = build_report(run.verdicts, catalog, "probe", platforms=ids, extra=extra)
    emit_report(report, as_json)
    if stop.signum is not None:
        _exit_interrupted(Interrupted(stop.signum), lines, pcap_out, created)
    sys.exit(blocked_exit(report, exit_code))


def _check_writable(path: str) -> bool:
    """Fail before probing if `path` cannot be written; True when this created it."""
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc
    return not existed


def interrupted_line(command: str, interrupted: Interrupted, lines: LiveMeasurements | None,
                     pcap_out: str | None) -> str:
    """The one line an interrupted run ends with."""
    from fingerprint.interrupt import interrupted_prefix

    text = interrupted_prefix(command, interrupted.signum)
    if lines is not None:
        text += f" after {lines.lines} of {lines.total} measurements"
    kept = [p for p in ((lines.path if lines is not None else None), pcap_out)
            if p is not None and os.path.exists(p) and os.path.getsize(p) > 0]
    return text + (f"; partial results in {' and '.join(kept)}" if kept
                   else "; nothing was recorded")


def _exit_interrupted(interrupted: Interrupted, lines: LiveMeasurements | None,
                      pcap_out: str | None, created: bool) -> NoReturn:
    """Close the outputs, say what was kept in one line, exit with 128 + the signal.

    `os._exit`: probe threads may still sit in a socket call for up to the probe
    timeout and the interpreter would join them; nothing they hold matters any
    more (no firewall rule exists, their sockets close with the process, and
    the JSONL and the capture are closed).
    """
    if lines is not None:
        lines.close()
    if pcap_out is not None and created and os.path.exists(pcap_out) \
            and os.path.getsize(pcap_out) == 0:
        Path(pcap_out).unlink()  # interrupted before the capture began: leave nothing
    click.echo(interrupted_line("fingerprint probe", interrupted, lines, pcap_out), err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(interrupted.exit_code)

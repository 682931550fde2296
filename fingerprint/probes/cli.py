"""`fingerprint probe`: live probes from inside the network under test (root or CAP_NET_RAW)."""

from __future__ import annotations

import sys

import click

from fingerprint.errors import FingerprintError, InputError


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
@click.option("--rate", type=click.FloatRange(min=1), default=None,
              help="At most this many packets sent per second (default: no limit).")
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
              help="Write every packet sent and received (pcapng keeps the probe's notes).")
@click.option("--json", "as_json", is_flag=True, help="Print the contract report as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit with 3 when any platform is blocked.")
def probe(platform_ids: tuple[str, ...], catalog_path: str | None, signatures_path: str | None,
          resolver: str | None, control_spec: str | None, control_sni: str | None,
          ca_file: str | None, timeout: float, rate: float | None, repeats: int,
          all_domains: bool, no_localise: bool, max_hops: int, residual_pause: float,
          pcap_out: str | None, as_json: bool, exit_code: bool) -> None:
    """Probe the platforms live and report, per platform, which technique blocks it.

    DNS (crafted queries, every answer kept, a query to an address that runs no
    resolver, control answers over DoH/DoT), TLS (target SNI vs control SNI and
    no SNI on the same address), HTTP (target Host vs control Host) and IP (SYNs
    to platform and control addresses), concurrently; then TTL-limited repeats
    for the blocked targets.  Needs root or CAP_NET_RAW.
    """
    from fingerprint.catalog import load_catalog
    from fingerprint.classify import is_ip_address
    from fingerprint.cli import blocked_exit, emit_report
    from fingerprint.probes import dns as dns_probe
    from fingerprint.probes.privileges import check_privileges
    from fingerprint.probes.runner import Progress
    from fingerprint.probes.sweep import ProbeConfig, run_probe, write_capture
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
    if pcap_out is not None:
        _check_writable(pcap_out)
    config = ProbeConfig(catalog, ids, resolver, control, control_name, timeout=timeout,
                         rate=rate, ca_file=ca_file, repeats=repeats, all_domains=all_domains,
                         localise=not no_localise, max_hops=max_hops,
                         residual_pause=residual_pause)
    run = run_probe(config, library, trust, Progress())
    for problem in run.problems:
        click.echo(f"warning: {problem}", err=True)
    if pcap_out is not None:
        write_capture(pcap_out, run.packets, run.hints)
    extra = {
        "resolver": resolver,
        "control_resolver": control.label,
        "timeout": timeout,
        "packets": len(run.packets),
        "timing": {"control_resolver_s": round(run.control_seconds, 3),
                   "sweep_s": round(run.sweep_seconds, 3),
                   "localisation_s": round(run.localisation_seconds, 3)},
        "problems": run.problems,
    }
    if pcap_out is not None:
        extra["pcap"] = pcap_out
    report = build_report(run.verdicts, catalog, "probe", platforms=ids, extra=extra)
    emit_report(report, as_json)
    sys.exit(blocked_exit(report, exit_code))


def _check_writable(path: str) -> None:
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from exc

"""One probe run: plan the probes, run them concurrently, analyse the packets.

The run never judges anything itself.  It sends, the sniffer records, and the
recorded packets go through `fingerprint.analysis.pipeline.Pipeline`, the path
`fingerprint analyze` takes; the facts packets cannot carry (control answers
from the encrypted resolver, the address that runs no resolver, which address
was probed for which platform) go into `CaptureHints`, which is also the
evidence capture's section comment.  So `analyze` on `--pcap-out` repeats the
live verdicts.

Order matters against residual blocking (a censor that keeps blocking a
client/server/port for a while after a trigger, as the GFW's 90 s): on each
address the controls (bare connections, control SNI, no SNI, control Host)
send their triggers before any target does.  After the sweep, the
confirmation round (`confirm.py`) tests every finding again, its control just
before it, and notes which flows it sent in the capture hints.  Localisation
runs after that, for the targets the analysis of the sweep found blocked,
after an optional pause (`residual_pause`).

Pacing (`ProbeConfig.rate`, `per_destination`, `in_flight`): every packet sent
counts against the rate, and every connection holds a slot to its address
and an overall slot while it runs, so no burst exceeds what an ordinary
network tolerates (issue 13, case 5).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from fingerprint.analysis.addresses import is_bogon
from fingerprint.analysis.confirm import NOTES_KEY as CONFIRMATION_NOTES_KEY
from fingerprint.analysis.findings import Finding, Verdicts
from fingerprint.analysis.observe import CaptureHints
from fingerprint.analysis.pipeline import RECORDED_UNTIL_KEY, Pipeline
from fingerprint.capture.writer import CaptureWriter
from fingerprint.catalog import Catalog, Platform
from fingerprint.interrupt import POLL_S, StopSignal
from fingerprint.model import Technique
from fingerprint.probes import confirm
from fingerprint.probes import dns as dns_probe
from fingerprint.probes import http as http_probe
from fingerprint.probes import ip as ip_probe
from fingerprint.probes import quic as quic_probe
from fingerprint.probes import tls as tls_probe
from fingerprint.probes.runner import (
    DEFAULT_IN_FLIGHT,
    DEFAULT_PER_DESTINATION,
    DEFAULT_RATE,
    ConnectionSlots,
    Progress,
    RateLimiter,
    RawPacket,
    Session,
    Sniffer,
    to_packets,
    wait_all,
)
from fingerprint.signature import SignatureLibrary
from fingerprint.trust import TrustStore

POOL_SIZE = 256
IP_CHECK_ATTEMPTS = 3
"""Bare connection attempts per platform address and port (besides the TLS/HTTP ones)."""
TRANSFER_SAMPLES = 3
"""TLS attempts per target and address at least (each with a transfer): a throttle verdict
takes the best one, and loss has to stall all of them to fake it."""


@dataclass
class ProbeConfig:
    catalog: Catalog
    """The whole catalog (names map to platforms as in `analyze`)."""
    platform_ids: list[str]
    resolver: str
    control_resolver: dns_probe.ControlResolver
    control_sni: str
    timeout: float = 3.0
    rate: float | None = DEFAULT_RATE
    """Packets sent per second at most (None: no limit)."""
    per_destination: int = DEFAULT_PER_DESTINATION
    in_flight: int = DEFAULT_IN_FLIGHT
    confirm: bool = True
    """Re-test every finding after the sweep (the confirmation round)."""
    ca_file: str | None = None
    repeats: int = 2
    """Attempts per target trigger (loss must not look like blocking)."""
    all_domains: bool = False
    """Probe every domain of a platform, not only its first."""
    addresses_per_platform: int = 2
    localise: bool = True
    max_hops: int = 16
    residual_pause: float = 0.0
    full_ttl: int = 64
    quic: bool = True
    """QUIC Initials and ECH ClientHellos per address (`probes.quic.schedule_address`);
    `probe --no-quic` turns them off."""
    vantage: dict[str, str] = field(default_factory=dict)
    """Where the probe runs, as the user gave it (`probe_cc`, `probe_asn`): recorded in the
    capture hints, so country-scoped signatures match live and on replay alike."""


@dataclass
class ProbeRun:
    packets: list[RawPacket]
    hints: CaptureHints
    verdicts: Verdicts
    sweep_seconds: float = 0.0
    localisation_seconds: float = 0.0
    control_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    confirmation_seconds: float = 0.0


@dataclass
class _Plan:
    names: dict[str, list[str]]
    """platform id -> target names."""
    addresses: dict[str, list[str]]
    """platform id -> addresses to probe."""
    control_names: list[str]
    control_addresses: list[str]
    no_resolver: str | None
    hints: CaptureHints


def _platform_names(platform: Platform, all_domains: bool) -> list[str]:
    return list(platform.domains if all_domains else platform.domains[:1])


def _plan(config: ProbeConfig, pool: ThreadPoolExecutor, problems: list[str],
          limiter: RateLimiter | None = None) -> _Plan:
    platforms = [config.catalog.platforms[p] for p in config.platform_ids]
    names = {p.id: _platform_names(p, config.all_domains) for p in platforms}
    control_names = list(config.catalog.control_domains)
    if config.control_sni not in control_names:
        control_names.append(config.control_sni)
    wanted = sorted({n for ns in names.values() for n in ns} | set(control_names))
    limiter = limiter or RateLimiter(config.rate)
    lookups = {name: pool.submit(dns_probe.control_lookup, config.control_resolver, name,
                                 config.timeout, config.ca_file, limiter) for name in wanted}
    hints = CaptureHints()
    for name, future in lookups.items():
        answer = future.result()
        if answer is None:
            problems.append(f"control resolver {config.control_resolver.label} gave no answer "
                            f"for {name}")
            continue
        hints.control_answers[name] = answer
    addresses: dict[str, list[str]] = {}
    for platform in platforms:
        found: list[str] = []
        for name in names[platform.id]:
            found += hints.control_answers.get(name, [])
        found += list(platform.addresses)
        usable = [a for a in dict.fromkeys(found) if _probe_address(a)]
        addresses[platform.id] = usable[: config.addresses_per_platform]
        for address in addresses[platform.id]:
            hints.address_platform[address] = platform.id
    control_addresses = list(config.catalog.control_addresses)
    for name in control_names:
        control_addresses += hints.control_answers.get(name, [])
    control_addresses = [a for a in dict.fromkeys(control_addresses) if _probe_address(a)]
    # A server that answers HTTP(S) runs no resolver; its answers to DNS queries are forged.
    candidates = control_addresses + [a for addrs in addresses.values() for a in addrs]
    no_resolver = next((a for a in candidates if a != config.resolver), None)
    if no_resolver is not None:
        hints.no_resolver.add(no_resolver)
    hints.raw["probe"] = {"resolver": config.resolver,
                          "control_resolver": config.control_resolver.label,
                          "platforms": list(config.platform_ids), "timeout": config.timeout}
    return _Plan(names, addresses, control_names, control_addresses[:2], no_resolver, hints)


def _probe_address(address: str) -> bool:
    """Only routable unicast addresses are contacted (documentation ranges count, for the lab)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not is_bogon(address) and not ip.is_multicast and ip.version == 4


class _Gate:
    """Opens when every control on an address has sent its trigger or failed to connect."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self.open = threading.Event()
        self.connected: dict[int, bool] = {}
        if count == 0:
            self.open.set()

    def done(self, port: int, connected: bool) -> None:
        with self._lock:
            self.connected[port] = self.connected.get(port, False) or connected
            self._left -= 1
            if self._left <= 0:
                self.open.set()


def _address_probes(session: Session, config: ProbeConfig, address: str, targets: list[str],
                    futures: list[Future[Any]]) -> None:
    """Controls first, then (from a helper task) the target triggers on the same address.

    A target trigger is not sent to a port no control could connect to: it
    would only repeat the IP check and cost another timeout.
    """
    gate = _Gate(3)
    # The ECH controls (`probes.quic.schedule_address`) are two more connections to 443
    # that the IP check counts: as many bare attempts fewer there keeps the address's
    # tasks within one round of its connection slots (a blackholed address otherwise
    # waits a second timeout for a slot).
    bare_attempts = {443: IP_CHECK_ATTEMPTS - (quic_probe.ECH_CONTROLS if config.quic else 0),
                     80: IP_CHECK_ATTEMPTS}
    for port, attempts in bare_attempts.items():
        # Several concurrent attempts (no extra time): the IP check weighs failed against
        # connected attempts, and one attempt is lost to 5% loss about once in a hundred.
        for _ in range(attempts):
            futures.append(session.submit(partial(ip_probe.connect_attempt, session, address,
                                                  port), address))
    futures.append(session.submit(partial(tls_probe.tls_attempt, session, address,
                                          config.control_sni, on_trigger=partial(gate.done, 443)),
                                  address))
    futures.append(session.submit(partial(tls_probe.tls_attempt, session, address, None,
                                          on_trigger=partial(gate.done, 443)), address))
    futures.append(session.submit(partial(http_probe.http_attempt, session, address,
                                          config.control_sni, on_trigger=partial(gate.done, 80)),
                                  address))

    def targets_after_controls() -> None:
        while not gate.open.wait(POLL_S):
            if session.stop.is_set():
                return  # the controls were cancelled: an interrupted run
        for name in targets:
            for attempt in range(max(config.repeats, TRANSFER_SAMPLES)):
                if gate.connected.get(443):
                    futures.append(session.submit(partial(tls_probe.tls_attempt, session,
                                                          address, name), address))
                if gate.connected.get(80) and attempt < config.repeats:
                    futures.append(session.submit(partial(http_probe.http_attempt, session,
                                                          address, name), address))
    futures.append(session.pool.submit(targets_after_controls))
    if config.quic:
        # QUIC Initials (control SNI first, then the targets) and ClientHellos with and
        # without GREASE ECH: `fingerprint.probes.quic.schedule_address`.
        quic_probe.schedule_address(session, address, targets, config.control_sni, futures,
                                    repeats=config.repeats)


def _dns_probes(session: Session, config: ProbeConfig, plan: _Plan,
                futures: list[Future[Any]]) -> None:
    known = {a for addrs in plan.addresses.values() for a in addrs}
    known |= {a for addrs in plan.hints.control_answers.values() for a in addrs}
    watcher = dns_probe.AnswerWatcher(known)

    def check_answer(name: str, addresses: list[str]) -> None:
        # Certificate check of an address the resolver under test returned (dns.redirect);
        # the documented scope (`probe --help`): not for private/bogon addresses, nor for
        # the platform's own, which the analysis accepts without a certificate.
        platform = config.catalog.platform_for_name(name)
        for address in watcher.new_addresses(name, addresses):
            if not _probe_address(address) or (platform is not None
                                                and platform.owns_address(address)):
                continue
            session.sniffer.add_scope(address)
            futures.append(session.submit(partial(tls_probe.tls_attempt, session, address, name,
                                                  download=False), address))

    for names in plan.names.values():
        for name in names:
            for _ in range(config.repeats):
                futures.append(session.submit(partial(dns_probe.query_attempt, session,
                                                      config.resolver, name,
                                                      on_answer=check_answer)))
            if plan.no_resolver is not None:
                futures.append(session.submit(partial(dns_probe.query_attempt, session,
                                                      plan.no_resolver, name)))
    for name in plan.control_names:
        for _ in range(config.repeats):
            futures.append(session.submit(partial(dns_probe.query_attempt, session,
                                                  config.resolver, name)))


def _run_until_done(futures: list[Future[Any]], stop: StopSignal | None = None) -> None:
    """Wait for every task, including tasks other tasks added while running."""
    done = 0
    while done < len(futures):
        end = len(futures)
        wait_all(futures[done:end], stop)
        done = end
        # Tasks may still be appending (callbacks); give them a moment before the final check.
        time.sleep(0.01)


def _localise(session: Session, config: ProbeConfig, findings: list[Finding],
              futures: list[Future[Any]]) -> None:
    seen: set[tuple[str, str, str]] = set()
    hops = range(1, config.max_hops + 1)
    for finding in findings:
        family = finding.technique.value.split(".")[0]
        address = finding.address or finding.target
        key = (family, address, finding.target)
        if key in seen:
            continue
        seen.add(key)
        name = finding.target
        task: Callable[[int], Any]
        if family == "dns":
            task = partial(_dns_repeat, session, address, name)
        elif family == "tls":
            task = partial(_tls_repeat, session, address, name)
        elif family == "http":
            task = partial(_http_repeat, session, address, name)
        elif family == "quic":
            task = partial(_quic_repeat, session, address, name, config.control_sni)
        else:
            task = partial(_syn_repeat, session, address, _finding_port(finding))
        # TCP repeats are connections (slots); a DNS repeat is one datagram (rate only).
        slot = None if family == "dns" else address
        for k in hops:
            futures.append(session.submit(partial(task, k), slot))


def _dns_repeat(session: Session, resolver: str, name: str, ttl: int) -> Any:
    return dns_probe.query_attempt(session, resolver, name, ttl=ttl, resend=False)


def _tls_repeat(session: Session, address: str, name: str, ttl: int) -> Any:
    return tls_probe.tls_attempt(session, address, name, trigger_ttl=ttl, download=False)


def _http_repeat(session: Session, address: str, host: str, ttl: int) -> Any:
    return http_probe.http_attempt(session, address, host, trigger_ttl=ttl)


def _quic_repeat(session: Session, address: str, name: str, control_sni: str, ttl: int) -> Any:
    return quic_probe.ttl_attempt(session, address, name, control_sni, ttl)


def _syn_repeat(session: Session, address: str, port: int, ttl: int) -> Any:
    return ip_probe.connect_attempt(session, address, port, syn_ttl=ttl)


def _finding_port(finding: Finding) -> int:
    for item in finding.evidence:
        if item.role == "trigger" and item.packet.dport:
            return item.packet.dport
    return 443


def _needs_location(finding: Finding) -> bool:
    # Throttling and interception react to the whole flow, not to one packet a
    # TTL-limited repeat could stop short of the server.
    # An ECH block is repeated by the ECH probe only, a UDP/443 drop is not per name.
    return finding.technique not in (Technique.TLS_SNI_THROTTLE, Technique.TLS_MITM,
                                     Technique.TLS_ECH_DROP, Technique.TLS_ECH_RESET,
                                     Technique.QUIC_DROP)


def analyse(raw: list[RawPacket], catalog: Catalog, library: SignatureLibrary,
            trust: TrustStore, hints: CaptureHints) -> Verdicts:
    """The analysis of recorded packets: exactly what `fingerprint analyze` does with a capture."""
    return analyse_pipeline(raw, catalog, library, trust, hints)[1]


def analyse_pipeline(raw: list[RawPacket], catalog: Catalog, library: SignatureLibrary,
                     trust: TrustStore, hints: CaptureHints, *, recording: bool = False
                     ) -> tuple[Pipeline, Verdicts]:
    """`analyse`, also returning the finished pipeline (its observations feed measurements).
    `recording`: `raw` is a snapshot of a sniffer still recording, so the capture runs
    until now (`RECORDED_UNTIL_KEY`)."""
    pipeline = Pipeline(catalog, library, trust)
    if recording:
        hints = CaptureHints(hints.control_answers, hints.no_resolver, hints.address_platform,
                             {**hints.raw, RECORDED_UNTIL_KEY: round(time.time(), 6)})
    pipeline.add_hints(hints)
    for packet in to_packets(raw):
        pipeline.feed(packet)
    return pipeline, pipeline.finish()


def write_capture(path: str | Path, raw: list[RawPacket], hints: CaptureHints) -> None:
    """Write recorded packets after the fact (a live run streams them: `run_probe(pcap_out=)`)."""
    with CaptureWriter(path, section_comment=hints.to_comment(), pcapng=True) as out:
        for item in raw:
            out.write(item.ts, item.data)


class RunListener(Protocol):
    """Told about a run's measurements while it runs (`fingerprint probe --jsonl`)."""

    def planned(self, targets: dict[str, int]) -> None:
        """Targets per platform the run expects to measure (addresses and names)."""

    def finished(self, pipeline: Pipeline, verdicts: Verdicts, platforms: list[str]) -> None:
        """These platforms are done: nothing the run still sends concerns them.

        `pipeline`/`verdicts` are the analysis of every packet recorded so far.
        """


def _location_pending(verdicts: Verdicts, config: ProbeConfig) -> dict[str, list[Finding]]:
    """Platform -> its findings that TTL-limited repeats will localise."""
    pending: dict[str, list[Finding]] = {}
    if not config.localise:
        return pending
    # A RST to the SYN shaped like a closed port's is suppressed as one, but a firewall's
    # REJECT looks the same: TTL-limited SYNs tell them apart (analysis.rules.ip, reset.before_server).
    closed_port_like = [f for f in verdicts.suppressed if f.technique == Technique.IP_RESET]
    for finding in [*verdicts.findings, *closed_port_like]:
        if _needs_location(finding):
            pending.setdefault(finding.platform, []).append(finding)
    return pending


def _finished_groups(groups: dict[str, list[Future[Any]]],
                     stop: StopSignal) -> Iterator[list[str]]:
    """Yield platform ids as all the tasks of their group are done (several at once if so)."""
    left = dict(groups)
    while left:
        stop.check()
        done = [pid for pid, futures in left.items() if all(f.done() for f in futures)]
        if done:
            for pid in done:
                del left[pid]
                wait_all(groups[pid])  # a failed task is a tool fault: re-raise it
            yield done
            continue
        pending = [f for futures in left.values() for f in futures if not f.done()]
        wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)


def run_probe(config: ProbeConfig, library: SignatureLibrary, trust: TrustStore,
              progress: Progress | None = None, *, pcap_out: str | Path | None = None,
              listener: RunListener | None = None, stop: StopSignal | None = None) -> ProbeRun:
    """Probe, localise, analyse; with `pcap_out`, every packet is written as it is recorded.

    The capture hints are complete before the first packet is sent (they come
    from the plan), so the capture's section comment is written with its
    header and a capture cut short by a signal replays like the live run.
    `listener` hears of each platform as soon as its last packet is in (after
    the sweep; blocked platforms after their localisation).  When `stop` is
    set, `Interrupted` is raised from the next wait; the capture is then
    closed, queued probes are dropped and running ones are not waited for.
    """
    progress = progress or Progress(enabled=False)
    stop = stop or StopSignal()
    problems: list[str] = []
    pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="probe")
    completed = False
    try:
        started = time.monotonic()
        progress.set_phase("control resolver")
        limiter = RateLimiter(config.rate)
        plan = _plan(config, pool, problems, limiter)
        plan.hints.raw.update(config.vantage)
        control_seconds = time.monotonic() - started
        stop.check()
        if listener is not None:
            listener.planned({pid: len(plan.names[pid]) + len(plan.addresses[pid])
                              for pid in config.platform_ids})
        scope = {config.resolver, *plan.control_addresses,
                 *(a for addrs in plan.addresses.values() for a in addrs)}
        if plan.no_resolver:
            scope.add(plan.no_resolver)
        writer = CaptureWriter(pcap_out, section_comment=plan.hints.to_comment(), pcapng=True) \
            if pcap_out is not None else None
        sniffer = Sniffer(scope, writer)
        session = Session(config.timeout, limiter, sniffer, pool, progress,
                          config.full_ttl, stop,
                          ConnectionSlots(config.per_destination, config.in_flight))
        sniffer.start()
        try:
            progress.set_phase("probing")
            sweep_start = time.monotonic()
            futures: list[Future[Any]] = []
            _dns_probes(session, config, plan, futures)
            for address in plan.control_addresses:
                for port in (443, 80):
                    futures.append(session.submit(partial(ip_probe.connect_attempt, session,
                                                          address, port), address))
            for pid in config.platform_ids:
                for address in plan.addresses[pid]:
                    _address_probes(session, config, address, plan.names[pid], futures)
            _run_until_done(futures, stop)
            sweep_seconds = time.monotonic() - sweep_start
            localisation_seconds = confirmation_seconds = 0.0
            pending: dict[str, list[Finding]] = {}
            confirming: list[confirm.ConfirmationTest] = []
            if config.localise or config.confirm or listener is not None:
                pipeline, verdicts = analyse_pipeline(sniffer.snapshot(), config.catalog,
                                                      library, trust, plan.hints,
                                                      recording=True)
                pending = _location_pending(verdicts, config)
                if config.confirm:
                    confirming = confirm.plan_confirmations(
                        verdicts.findings, config.resolver, config.control_sni,
                        plan.control_addresses[0] if plan.control_addresses else None)
                if listener is not None:
                    busy = set(pending) | {t.platform for t in confirming}
                    done = [pid for pid in config.platform_ids if pid not in busy]
                    if done:
                        listener.finished(pipeline, verdicts, done)
            if confirming:
                progress.set_phase("confirming")
                confirm_start = time.monotonic()
                notes: dict[str, Any] = {"start": round(time.time(), 6), "tests": []}
                plan.hints.raw[CONFIRMATION_NOTES_KEY] = notes
                confirmations: list[Future[dict[str, Any]]] = []
                confirm.run_confirmations(session, confirming, confirmations)
                notes["tests"] = wait_all(confirmations, stop)
                # Late packets of the round (FINs, answers) before anything else starts.
                time.sleep(0.05)
                notes["end"] = round(time.time(), 6)
                confirmation_seconds = time.monotonic() - confirm_start
                if listener is not None:
                    done = sorted({t.platform for t in confirming} - set(pending))
                    if done:
                        pipeline, verdicts = analyse_pipeline(
                            sniffer.snapshot(), config.catalog, library, trust, plan.hints,
                            recording=True)
                        listener.finished(pipeline, verdicts, done)
            if pending:
                progress.set_phase("localising")
                loc_start = time.monotonic()
                if config.residual_pause > 0 and stop.wait(config.residual_pause):
                    stop.check()
                groups: dict[str, list[Future[Any]]] = {}
                for pid, blocked in pending.items():
                    groups[pid] = []
                    _localise(session, config, blocked, groups[pid])
                for done in _finished_groups(groups, stop):
                    if listener is not None:
                        pipeline, verdicts = analyse_pipeline(
                            sniffer.snapshot(), config.catalog, library, trust, plan.hints,
                            recording=True)
                        listener.finished(pipeline, verdicts, done)
                localisation_seconds = time.monotonic() - loc_start
        finally:
            raw = sniffer.stop()
            # The capture's notes (rewritten at the end with `--pcap-out`) say until when it
            # recorded: replay then reads the last attempts' silence as the live run does.
            plan.hints.raw[RECORDED_UNTIL_KEY] = round(time.time(), 6)
            if writer is not None:
                writer.close()
            if sniffer.write_error:
                problems.append(f"evidence capture stopped: {sniffer.write_error}")
            progress.close()
        completed = True
    finally:
        # Interrupted: drop queued probes and do not wait for running ones (each ends
        # within its own timeout; their kernel sockets close with the process).
        pool.shutdown(wait=completed, cancel_futures=not completed)
    pipeline, verdicts = analyse_pipeline(raw, config.catalog, library, trust, plan.hints)
    if listener is not None:
        # Whatever no platform group covered (targets of no catalog platform) ends here.
        seen = {c.platform for c in verdicts.checks} | {f.platform for f in verdicts.findings}
        listener.finished(pipeline, verdicts, [*config.platform_ids, *sorted(seen)])
    return ProbeRun(raw, plan.hints, verdicts, sweep_seconds, localisation_seconds,
                    control_seconds, problems, confirmation_seconds)

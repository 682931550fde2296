"""Live I/O shared by every probe: one sniffer, a send-rate limit, a thread pool.

Probes talk through kernel sockets (so the kernel keeps the TCP state and no
firewall rule is needed) while one AF_PACKET socket records every packet to
and from the addresses in scope, with kernel timestamps.  The recorded raw IP
packets are the only output of a run: they become the evidence capture and
are fed, through `fingerprint.capture.dissect`, to the same analysis
pipeline that `fingerprint analyze` uses.  This follows the style guide's
"kernel socket + sniffer" pattern; it needs CAP_NET_RAW for the sniffer only.

The sniffer writes each packet to the evidence capture the moment it records
it (the writer flushes every record), so an interrupted run leaves a capture
that reads up to its last packet.  Packets keep their recording order: the
capture's frame n is the analysis's packet n, live and on replay.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.capture.packet import Packet
from fingerprint.capture.writer import CaptureWriter
from fingerprint.interrupt import POLL_S, StopSignal

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
"""Linux: kernel receive timestamps as struct timespec (not exported by Python's socket module)."""
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RCVBUFFORCE = 33
RECV_BUFFER = 8 * 1024 * 1024
PROTO_ICMP = 1
PROTO_ICMPV6 = 58

T = TypeVar("T")


@dataclass(slots=True)
class RawPacket:
    ts: float
    data: bytes
    """The IP packet as it was on the wire (network layer onwards)."""


def _ip_endpoints(data: bytes) -> tuple[str, str, int] | None:
    """(src, dst, protocol) of a raw IP packet, without a full dissection."""
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        return (socket.inet_ntop(socket.AF_INET, data[12:16]),
                socket.inet_ntop(socket.AF_INET, data[16:20]), data[9])
    if version == 6 and len(data) >= 40:
        return (socket.inet_ntop(socket.AF_INET6, data[8:24]),
                socket.inet_ntop(socket.AF_INET6, data[24:40]), data[6])
    return None


def _source_port(data: bytes) -> int | None:
    """The TCP or UDP source port of a raw IP packet (None for other protocols)."""
    if data[0] >> 4 == 4:
        offset, proto = (data[0] & 0x0F) * 4, data[9]
    else:
        offset, proto = 40, data[6]
    if proto not in (6, 17) or len(data) < offset + 2:
        return None
    return int.from_bytes(data[offset:offset + 2], "big")


class Sniffer:
    """Records IP packets to or from the addresses in `scope` (plus ICMP errors to us).

    Scope can grow while the sniffer runs (addresses learnt from DNS answers).
    On loopback every packet shows twice (outgoing and incoming); the outgoing
    copy is skipped there.  With a `writer`, each recorded packet is also
    written to it at once, in recording order.
    """

    def __init__(self, scope: Iterable[str], writer: CaptureWriter | None = None) -> None:
        self.scope: set[str] = {str(ipaddress.ip_address(a)) for a in scope}
        self.packets: list[RawPacket] = []
        self.writer = writer
        self.write_error: str | None = None
        self.on_sent: Callable[[int | None], None] | None = None
        """Called for each recorded packet sent from this host, with its TCP/UDP source
        port (`RateLimiter.sent`)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:  # root may exceed net.core.rmem_max: a burst must not drop evidence
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="fingerprint-sniffer", daemon=True)

    def add_scope(self, address: str) -> None:
        self.scope.add(str(ipaddress.ip_address(address)))

    def start(self) -> None:
        self._thread.start()

    def _keep(self, data: bytes) -> bool:
        ends = _ip_endpoints(data)
        if ends is None:
            return False
        src, dst, proto = ends
        return src in self.scope or dst in self.scope or proto in (PROTO_ICMP, PROTO_ICMPV6)

    def _drain(self) -> None:
        ancillary = socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, _flags, address = self._sock.recvmsg(65535, ancillary)
            except BlockingIOError:
                return
            ifname, proto, pkttype = address[0], address[1], address[2]
            if proto not in (ETH_P_IP, ETH_P_IPV6):
                continue
            if not self._keep(data):
                continue
            if pkttype == PACKET_OUTGOING and self.on_sent is not None:
                self.on_sent(_source_port(data))  # the send-rate limit counts every packet that leaves
            if ifname == "lo" and pkttype == PACKET_OUTGOING:
                continue
            ts = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec / 1e9
            # The capture's precision (pcapng ticks of 1 us): live and replay see equal times.
            ts = round(ts * 1_000_000) / 1_000_000
            with self._lock:
                self.packets.append(RawPacket(ts, data))
                if self.writer is not None:
                    try:
                        self.writer.write(ts, data)
                    except OSError as exc:  # disk full: keep probing, say so at the end
                        self.write_error = f"{self.writer.path}: {exc.strerror or exc}"
                        self.writer = None

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _w, _x = select.select([self._sock], [], [], 0.05)
            if readable:
                self._drain()
        self._drain()

    def stop(self) -> list[RawPacket]:
        """Stop after a short grace period (late answers); the packets in recording order.

        Recording order, not timestamp order: it is the order of the evidence
        capture, which replay reads (kernel timestamps of packets from two
        CPUs can be a few microseconds out of order).
        """
        time.sleep(0.05)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()
        return self.snapshot()

    def snapshot(self) -> list[RawPacket]:
        with self._lock:
            return list(self.packets)


def to_packets(raw: Iterable[RawPacket]) -> list[Packet]:
    """Raw IP packets -> analysis records, numbered as frames of the evidence capture."""
    out: list[Packet] = []
    for frame, item in enumerate(raw, start=1):
        packet = dissect(frame, item.ts, LINKTYPE_RAW, item.data)
        if packet is not None:
            out.append(packet)
    return out


class RateLimiter:
    """At most `rate` packets sent per second (`--rate`), counting every packet a probe causes.

    A probe writes few packets itself (a SYN, a query, a ClientHello, a
    request); the kernel sends the rest of each connection (ACKs, the TLS
    handshake's second flight, FINs, retransmissions), several times as many.
    So the limiter counts what really leaves: the sniffer reports each packet
    it sees sent to an address in scope (`sent`), and a probe step is admitted
    (`take(cost)`, `cost` the packets the step makes leave at once) only while
    the packets seen leaving in the last second, plus what the steps admitted in
    the last `PENDING_S` have not yet been seen sending, plus `cost`, fit in
    `rate`.  A step that names its connection (`flow`, the local port, known
    before its first packet) has its reservation drawn down by each packet seen
    leaving from that port and cut to what can still come when it ends
    (`release`), so a packet counts once: as reserved until it is seen, then as
    sent.  A step without a flow (a DNS query) keeps its whole cost for
    `PENDING_S`, counted twice for a moment, never missed.  (Counting every
    reservation twice for `PENDING_S` held a sweep to about two thirds of
    `--rate`; a TLS attempt reserves the ACKs of a whole transfer, which a path
    that coalesces segments never sends.)  A step costing more than the
    whole rate is admitted alone into an empty window.  Before a sniffer reports
    (`observing` false: the control-resolver lookups) each step's cost counts from
    its start until it ends, then (`record`) for the window from its end.

    Burst tolerance: what the kernel sends later on a connection already open
    (a retransmission, the ACKs of a slow transfer, the closing FIN) cannot be
    held back.  It delays the next steps, but a 1 s window can hold up to
    `BURST_SECONDS` x `rate` packets more than `rate` (the lab scope test
    measures every window against that bound).
    """

    BURST_SECONDS = 0.25
    WINDOW_S = 1.0
    PENDING_S = 0.3
    SHORT_S = 0.1
    SHORT_BURST = 2.0
    """Within any `SHORT_S`, at most `SHORT_BURST` times the rate's share (64 packets per
    100 ms at 320/s): the 1 s window alone would let a whole second's packets out in its
    first few milliseconds, a burst a short queue drops."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._sent: deque[float] = deque()
        self._admitted: list[list[float]] = []
        """Reservations of steps without a flow: [admitted at, stops counting at, cost,
        cost at once]."""
        self._flows: dict[int, list[float]] = {}
        """local port -> [admitted at, stops counting at, packets not yet seen, of those
        leaving at once]"""
        self.observing = False
        self._lock = threading.Lock()
        self._queue: deque[threading.Event] = deque()
        """Steps waiting to be admitted, in arrival order; the first one's event is set."""

    def sent(self, flow: int | None = None) -> None:
        """One packet was seen leaving from local port `flow` (called by the sniffer)."""
        if self.rate is None:
            return
        with self._lock:
            self.observing = True
            self._sent.append(time.monotonic())
            reserved = self._flows.get(flow) if flow is not None else None
            if reserved is not None and reserved[2] > 0:
                reserved[2] -= 1
                reserved[3] = max(0.0, reserved[3] - 1)

    def release(self, flow: int, leftover: int = 0) -> None:
        """The step on local port `flow` ended: at most `leftover` of its packets may still
        leave (a FIN's, the ACK of the server's FIN)."""
        if self.rate is None:
            return
        with self._lock:
            reserved = self._flows.get(flow)
            if reserved is not None:
                reserved[2] = min(reserved[2], leftover)
                reserved[3] = min(reserved[3], leftover)

    def record(self, packets: int) -> None:
        """`packets` left just now that no sniffer saw (a step that ran before it started).

        They count from now for the window, instead of the step's reservation: counting
        both held the sweep's first second nearly full of control lookups."""
        if self.rate is None:
            return
        with self._lock:
            for i, reserved in enumerate(self._admitted):
                if reserved[2] == packets:
                    del self._admitted[i]
                    break
            self._sent.extend([time.monotonic()] * packets)

    def take(self, packets: int = 1, flow: int | None = None, at_once: int | None = None) -> None:
        """Wait until `packets` more fit; `flow`: the local port they leave from; `at_once`:
        how many of them leave right away (the rest, an exchange's ACKs and close, follow
        the server's answers), which is what the 100 ms window counts ahead.

        Steps are admitted in the order they asked: else small steps (a SYN, a query)
        keep slipping into the room a large one (a TLS attempt with its transfer) waits
        for, and the large one, often an address's control, starts seconds late.
        """
        if self.rate is None:
            return
        turn = threading.Event()
        with self._lock:
            self._queue.append(turn)
            if self._queue[0] is turn:
                turn.set()
        try:
            turn.wait()
            self._admit(packets, flow, packets if at_once is None else min(at_once, packets))
        finally:
            with self._lock:
                first = self._queue[0] is turn
                self._queue.remove(turn)
                if first and self._queue:
                    self._queue[0].set()

    def _admit(self, packets: int, flow: int | None, at_once: int) -> None:
        assert self.rate is not None
        short_limit = self.rate * self.SHORT_S * self.SHORT_BURST
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.WINDOW_S:
                    self._sent.popleft()
                self._admitted = [r for r in self._admitted if r[1] > now]
                self._flows = {port: r for port, r in self._flows.items()
                               if r[1] > now and r[2] > 0}
                reserved = [*self._admitted, *self._flows.values()]
                counted = len(self._sent) + sum(r[2] for r in reserved)
                recent = now - self.SHORT_S
                short = sum(min(r[2], r[3]) for r in reserved if r[0] > recent)
                for t in reversed(self._sent):
                    if t <= recent:
                        break
                    short += 1
                if counted == 0 or (counted + packets <= self.rate
                                    and (short == 0 or short + at_once <= short_limit)):
                    hold = self.PENDING_S if self.observing else self.WINDOW_S
                    if flow is not None and self.observing:
                        self._flows[flow] = [now, now + hold, float(packets), float(at_once)]
                    else:
                        self._admitted.append([now, now + hold, float(packets), float(at_once)])
                    return
                expiries = [t + self.WINDOW_S for t in list(self._sent)[:1]]
                expiries += [r[1] for r in reserved] + [r[0] + self.SHORT_S for r in reserved]
                wait = min(expiries) - now
            time.sleep(min(max(wait, 0.002), 0.05))


DEFAULT_RATE = 320.0
"""Packets per second the probe sends by default (`--rate`): a handful of small
packets per millisecond at most, which ordinary paths carry.  Replies add nearly as
many again, so behind a hop that forwards only 500 packets/s in both directions
(issue 13's slow middlebox) the probe's own transfers queue: later ones run slower,
which the confirmation round (a lone control/target pair) tells from a throttle."""
DEFAULT_PER_DESTINATION = 10
"""Connections in flight to one address at once: a few more than a browser opens to
one host (6), far below the per-client limits servers and firewalls set, and
enough for every control of an address (9 connections) to run side by side, so
an address that drops everything costs one timeout, not two."""
DEFAULT_IN_FLIGHT = 24
"""Connections in flight overall: what a slow middlebox with few
connection slots or a short queue receives as one burst."""


class ConnectionSlots:
    """At most `per_destination` probe tasks in flight to one address and `overall` in all.

    A task holds its slot from before its first packet to its end (its timeout at
    worst), so a burst never exceeds what the limits allow, whatever the rate.
    Overall slots go to tasks in the order they asked, so the sweep runs in the
    order it was planned: an address's controls planned early (and the timeouts of
    an address that drops everything) do not wait behind tasks planned after them.
    """

    def __init__(self, per_destination: int = DEFAULT_PER_DESTINATION,
                 overall: int = DEFAULT_IN_FLIGHT) -> None:
        self.per_destination = max(1, per_destination)
        self.overall = max(1, overall)
        self._free = self.overall
        self._waiting: deque[threading.Event] = deque()
        self._per: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self.peak = 0
        self._in_flight = 0

    def _destination(self, address: str) -> threading.BoundedSemaphore:
        with self._lock:
            if address not in self._per:
                self._per[address] = threading.BoundedSemaphore(self.per_destination)
            return self._per[address]

    def _acquire_overall(self, stop: StopSignal | None) -> None:
        granted = threading.Event()
        with self._lock:
            if self._free > 0 and not self._waiting:
                self._free -= 1
                return
            self._waiting.append(granted)
        try:
            while not granted.wait(POLL_S):
                if stop is not None:
                    stop.check()
        except BaseException:
            with self._lock:
                if granted in self._waiting:
                    self._waiting.remove(granted)
                    raise
            self._release_overall()  # handed over meanwhile: pass it on
            raise

    def _release_overall(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the slot goes straight to the next in line
            else:
                self._free += 1

    def run(self, address: str, task: Callable[[], T], stop: StopSignal | None = None) -> T:
        """`task()` once a slot to `address` and an overall slot are free."""
        own = self._destination(address)
        # Destination first: tasks queued behind one slow address do not hold overall
        # slots other addresses could use.
        while not own.acquire(timeout=POLL_S):
            if stop is not None:
                stop.check()
        try:
            self._acquire_overall(stop)
            try:
                with self._lock:
                    self._in_flight += 1
                    self.peak = max(self.peak, self._in_flight)
                return task()
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._release_overall()
        finally:
            own.release()


@dataclass
class Progress:
    """A one-line live status on stderr, only when stderr is a terminal."""

    enabled: bool = field(default_factory=lambda: sys.stderr.isatty())
    total: int = 0
    done: int = 0
    phase: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        with self._lock:
            self.total += count
        self._show()

    def step(self) -> None:
        with self._lock:
            self.done += 1
        self._show()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._show()

    def _show(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\x1b[Kfingerprint probe: {self.phase} {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


@dataclass
class Session:
    """What every probe needs: timeout, send-rate limit, worker pool, sniffer, progress."""

    timeout: float
    limiter: RateLimiter
    sniffer: Sniffer
    pool: ThreadPoolExecutor
    progress: Progress = field(default_factory=Progress)
    full_ttl: int = 64
    """IP TTL of ordinary (not TTL-limited) probe packets."""
    stop: StopSignal = field(default_factory=StopSignal)
    """Once set, queued tasks end at once (with `Interrupted`) instead of probing."""
    slots: ConnectionSlots = field(default_factory=ConnectionSlots)
    """Connections in flight per destination and overall (`--per-destination`,
    `--in-flight`)."""

    def __post_init__(self) -> None:
        if self.limiter.rate is not None:
            self.sniffer.on_sent = self.limiter.sent
            self.limiter.observing = True

    def submit(self, task: Callable[[], T], destination: str | None = None) -> Future[T]:
        """Run `task` in the pool; with `destination`, inside a connection slot to it."""
        self.progress.add(1)

        def run() -> T:
            try:
                self.stop.check()
                if destination is None:
                    return task()
                return self.slots.run(destination, task, self.stop)
            finally:
                self.progress.step()
        return self.pool.submit(run)


def wait_all(futures: Iterable[Future[T]], stop: StopSignal | None = None) -> list[T]:
    """Results of every future; a probe task failing is a tool fault and is re-raised.

    With `stop`, waiting is a short poll, and `Interrupted` is raised as soon
    as a signal arrived.
    """
    pending = list(futures)
    if stop is not None:
        for future in pending:
            while not future.done():
                stop.check()
                wait([future], timeout=POLL_S)
        stop.check()
    return [f.result() for f in pending]

"""Live I/O shared by every probe: one sniffer, a send-rate limit, a thread pool.

Probes talk through kernel sockets (so the kernel keeps the TCP state and no
firewall rule is needed) while one AF_PACKET socket records every packet to
and from the addresses in scope, with kernel timestamps.  The recorded raw IP
packets are the only output of a run: they become the evidence capture and
are fed, through `fingerprint.capture.dissect`, to the same analysis
pipeline that `fingerprint analyze` uses.  This follows the style guide's
"kernel socket + sniffer" pattern; it needs CAP_NET_RAW for the sniffer only.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from fingerprint.capture.dissect import LINKTYPE_RAW, dissect
from fingerprint.capture.packet import Packet

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


class Sniffer:
    """Records IP packets to or from the addresses in `scope` (plus ICMP errors to us).

    Scope can grow while the sniffer runs (addresses learnt from DNS answers).
    On loopback every packet shows twice (outgoing and incoming); the outgoing
    copy is skipped there.
    """

    def __init__(self, scope: Iterable[str]) -> None:
        self.scope: set[str] = {str(ipaddress.ip_address(a)) for a in scope}
        self.packets: list[RawPacket] = []
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
            if ifname == "lo" and pkttype == PACKET_OUTGOING:
                continue
            if not self._keep(data):
                continue
            ts = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec + nsec / 1e9
            with self._lock:
                self.packets.append(RawPacket(ts, data))

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _w, _x = select.select([self._sock], [], [], 0.05)
            if readable:
                self._drain()
        self._drain()

    def stop(self) -> list[RawPacket]:
        """Stop after a short grace period (late answers); the packets in time order."""
        time.sleep(0.05)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sock.close()
        with self._lock:
            return sorted(self.packets, key=lambda p: p.ts)

    def snapshot(self) -> list[RawPacket]:
        with self._lock:
            return sorted(self.packets, key=lambda p: p.ts)


def to_packets(raw: Iterable[RawPacket]) -> list[Packet]:
    """Raw IP packets -> analysis records, numbered as frames of the evidence capture."""
    out: list[Packet] = []
    for frame, item in enumerate(raw, start=1):
        packet = dissect(frame, item.ts, LINKTYPE_RAW, item.data)
        if packet is not None:
            out.append(packet)
    return out


class RateLimiter:
    """Token bucket over packets sent by the probes (`--rate`), shared by all threads.

    Kernel retransmissions are not counted: they are the kernel's, bounded by
    its own back-off.  A burst of one second's worth is allowed.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._tokens = float(self.rate or 0)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, packets: int = 1) -> None:
        if self.rate is None:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= packets:
                    self._tokens -= packets
                    return
                wait = (packets - self._tokens) / self.rate
            time.sleep(wait)


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

    def submit(self, task: Callable[[], T]) -> Future[T]:
        self.progress.add(1)

        def run() -> T:
            try:
                return task()
            finally:
                self.progress.step()
        return self.pool.submit(run)


def wait_all(futures: Iterable[Future[T]]) -> list[T]:
    """Results of every future; a probe task failing is a tool fault and is re-raised."""
    return [f.result() for f in list(futures)]

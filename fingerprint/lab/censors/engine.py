"""The censor engine: runs the scenario's behaviours on queued packets.

Runs inside the censor namespace (`python -m fingerprint.lab.censors.engine
CONFIG`).  iptables queues client-side packets (mangle PREROUTING, so packets
whose TTL expires at the censor are still seen, as a tap would see them) to
NFQUEUE 0: DNS queries, TLS and HTTP segments, and TCP SYNs, as far as the
scenario's behaviours need them; each is parsed, offered to the behaviours,
and accepted, dropped or marked.  Injected packets are written as whole Ethernet frames on an AF_PACKET
socket, so every header field is exactly what the behaviour configured (a raw
IP socket would let the kernel fill in a zero IP ID).

Flow state: flows a behaviour chose to drop (the rest of the connection after
a dropped ClientHello), and residual blocks after a trigger, on (client,
server, port) as the GFW's 90 s penalty or on the client's whole address.

The Engine is the behaviours' `CensorContext`.  Its decisions (`decide`) need
no socket: given a `send` function and a clock instead of the AF_PACKET
sockets, the unit tests run it on crafted packets without root.
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import dns.message
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from fingerprint.lab import topology
from fingerprint.lab.censors import build_behaviours
from fingerprint.lab.censors._nfqueue import run_queue
from fingerprint.lab.censors._wire import ACK, RST, SYN, Flow, Packet, http_host, parse, tls_sni
from fingerprint.lab.censors._wire import TCP as TCP_PROTO
from fingerprint.lab.censors._wire import UDP as UDP_PROTO
from fingerprint.lab.censors.base import FLOW_DROP_SECONDS, Behaviour, Verdict
from fingerprint.protocols import quic_initial, tls

QUEUE_NUMBER = 0
QUIC_PORT = 443
HELLO_LIMIT = 1 << 16
"""Bytes kept per flow while a ClientHello is reassembled (a ClientHello is at most 64 kB)."""
DONE: dict[int, bytes] = {}
"""Marks a flow whose ClientHello was offered (or given up on)."""

ResidualKey = tuple[str, str | None, int | None]
"""(client, server, port) for a 3-tuple block; (client, None, None) for the whole client."""


def _hello_complete(data: bytes) -> bool:
    """The joined records hold the whole ClientHello handshake message."""
    body = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        body += data[pos + 5:pos + 5 + length]
        pos += 5 + length
    return len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big")


class Engine:
    """`send`: where injected packets go (default: the censor's AF_PACKET sockets, which
    need root); `clock`: monotonic seconds (a test moves time by hand)."""

    def __init__(self, behaviours: list[Behaviour], log_path: Path | None, *,
                 send: Callable[[str, Any], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.behaviours = behaviours
        self._log = log_path.open("a", buffering=1) if log_path else None
        self._lock = threading.Lock()
        self._clock = clock
        self.dropped_flows: dict[Flow, float] = {}
        self.residual: dict[ResidualKey, tuple[float, str]] = {}
        self.udp_residual: dict[tuple[str, str, int], tuple[float, str]] = {}
        """Residual blocks a UDP (QUIC) trigger started: UDP only (the GFW's QUIC block
        leaves TCP alone)."""
        self.hellos = any("hello" in b.queues for b in behaviours)
        self._streams: dict[Flow, dict[int, bytes]] = {}
        """Client bytes of TCP/443 flows until their ClientHello is whole (`_hello`)."""
        client, server = topology.CENSOR_CLIENT_LINK, topology.CENSOR_SERVER_LINK
        self._links = {
            "client": (client.right_interface, client.right_mac, client.left_mac),
            "server": (server.left_interface, server.left_mac, server.right_mac),
        }
        self._sockets: dict[str, socket.socket] = {}
        self._send = send
        if send is None:
            for direction, (ifname, _, _) in self._links.items():
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                sock.bind((ifname, 0))
                self._sockets[direction] = sock

    # -- services for behaviours (CensorContext) -----------------------------------------
    def send(self, direction: str, ip_packet: Any) -> None:
        """Send a scapy IP packet towards the client or the server side."""
        if self._send is not None:
            self._send(direction, ip_packet)
            return
        _, own_mac, peer_mac = self._links[direction]
        frame = Ether(src=own_mac, dst=peer_mac) / ip_packet
        try:
            self._sockets[direction].send(bytes(frame))
        except OSError as exc:
            # A qdisc or egress rule that drops the frame (a full tbf queue, emulated loss)
            # reports ENOBUFS: on a real link the packet is simply lost, the censor goes on.
            if exc.errno != errno.ENOBUFS:
                raise

    def drop_flow(self, flow: Flow, seconds: float = FLOW_DROP_SECONDS) -> None:
        with self._lock:
            self.dropped_flows[flow] = self._clock() + seconds

    def later(self, delay: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()

    def log(self, **event: Any) -> None:
        if self._log is not None:
            self._log.write(json.dumps({"time": time.time(), **event}) + "\n")

    # -- packet handling ------------------------------------------------------------
    def _residual_for(self, packet: Packet, now: float) -> tuple[float, str] | None:
        with self._lock:
            for key in ((packet.src, packet.dst, packet.dport), (packet.src, None, None)):
                block = self.residual.get(key)
                if block is not None and block[0] > now:
                    return block
        return None

    def decide(self, packet: Packet) -> Verdict | None:
        now = self._clock()
        if packet.proto == TCP_PROTO:
            residual = self._residual_for(packet, now)
            with self._lock:
                dropped = self.dropped_flows.get(packet.flow, 0.0) > now
            if residual is not None:
                if residual[1] == "reset" and not packet.tcp_flags & RST:
                    self._reset_client(packet)
                self.log(event="residual", flow=packet.flow, action=residual[1])
                return Verdict(drop=True)
            if dropped:
                return Verdict(drop=True)
            if packet.tcp_flags & (SYN | ACK | RST) == SYN:
                return self._offer("syn", packet.dst, packet, lambda b: b.on_syn(self, packet))
            if not packet.payload:
                return None
            if self.hellos and packet.dport == QUIC_PORT:
                verdict = self._hello(packet)
                if verdict is not None:
                    return verdict
            sni = tls_sni(packet.payload)
            if sni is not None:
                return self._offer("tls", sni, packet, lambda b: b.on_tls(self, packet, sni))
            host = http_host(packet.payload)
            if host is not None:
                return self._offer("http", host, packet, lambda b: b.on_http(self, packet, host))
        elif packet.proto == UDP_PROTO and packet.dport == QUIC_PORT:
            return self._quic(packet, now)
        elif packet.proto == UDP_PROTO and packet.dport == 53:
            try:
                query = dns.message.from_wire(packet.payload)
            except Exception:
                return None
            if len(query.question) != 1:
                return None
            qname = query.question[0].name.to_text().rstrip(".")
            return self._offer("dns", qname, packet, lambda b: b.on_dns(self, packet, query))
        return None

    def _quic(self, packet: Packet, now: float) -> Verdict | None:
        """UDP/443: the residual block of (client, server, port), then client Initials:
        decrypted (RFC 9001 keys from the DCID) and offered with their ClientHello."""
        with self._lock:
            residual = self.udp_residual.get((packet.src, packet.dst, packet.dport))
            dropped = self.dropped_flows.get(packet.flow, 0.0) > now
        if residual is not None and residual[0] > now:
            self.log(event="residual", flow=packet.flow, action="drop")
            return Verdict(drop=True)
        if dropped:
            return Verdict(drop=True)
        hello = None
        for dcid, initials in quic_initial.read_client_initials([packet.payload]).items():
            del dcid
            hello = initials.client_hello or hello
        if hello is None:
            return None
        found = hello
        return self._offer("quic", hello.sni or "", packet,
                           lambda b: b.on_quic(self, packet, found))

    def _hello(self, packet: Packet) -> Verdict | None:
        """Reassemble the client's first bytes on a TCP/443 flow (segments in sequence
        order, TLS records joined by the parser) until a whole ClientHello parses, then offer
        it on the segment that completed it: a censor that reassembles sees through
        fragmentation (TSPU, net4people/bbs#417)."""
        with self._lock:
            parts = self._streams.setdefault(packet.flow, {})
            if parts is DONE:
                return None
            parts[packet.seq] = packet.payload
            ordered = sorted(parts.items())
            data = bytearray()
            expect = ordered[0][0]
            for seq, chunk in ordered:
                if seq != expect:
                    break
                data += chunk
                expect = (seq + len(chunk)) & 0xFFFFFFFF
            if len(data) > HELLO_LIMIT:
                self._streams[packet.flow] = DONE
                return None
        hello = tls.parse_client_hello(bytes(data))
        if hello is None or not _hello_complete(bytes(data)):
            return None
        with self._lock:
            self._streams[packet.flow] = DONE
        return self._offer("hello", hello.sni or "", packet,
                           lambda b: b.on_hello(self, packet, hello))

    def _offer(self, trigger: str, name: str, packet: Packet,
               hook: Callable[[Behaviour], Verdict | None]) -> Verdict | None:
        for behaviour in self.behaviours:
            verdict = hook(behaviour)
            if verdict is None:
                continue
            self.log(event="trigger", behaviour=behaviour.name, profile=behaviour.profile,
                     trigger=trigger, name=name, flow=packet.flow, ttl=packet.ttl,
                     drop=verdict.drop, mark=verdict.mark)
            if behaviour.residual_seconds > 0 and packet.proto == TCP_PROTO:
                key: ResidualKey = (packet.src, None, None) \
                    if behaviour.residual_scope == "client" \
                    else (packet.src, packet.dst, packet.dport)
                block = partial(self._start_residual, key, behaviour.residual_seconds,
                                behaviour.residual_action)
                if verdict.residual_after > 0:
                    self.later(verdict.residual_after, block)
                else:
                    block()
            elif behaviour.residual_seconds > 0 and packet.proto == UDP_PROTO:
                with self._lock:
                    self.udp_residual[(packet.src, packet.dst, packet.dport)] = (
                        self._clock() + behaviour.residual_seconds, "drop")
            return verdict
        return None

    def _start_residual(self, key: ResidualKey, seconds: float, action: str) -> None:
        with self._lock:
            self.residual[key] = (self._clock() + seconds, action)

    def _reset_client(self, packet: Packet) -> None:
        answered = len(packet.payload) + (1 if packet.tcp_flags & SYN else 0)
        self.send("client", IP(src=packet.dst, dst=packet.src, ttl=64) / TCP(
            sport=packet.dport, dport=packet.sport, flags="RA",
            seq=packet.ack if packet.tcp_flags & ACK else 0,
            ack=(packet.seq + answered) & 0xFFFFFFFF, window=0))

    def handle(self, queued: Any) -> None:
        """NFQUEUE callback."""
        packet = parse(queued.get_payload())
        verdict = self.decide(packet) if packet is not None else None
        if verdict is None:
            queued.accept()
            return
        if verdict.mark:
            queued.set_mark(verdict.mark)
        if verdict.drop:
            queued.drop()
        else:
            queued.accept()
        for action in verdict.then:
            action()


def main() -> None:
    parser = argparse.ArgumentParser(description="fingerprint lab censor engine")
    parser.add_argument("config", help="censor.json written by `fingerprint lab up`")
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    engine = Engine(build_behaviours(config["rules"]),
                    Path(config["log"]) if config.get("log") else None)
    run_queue(QUEUE_NUMBER, engine.handle, 4096, args.ready_file)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""Speed and memory benchmark for capture reading and `fingerprint analyze`.

Builds a synthetic Ethernet capture of DNS exchanges and TLS flows (some of
them reset after the ClientHello, as an SNI filter would), then measures on
the same file, in the same run:

* the reader alone: `open_capture` iterated in this process (packets/s);
* `tshark -T fields` printing comparable fields (packets/s);
* `python -m fingerprint analyze FILE --json` (packets/s), and the ratio;
* the peak RSS of each subprocess (wait4's rusage of that very child, taken
  by a small wrapper process so the benchmark's own memory is not counted).

    python benchmarks/bench_analyze.py                      # 300,000 packets
    python benchmarks/bench_analyze.py --packets 50000
    python benchmarks/bench_analyze.py --sizes 100000,300000,1000000   # memory flatness

Targets (see benchmarks/README.md): reader >= 300,000 packets/s, analyze at
least 2x tshark's rate, analyze peak RSS flat as the capture grows.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scapy.layers.l2 import Ether  # noqa: E402

from fingerprint.capture.dissect import LINKTYPE_ETHERNET  # noqa: E402
from fingerprint.capture.reader import open_capture  # noqa: E402
from fingerprint.capture.writer import CaptureWriter  # noqa: E402
from fingerprint.testing.craft import Capture  # noqa: E402

NAMES = [
    "twitter.com", "x.com", "abs.twimg.com", "www.facebook.com", "facebook.com",
    "www.instagram.com", "web.telegram.org", "telegram.org", "www.youtube.com",
    "www.tiktok.com", "vk.com", "www.linkedin.com", "web.whatsapp.com", "signal.org",
    "example.com", "www.example.com",
] + [f"host{n}.cdn{n % 7}.example.net" for n in range(24)]

RESOLVER = "198.51.100.53"
TLS_TEMPLATE_SRC = "192.0.2.10"
TLS_TEMPLATE_DST = "203.0.113.10"

# Offsets in an untagged Ethernet + IPv4 (no options) frame.
IP_ID = 18
IP_TTL = 22
IP_SRC = 26
IP_DST = 30
L4_SPORT = 34
L4_DPORT = 36
TCP_SEQ = 38
TCP_ACK = 42
DNS_ID = 42


@dataclass
class Templates:
    dns_query: list[bytes]
    dns_response: list[bytes]
    syn: bytes
    syn_ack: bytes
    ack: bytes
    client_hello: list[bytes]
    server_hello: bytes
    reset: bytes


ETHERNET = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x0800))


def _frames(cap: Capture) -> list[bytes]:
    """The crafted packets in capture order, each behind the same Ethernet header."""
    return [ETHERNET + data for _ts, data in cap.frames]


def make_templates() -> Templates:
    """A few dozen frames crafted by `fingerprint.testing.craft` (the fixtures' builder);
    everything else is byte-level variation."""
    queries = []
    responses = []
    for index, name in enumerate(NAMES):
        cap = Capture(client=TLS_TEMPLATE_SRC)
        cap.dns(RESOLVER, name, at=0.0, txid=1, sport=40000).respond(
            [f"203.0.113.{index + 1}"], delay_ms=20, ttl=58)
        query, response = _frames(cap)
        queries.append(query)
        responses.append(response)
    hellos = []
    for name in NAMES:
        cap = Capture(client=TLS_TEMPLATE_SRC)
        cap.tcp(TLS_TEMPLATE_DST, 443, at=0.0).client_hello(name)
        hellos.append(_frames(cap)[0])
    cap = Capture(client=TLS_TEMPLATE_SRC)
    flow = cap.tcp(TLS_TEMPLATE_DST, 443, at=0.0, server_ttl=52).handshake()
    flow.client_hello(NAMES[0])
    # The "censor's" reset: no DF, a TTL unlike the server's (and Ethernet padding below).
    flow.inject("R", at_ms=1, ttl=27, ip_id=0, window=8192)
    flow.server_hello()
    syn, syn_ack, ack, _hello, reset, server_hello = _frames(cap)
    return Templates(
        dns_query=queries,
        dns_response=responses,
        syn=syn,
        syn_ack=syn_ack,
        ack=ack,
        client_hello=hellos,
        server_hello=server_hello,
        reset=reset + b"\0" * 6,
    )


def build_capture(path: Path, packets: int, seed: int = 1) -> int:
    """Write about `packets` frames (a whole number of exchanges) to `path`; return the count."""
    rng = random.Random(seed)
    templates = make_templates()
    pack_into = struct.pack_into
    written = 0
    ts = 1_700_000_000.0
    with CaptureWriter(path, linktype=LINKTYPE_ETHERNET, sync=False) as writer:
        write = writer.write
        while written < packets:
            client = bytes((192, 0, 2, rng.randrange(1, 255)))
            port = rng.randrange(1024, 65536)
            choice = rng.random()
            if choice < 0.4:
                name = rng.randrange(len(NAMES))
                query = bytearray(templates.dns_query[name])
                response = bytearray(templates.dns_response[name])
                dns_id = rng.randrange(65536)
                query[IP_SRC:IP_SRC + 4] = client
                response[IP_DST:IP_DST + 4] = client
                pack_into("!H", query, L4_SPORT, port)
                pack_into("!H", response, L4_DPORT, port)
                pack_into("!H", query, DNS_ID, dns_id)
                pack_into("!H", response, DNS_ID, dns_id)
                pack_into("!H", query, IP_ID, rng.randrange(65536))
                write(ts, query)
                write(ts + 0.02, response)
                written += 2
            else:
                server = bytes((203, 0, 113, rng.randrange(1, 255)))
                reset = choice > 0.9
                client_seq = rng.randrange(1 << 32)
                server_seq = rng.randrange(1 << 32)
                hello = templates.client_hello[rng.randrange(len(NAMES))]
                hello_length = len(hello) - 54
                flow = (
                    (templates.syn, True, client_seq, 0),
                    (templates.syn_ack, False, server_seq, client_seq + 1),
                    (templates.ack, True, client_seq + 1, server_seq + 1),
                    (hello, True, client_seq + 1, server_seq + 1),
                    (templates.reset if reset else templates.server_hello, False,
                     server_seq + 1, client_seq + 1 + hello_length),
                )
                step = 0.0
                ip_id = rng.randrange(65536)
                for template, outgoing, seq, ack in flow:
                    frame = bytearray(template)
                    if outgoing:
                        frame[IP_SRC:IP_SRC + 4] = client
                        frame[IP_DST:IP_DST + 4] = server
                        pack_into("!H", frame, L4_SPORT, port)
                        pack_into("!H", frame, IP_ID, ip_id)
                        ip_id = (ip_id + 1) & 0xFFFF
                    else:
                        frame[IP_SRC:IP_SRC + 4] = server
                        frame[IP_DST:IP_DST + 4] = client
                        pack_into("!H", frame, L4_DPORT, port)
                    pack_into("!II", frame, TCP_SEQ, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
                    write(ts + step, frame)
                    step += 0.01
                written += len(flow)
            ts += 0.0005
    return written


def read_rate(path: Path) -> tuple[int, float, float]:
    """(packets, wall seconds, CPU seconds): CPU time is steadier on a busy machine."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    count = 0
    with open_capture(path) as capture:
        for _ in capture:
            count += 1
    return count, time.perf_counter() - start, time.process_time() - cpu_start


# Runs a command and reports its wall time and peak RSS.  The measuring is done
# in this small separate process because a child's ru_maxrss also counts the
# memory it inherited at fork: forked from the benchmark (which has scapy
# loaded) every figure would start at the benchmark's own size.
MEASURE_WRAPPER = """
import os, subprocess, sys, time
start = time.perf_counter()
with open(os.devnull, "wb") as devnull:
    child = subprocess.Popen(sys.argv[1:], stdout=devnull)
    _, status, usage = os.wait4(child.pid, 0)
elapsed = time.perf_counter() - start
print(os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss)
"""


def run_measured(command: list[str]) -> tuple[int, float, int]:
    """Run `command` with stdout to /dev/null; return (exit status, seconds, peak RSS in KiB)."""
    result = subprocess.run([sys.executable, "-c", MEASURE_WRAPPER, *command],
                            capture_output=True, text=True, cwd=REPO)
    try:
        status_text, seconds, rss = result.stdout.split()
        status = int(status_text)
    except ValueError:
        status, seconds, rss = -1, "0", "0"
    if status != 0:
        print(f"  ! {command[0]} exited {status}: {result.stderr.strip()[-400:]}")
    return status, float(seconds), int(rss)


# What analyze reads of each packet: IP addresses, TTL and ID; TCP flags, sequence number
# and window; the DNS question, answers and rcode; the TLS server name.
TSHARK_FIELDS = ["frame.number", "ip.src", "ip.dst", "ip.ttl", "ip.id", "tcp.flags", "tcp.seq",
                 "tcp.window_size_value", "dns.qry.name", "dns.a", "dns.flags.rcode",
                 "tls.handshake.extensions_server_name"]


READER_ONLY = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from fingerprint.capture.reader import open_capture
with open_capture(sys.argv[1]) as capture:
    for _ in capture:
        pass
"""


def analyze_available() -> bool:
    result = subprocess.run([sys.executable, "-m", "fingerprint", "analyze", "--help"],
                            capture_output=True, cwd=REPO)
    return result.returncode == 0


def warm_up(folder: Path) -> None:
    """Put analyze in the state of any run after the first on an installed copy: its
    bytecode compiled (pip compiles a wheel's modules at install; a checkout run with
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile the changed modules every run)
    and the shipped signatures' validation remembered (the first run ever validates
    them, about 0.1 s more)."""
    import fingerprint

    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(fingerprint.__file__).parent)], check=False, cwd=REPO)
    small = folder / "warm-up.pcap"
    build_capture(small, 2_000)
    subprocess.run([sys.executable, "-m", "fingerprint", "analyze", str(small), "--json"],
                   capture_output=True, check=False, cwd=REPO)
    small.unlink()


def measure(path: Path, packets: int, with_analyze: bool) -> dict[str, float]:
    figures: dict[str, float] = {"packets": packets}
    count, seconds, cpu = read_rate(path)
    assert count == packets, f"reader yielded {count} of {packets} packets"
    figures["reader_pps"] = count / seconds
    print(f"  reader (open_capture, in-process): {count / seconds:12,.0f} packets/s "
          f"({seconds:.2f} s; {count / cpu:,.0f} packets per CPU second)")
    # The reader alone in a fresh process, for its peak RSS (flat if it streams).
    status, seconds, rss = run_measured([sys.executable, "-c", READER_ONLY, str(path)])
    if status == 0:
        figures["reader_rss_kib"] = rss
        print(f"  reader alone, fresh process:       {packets / seconds:12,.0f} packets/s "
              f"({seconds:.2f} s incl. start-up, peak RSS {rss / 1024:.0f} MiB)")
    tshark = shutil.which("tshark")
    if tshark:
        command = [tshark, "-n", "-r", str(path), "-T", "fields"]
        for field in TSHARK_FIELDS:
            command += ["-e", field]
        status, seconds, rss = run_measured(command)
        if status == 0:
            figures["tshark_pps"] = packets / seconds
            figures["tshark_rss_kib"] = rss
            print(f"  tshark -T fields:                  {packets / seconds:12,.0f} packets/s "
                  f"({seconds:.2f} s, peak RSS {rss / 1024:.0f} MiB)")
    else:
        print("  tshark: not installed")
    if with_analyze:
        command = [sys.executable, "-m", "fingerprint", "analyze", str(path), "--json"]
        status, seconds, rss = run_measured(command)
        if status == 0:
            figures["analyze_pps"] = packets / seconds
            figures["analyze_rss_kib"] = rss
            print(f"  fingerprint analyze --json:        {packets / seconds:12,.0f} packets/s "
                  f"({seconds:.2f} s, peak RSS {rss / 1024:.0f} MiB)")
            if "tshark_pps" in figures:
                ratio = figures["analyze_pps"] / figures["tshark_pps"]
                print(f"  analyze / tshark:                  {ratio:12.2f}x (target >= 2x)")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--sizes", help="comma-separated packet counts, e.g. 100000,300000,1000000")
    parser.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    parser.add_argument("--keep", type=Path, help="directory to keep the generated captures in")
    parser.add_argument("--no-analyze", action="store_true", help="reader and tshark only")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else [args.packets]
    with_analyze = not args.no_analyze and analyze_available()
    if not args.no_analyze and not with_analyze:
        print("`python -m fingerprint analyze` is not available: measuring the reader and "
              "tshark only")
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; benchmark process RSS "
          f"{own_rss / 1024:.0f} MiB")
    results = []
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if with_analyze:
            warm_up(folder)
            print("warm-up: analyze's bytecode compiled, the signature library validated once")
        for size in sizes:
            path = folder / f"bench-{size}.{args.format}"
            start = time.perf_counter()
            packets = build_capture(path, size)
            print(f"\n{packets:,} packets -> {path.name} ({path.stat().st_size / 2**20:.1f} MiB, "
                  f"generated in {time.perf_counter() - start:.1f} s)")
            results.append(measure(path, packets, with_analyze))
    if len(results) > 1:
        print("\npackets     reader pkt/s  tshark pkt/s  analyze pkt/s  reader RSS  tshark RSS"
              "  analyze RSS")
        for row in results:
            analyze_pps = f"{row['analyze_pps']:13,.0f}" if "analyze_pps" in row else " " * 13
            analyze_rss = (f"{row['analyze_rss_kib'] / 1024:8.0f} MiB"
                           if "analyze_rss_kib" in row else "")
            tshark_rss = (f"{row['tshark_rss_kib'] / 1024:6.0f} MiB"
                          if "tshark_rss_kib" in row else " " * 10)
            reader_rss = (f"{row['reader_rss_kib'] / 1024:6.0f} MiB"
                          if "reader_rss_kib" in row else " " * 10)
            print(f"{row['packets']:<10,.0f} {row['reader_pps']:13,.0f} "
                  f"{row.get('tshark_pps', 0):13,.0f} {analyze_pps}  {reader_rss}  {tshark_rss}"
                  f"  {analyze_rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

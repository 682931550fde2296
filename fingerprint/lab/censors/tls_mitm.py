"""TLS interception with an untrusted CA, when the SNI matches or (option
`intercept: address`) for every connection to the platform's addresses.

Kazakhstan 2019: SNI-triggered interception for at least 37 domains with a
fake root CA the government asked users to install (censoredplanet.org/
kazakhstan); 2023-24: interception with intermediates from the government
root for at least 14 domains (ooni.org/post/2024-kazakhstan-report).

How: iptables REDIRECTs client-side TCP connections to port 443 of the
intercepted platforms' addresses to a transparent proxy in the censor
namespace.  The proxy peeks at the ClientHello.  A matching SNI gets a handshake with a certificate forged for
that name by a CA the client does not trust (generated at `up`, not the lab
CA), and the decrypted bytes are relayed over a new TLS connection to the
real server.  Any other SNI is spliced byte for byte to the original
destination, so control handshakes see the genuine certificate.

Address-wide interception (`intercept: address`, issue 13 case 2): every TLS
connection to the intercepted addresses gets a forged certificate for the SNI
it sent, target and control names alike, while the control name still
validates on its own address.  Corporate and ISP interception boxes that
intercept by destination rather than by name do this (Durumeric et al., "The
Security Impact of HTTPS Interception", NDSS 2017: middleboxes terminating
every TLS connection they forward, with their own root).

Run as `python -m fingerprint.lab.censors.tls_mitm --config FILE`.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from fingerprint.lab import pki, topology
from fingerprint.lab._system import LabError
from fingerprint.lab.censors._wire import name_matches, tls_sni
from fingerprint.lab.censors.base import Behaviour, CensorSetup

PROXY_PORT = 8443
SO_ORIGINAL_DST = 80
PEEK_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0


class TlsMitm(Behaviour):
    name = "tls_mitm"
    techniques = ("tls.mitm",)
    title = "TLS intercepted with a certificate from an untrusted CA"
    defaults: ClassVar[dict[str, Any]] = {
        "ca_name": "Lab Interception Root CA (not trusted)",
        "ca_organization": "fingerprint lab interception",
        "intercept": "sni",
    }
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        # The 2019 root's published name (press reports of the certificate users were
        # told to install, e.g. tweakers.net 155336); the rest of its fields are not.
        "kazakhstan": {"ca_name": "Qaznet Trust Network",
                       "ca_organization": "Qaznet Trust Network (lab emulation)"},
    }

    def __init__(self, options: Mapping[str, Any], domains: tuple[str, ...],
                 addresses: tuple[str, ...]) -> None:
        super().__init__(options, domains, addresses)
        if self.options["intercept"] not in ("sni", "address"):
            raise LabError(f"{self.name}: intercept must be sni or address")

    def prepare(self, setup: CensorSetup) -> None:
        config_path = setup.state_dir / f"mitm-{len(setup.processes)}.json"
        ca_cert, ca_key = config_path.with_suffix(".ca.pem"), config_path.with_suffix(".ca.key")
        pki.write_authority(pki.new_authority(str(self.options["ca_name"]),
                                              str(self.options["ca_organization"])),
                            ca_cert, ca_key)
        port = PROXY_PORT + len(setup.processes)
        config_path.write_text(json.dumps({"domains": list(self.domains), "port": port,
                                           "intercept": self.options["intercept"],
                                           "ca_cert": str(ca_cert), "ca_key": str(ca_key)}))
        # Only the intercepted platforms' addresses go through the proxy (a control
        # SNI sent there is spliced); every other flow stays on the fast path.
        for address in self.addresses:
            setup.commands.append(["iptables", "-t", "nat", "-A", "PREROUTING", "-i",
                                   topology.CENSOR_CLIENT_LINK.right_interface, "-d", address,
                                   "-p", "tcp", "--dport", "443", "-j", "REDIRECT",
                                   "--to-ports", str(port)])
        setup.processes.append(("tls-mitm", ["fingerprint.lab.censors.tls_mitm",
                                             "--config", str(config_path)]))


def _original_destination(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


def intercepts(sni: str | None, domains: tuple[str, ...], intercept: str) -> bool:
    """Whether the proxy forges a certificate for a ClientHello with this SNI."""
    if sni is None:
        return False  # no name to forge a certificate for: spliced as it came
    return intercept == "address" or name_matches(sni, domains)


def _peek_client_hello(sock: socket.socket) -> bytes:
    deadline = time.monotonic() + PEEK_TIMEOUT
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(16384, socket.MSG_PEEK)
        except TimeoutError:
            break
        if not data:
            break
        if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
            break
        time.sleep(0.01)
    sock.settimeout(None)
    return data


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes or the pair goes idle."""
    pair = {a: b, b: a}
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [], IDLE_TIMEOUT)
            if not readable:
                return
            for source in readable:
                chunks = [source.recv(65536)]
                while isinstance(source, ssl.SSLSocket) and source.pending():
                    chunks.append(source.recv(65536))
                data = b"".join(chunks)
                if not data:
                    return
                pair[source].sendall(data)
    except (OSError, ssl.SSLError):
        return
    finally:
        for sock in (a, b):
            sock.close()


class Proxy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.domains = tuple(config["domains"])
        self.intercept = str(config.get("intercept", "sni"))
        self.port = int(config["port"])
        self.authority = pki.load_authority(Path(config["ca_cert"]), Path(config["ca_key"]))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._workdir = tempfile.TemporaryDirectory(prefix="fp-mitm-")

    def forged_context(self, name: str) -> ssl.SSLContext:
        with self._lock:
            if name not in self._contexts:
                chain, key = pki.issue(self.authority, [name])
                cert_path = Path(self._workdir.name) / f"{len(self._contexts)}.pem"
                cert_path.write_bytes(chain + key)
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(str(cert_path))
                self._contexts[name] = context
            return self._contexts[name]

    def handle(self, client: socket.socket) -> None:
        try:
            destination = _original_destination(client)
            sni = tls_sni(_peek_client_hello(client))
            if sni is not None and intercepts(sni, self.domains, self.intercept):
                tls_client = self.forged_context(sni).wrap_socket(client, server_side=True)
                upstream_context = ssl.create_default_context()
                upstream_context.check_hostname = False
                upstream_context.verify_mode = ssl.CERT_NONE
                upstream = upstream_context.wrap_socket(
                    socket.create_connection(destination, timeout=10), server_hostname=sni)
                upstream.settimeout(None)
                _relay(tls_client, upstream)
            else:
                _relay(client, socket.create_connection(destination, timeout=10))
        except (OSError, ssl.SSLError):
            client.close()

    def serve(self, ready_file: str | None) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", self.port))  # noqa: S104 - inside the censor namespace only
        listener.listen(128)
        if ready_file:
            Path(ready_file).touch()
        while True:
            client, _ = listener.accept()
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="fingerprint lab TLS interception proxy")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    Proxy(json.loads(Path(args.config).read_text())).serve(args.ready_file)


if __name__ == "__main__":
    main()

"""The lab's resolvers.

The ordinary resolver answers plain DNS (UDP and TCP port 53) for the lab
catalog's names, `--delay-ms` late: a real recursive resolver answers after a
round trip upstream, which is why an on-path injector's forged answer arrives
first in real networks.  The control resolver answers the same data over DoT
(RFC 7858, port 853) and DoH (RFC 8484, port 443, /dns-query) with a
certificate from the lab CA; a censor cannot read or forge those answers.

A name is answered when it equals a zone name or is a subdomain of one (A
records; AAAA gets an empty NOERROR answer, the lab is IPv4 only); any other
name gets NXDOMAIN.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import urllib.parse
from pathlib import Path
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fingerprint.lab.services import _http
from fingerprint.lab.services._service import ready_and_wait

ANSWER_TTL = 300


class Zone:
    def __init__(self, names: dict[str, list[str]]) -> None:
        self._names = {name.lower().rstrip("."): addrs for name, addrs in names.items()}

    def lookup(self, qname: str) -> list[str] | None:
        """The addresses for `qname`, or None when the name does not exist."""
        labels = qname.lower().rstrip(".").split(".")
        for i in range(len(labels)):
            found = self._names.get(".".join(labels[i:]))
            if found is not None:
                return found
        return None


def answer(zone: Zone, wire: bytes) -> bytes | None:
    """The response to a query in wire format; None for what is not a query."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    if query.flags & dns.flags.QR or len(query.question) != 1:
        return None
    reply = dns.message.make_response(query, recursion_available=True)
    question = query.question[0]
    addresses = zone.lookup(question.name.to_text())
    if addresses is None:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
        reply.answer.append(dns.rrset.from_text_list(question.name, ANSWER_TTL, "IN", "A",
                                                     addresses))
    return reply.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone, delay: float) -> None:
        self.zone, self.delay = zone, delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport is not a registered DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = answer(self.zone, data)
        if reply is not None and self.transport is not None:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply, addr)


def _stream_handler(zone: Zone) -> _http.Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 20), "big")
                reply = answer(zone, await asyncio.wait_for(reader.readexactly(size), 20))
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return handle


def _doh_handler(zone: Zone) -> _http.Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _http.read_request(reader, 20)
            if request is None:
                return
            path, _, query = request.target.partition("?")
            wire: bytes | None = None
            if path == "/dns-query" and request.method == "POST":
                wire = request.body
            elif path == "/dns-query" and request.method == "GET":
                param = urllib.parse.parse_qs(query).get("dns", [""])[0]
                wire = base64.urlsafe_b64decode(param + "=" * (-len(param) % 4))
            reply = answer(zone, wire) if wire else None
            if reply is None:
                writer.write(_http.response(400, "Bad Request", b"not a DNS query\n"))
            else:
                writer.write(_http.response(200, "OK", reply, "application/dns-message"))
            await writer.drain()
        except (ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()
    return handle


async def serve(args: argparse.Namespace) -> None:
    zone = Zone(json.loads(Path(args.zone).read_text())["names"])
    loop = asyncio.get_running_loop()
    servers: list[asyncio.base_events.Server] = []
    for address in args.udp:
        await loop.create_datagram_endpoint(lambda: _Udp(zone, args.delay_ms / 1000),
                                            local_addr=(address, 53))
        servers.append(await asyncio.start_server(_stream_handler(zone), address, 53))
    if args.dot or args.doh:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
        for address in args.dot:
            servers.append(await asyncio.start_server(_stream_handler(zone), address, 853,
                                                      ssl=tls, ssl_handshake_timeout=10))
        for address in args.doh:
            servers.append(await asyncio.start_server(_doh_handler(zone), address, 443,
                                                      ssl=tls, ssl_handshake_timeout=10))
    await ready_and_wait(args.ready_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zone", required=True, help='JSON {"names": {name: [address]}}')
    parser.add_argument("--udp", action="append", default=[], help="plain DNS address")
    parser.add_argument("--dot", action="append", default=[], help="DoT address (port 853)")
    parser.add_argument("--doh", action="append", default=[], help="DoH address (port 443)")
    parser.add_argument("--cert", help="PEM chain for DoT/DoH")
    parser.add_argument("--key", help="PEM key for DoT/DoH")
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--ready-file")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

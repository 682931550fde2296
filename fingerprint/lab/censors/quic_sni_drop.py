"""QUIC SNI drop: a client Initial whose ClientHello names a blocked domain is dropped,
and so is every later datagram from that client to that server and port, whatever
the source port, for `residual_seconds`.

The Great Firewall since 2024-04-07 (Zohaib et al., "Exposing and Circumventing
SNI-based QUIC Censorship of the Great Firewall of China", USENIX Security
2025; gfw-report/usenixsecurity25-quic-sni experiments): it decrypts the
client's Initial with the keys the public DCID gives (RFC 9001 section 5),
reads the SNI, and drops the (client address, server address, server port)
three-tuple for 180 s; nothing is injected.  The engine decrypts with
`fingerprint.protocols.quic_initial`, so QUIC v1 and v2 Initials are both read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, CensorContext, Verdict

if TYPE_CHECKING:
    from fingerprint.protocols.tls import ClientHello


class QuicSniDrop(Behaviour):
    name = "quic_sni_drop"
    techniques = ("quic.sni_drop",)
    title = "QUIC Initial with the platform's SNI dropped, then the 3-tuple for 180 s"
    queues = frozenset({"quic"})
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.residual_seconds:
            self.residual_seconds = 180.0  # the GFW's, unless the scenario says otherwise

    def on_quic(self, ctx: CensorContext, packet: Packet, hello: ClientHello) -> Verdict | None:
        if hello.sni is None or not self.matches_name(hello.sni):
            return None
        return Verdict(drop=True)

"""What a censor behaviour is, and what the engine offers it (`CensorContext`).

A behaviour is configured by a scenario rule (options plus the domains and
addresses of the platforms it applies to).  It can

* add commands run in the censor namespace at `up` (iptables rules, tc) and
  helper processes (`prepare`), and
* decide about packets the engine queues from the client side: DNS queries
  (`on_dns`), the first data segment of a TLS flow carrying an SNI (`on_tls`),
  an HTTP request carrying a Host (`on_http`), a TCP SYN (`on_syn`).  Returning a Verdict means the
  behaviour fired; None lets the packet on to the next behaviour.

A behaviour acts only through the `CensorContext` it is handed (send a packet,
drop the rest of a flow, do something later), never on sockets or timers of
its own: the engine is the real context, and the unit tests hand it a fake
one that records what the behaviour did, so each behaviour is tested on
crafted packets without root.

Residual blocking (any behaviour, options `residual_seconds`,
`residual_action` drop|reset, `residual_scope` 3-tuple|client) is applied by
the engine after a behaviour fired: the GFW blocks (client, server, port) for
about 90 s (Wang et al., IMC 2017 §2.1; Rambert et al., WWW 2021), simpler
censors flag the client's whole address.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from fingerprint.lab._system import LabError
from fingerprint.lab.censors._wire import Flow, Packet, name_matches

if TYPE_CHECKING:
    import dns.message

    from fingerprint.protocols.tls import ClientHello

FLOW_DROP_SECONDS = 300.0
"""How long a dropped flow stays dropped unless the behaviour says otherwise."""

RESIDUAL_OPTIONS = frozenset({"residual_seconds", "residual_action", "residual_scope"})


class CensorContext(Protocol):
    """What a behaviour may do beyond its verdict on the queued packet."""

    def send(self, direction: str, ip_packet: Any) -> None:
        """Put a scapy IP packet on the wire towards "client" or "server"."""

    def drop_flow(self, flow: Flow, seconds: float = FLOW_DROP_SECONDS) -> None:
        """Drop every later queued packet of `flow` for `seconds`."""

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay` seconds (a slow injector, a delayed answer)."""

FieldSpec = int | str | list[int]
"""An injected header field: a fixed value, "random", "copy" (TTL only: the
trigger's TTL as the censor saw it), or a list cycled per injected packet."""

_RANGES = {"ttl": (32, 255), "ip_id": (1, 65535), "window": (1, 65535)}


def pick(spec: FieldSpec, field_name: str, index: int = 0, copied: int | None = None) -> int:
    """The value of one injected field."""
    if isinstance(spec, bool):
        raise LabError(f"{field_name}: expected a number, 'random' or a list, got {spec!r}")
    if isinstance(spec, int):
        return spec
    if isinstance(spec, list) and spec:
        return int(spec[index % len(spec)])
    if spec == "random":
        low, high = _RANGES.get(field_name, (0, 65535))
        return random.randint(low, high)
    if spec == "copy" and copied is not None:
        return copied
    raise LabError(f"{field_name}: unsupported value {spec!r}")


@dataclass
class Verdict:
    """What happens to the queued packet, and what to do once it is decided."""

    drop: bool = False
    mark: int = 0
    then: list[Callable[[], None]] = field(default_factory=list)
    residual_after: float = 0.0
    """Seconds after the trigger the rule's residual block begins: a slow injector
    blocks from when it acts, not from when the trigger passed."""


@dataclass
class CensorSetup:
    """Filled in by `prepare` at `up`; applied in the censor namespace."""

    state_dir: Path
    commands: list[list[str]] = field(default_factory=list)
    processes: list[tuple[str, list[str]]] = field(default_factory=list)
    """(name, argument list after `python -m`), started in the censor namespace."""
    done: set[str] = field(default_factory=set)
    """Keys of shared setup already added (two rules needing the same tc tree)."""

    def once(self, key: str, commands: list[list[str]]) -> None:
        if key not in self.done:
            self.done.add(key)
            self.commands.extend(commands)


class Behaviour:
    name: ClassVar[str]
    techniques: ClassVar[tuple[str, ...]]
    """What the probe should report for a platform this behaviour blocks."""
    title: ClassVar[str]
    queues: ClassVar[frozenset[str]] = frozenset()
    """Which client-side traffic the engine must queue: "dns", "tls", "http", "syn", "hello"
    (TCP/443 segments, ClientHellos reassembled), "quic" (UDP/443)."""
    defaults: ClassVar[Mapping[str, Any]] = {}
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, options: Mapping[str, Any], domains: tuple[str, ...],
                 addresses: tuple[str, ...]) -> None:
        merged = dict(self.defaults)
        options = dict(options)
        profile = options.pop("profile", None)
        if profile is not None:
            if profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none"
                raise LabError(f"{self.name}: unknown profile {profile!r} (known: {known})")
            merged.update(self.profiles[profile])
        unknown = sorted(set(options) - set(merged) - RESIDUAL_OPTIONS)
        if unknown:
            raise LabError(f"{self.name}: unknown option {unknown[0]!r}")
        merged.update(options)
        self.options = merged
        self.profile = profile
        self.domains = tuple(d.lower() for d in domains)
        self.addresses = addresses
        self.residual_seconds = float(options.get("residual_seconds", 0))
        self.residual_action = str(options.get("residual_action", "drop"))
        if self.residual_action not in ("drop", "reset"):
            raise LabError(f"{self.name}: residual_action must be drop or reset")
        self.residual_scope = str(options.get("residual_scope", "3-tuple"))
        if self.residual_scope not in ("3-tuple", "client"):
            raise LabError(f"{self.name}: residual_scope must be 3-tuple or client")

    def queued(self) -> frozenset[str]:
        """The traffic the engine must queue for this rule: the behaviour's own, plus
        every TCP connection of the web ports when a residual block covers the whole
        client (its later connections to any server must reach the engine)."""
        if self.residual_seconds > 0 and self.residual_scope == "client":
            return self.queues | {"tls", "http"}
        return self.queues

    def matches_name(self, name: str) -> bool:
        return name_matches(name, self.domains)

    def prepare(self, setup: CensorSetup) -> None:
        """Add iptables/tc commands and helper processes (default: none)."""

    def on_dns(self, ctx: CensorContext, packet: Packet, query: dns.message.Message
               ) -> Verdict | None:
        return None

    def on_tls(self, ctx: CensorContext, packet: Packet, sni: str) -> Verdict | None:
        return None

    def on_http(self, ctx: CensorContext, packet: Packet, host: str) -> Verdict | None:
        return None

    def on_syn(self, ctx: CensorContext, packet: Packet) -> Verdict | None:
        return None

    def on_hello(self, ctx: CensorContext, packet: Packet, hello: ClientHello) -> Verdict | None:
        """A whole ClientHello over TCP, reassembled from segments and records ("hello" queue,
        offered on the segment that completes it)."""
        return None

    def on_quic(self, ctx: CensorContext, packet: Packet, hello: ClientHello) -> Verdict | None:
        """A client Initial datagram whose ClientHello decrypted ("quic" queue)."""
        return None

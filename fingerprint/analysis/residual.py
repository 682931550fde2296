"""Residual blocking: the client punished for a while after an injected answer to a trigger.

Censors keep blocking a client after a trigger: the GFW resets, or answers with
forged SYN-ACKs, every new connection of the same (client, server, port) for
about 90 s (Wang et al., 'Your State is Not Mine', IMC 2017, sec. 2.1); simpler
censors flag the client's whole address.  Connections that fail during that
time prove nothing about their own target or control, so the rules read the
order of events: the trigger's technique stands, and the residual block is
stated with its scope and duration (issue 13 case 3).

A block lets nothing through: a failure counts as the block's only when no
connection in its scope worked between the injection and that failure, and a
connection that already failed before any trigger (a control blocked for its own
sake) is no block's evidence.  The block is in force from the censor's reaction
(its first injected packet), not from the trigger: a slow injector (a monitor off
the fast path) lets connections begun in between through (Wang et al., IMC 2017
sec. 2), and they say nothing against the block.

Every ClientHello with a target name that drew injected packets is a trigger,
ECH ones (the outer SNI; `index.ECH_KIND`) included: a censor keyed on the SNI
reacts to the outer one and renews its block from that later trigger.  A QUIC
Initial draws no injected packet, so it marks no censor reaction in TCP terms;
the QUIC residual block of the three-tuple is read from its later datagrams
(`rules.quic`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fingerprint.analysis.index import ECH_KIND, ObservationIndex
from fingerprint.analysis.observe import TcpFlow
from fingerprint.analysis.outcome import FAILED, WORKING, Outcome

CLIENT = None
"""The key of a block of the client's whole address in `ObservationIndex.residuals`."""


@dataclass(slots=True)
class Residual:
    """Blocking of the client that followed an injected answer to a trigger."""

    start: float
    """Time of the first trigger that drew injected packets."""
    server: str
    port: int
    trigger: str
    """The name whose trigger drew them."""
    scope: str
    """"3-tuple" (later connections to the same address and port failed) or "client"
    (connections to other addresses, reachable before, failed too)."""
    last_failure: float
    recovered: float | None
    """Time of the first connection in scope that worked again after the last failure."""
    failed_at: set[tuple[str, int]] = field(default_factory=set)
    """Addresses and ports where connections failed during the block."""

    def covers(self, server: str, port: int) -> bool:
        return self.scope == "client" or (server, port) == (self.server, self.port)

    def is_trigger(self, name: str, server: str, port: int) -> bool:
        return (name, server, port) == (self.trigger, self.server, self.port)

    @property
    def seconds(self) -> float:
        """The block's measured duration: from the trigger to the last failure in scope."""
        return round(self.last_failure - self.start, 1)

    def describe(self) -> str:
        where = (f"every later connection to {self.server}:{self.port}" if self.scope == "3-tuple"
                 else "later connections from the client to other addresses too")
        text = (f"residual blocking after the trigger {self.trigger} at {self.server}:{self.port}: "
                f"{where} failed for at least {self.last_failure - self.start:.1f} s")
        if self.recovered is not None:
            text += f"; a connection {self.recovered - self.start:.1f} s after the trigger worked again"
        return text


def start_of(flow: TcpFlow) -> float:
    return flow.syn.ts if flow.syn is not None else flow.first_ts


def residual(index: ObservationIndex, server: str, port: int) -> Residual | None:
    """The residual block in force on `server:port` after an injected answer to a trigger,
    if later connections show one: the client's whole address (after the first
    injection, connections to addresses that worked before failed), else the
    3-tuple's (after the first injection on that address and port, later
    connections to it failed).  Computed once per index, from the order of events."""
    if index.residuals is None:
        index.residuals = find_residuals(index)
    client = index.residuals.get(CLIENT)
    return client if client is not None else index.residuals.get((server, port))


def find_residuals(index: ObservationIndex) -> dict[tuple[str, int] | None, Residual]:
    injections: list[tuple[float, str, int, str]] = []
    """(trigger time, server, port, name) of every target trigger that drew injected packets."""
    reacted: dict[float, float] = {}
    """Trigger time -> time of the censor's first injected packet for it."""
    worked: list[tuple[float, str, int]] = []
    """(start, server, port) of every full-TTL connection that worked, targets included."""
    timeline: list[tuple[float, str, int, bool, tuple[str, int, str, str]]] = []
    """(start, server, port, worked, group) of every full-TTL connection that is not a target's."""
    for (server, port, kind, name), group in index.tcp_groups.items():
        target = (bool(name) and kind in ("tls", "http", ECH_KIND)
                  and not index.catalog.is_control_name(name))
        flows = list(group)
        top = max((f.syn.ttl for f in flows if f.syn is not None), default=0)
        for flow in flows:
            if flow.syn is not None and flow.syn.ttl < top:
                continue
            if flow.trigger is not None and flow.syn is not None and flow.trigger.ttl < flow.syn.ttl:
                continue
            outcome = index.outcome(flow)
            if outcome.kind in (Outcome.PENDING, Outcome.TIME_EXCEEDED):
                continue
            if outcome.kind in WORKING and not outcome.injected:
                worked.append((start_of(flow), server, port))
            if target:
                if outcome.kind in FAILED and outcome.injected and flow.trigger is not None:
                    injections.append((flow.trigger.ts, server, port, name))
                    reaction = min(e.packet.ts for e in outcome.injected)
                    ts = flow.trigger.ts
                    reacted[ts] = min(reacted.get(ts, reaction), max(ts, reaction))
                continue
            failed = (outcome.kind.is_connect_failure or outcome.kind in FAILED
                      or flow.synack_conflicts > 0)
            timeline.append((start_of(flow), server, port, not failed, (server, port, kind, name)))
    found: dict[tuple[str, int] | None, Residual] = {}
    if not injections:
        return found
    injections.sort()
    timeline.sort()
    # A connection that failed before any trigger fails on its own (e.g. a control
    # blocked for its own sake): its later failures are no residual block's.
    failing_anyway = {g for t, _s, _p, ok, g in timeline if not ok and t < injections[0][0]}
    first_injection: dict[tuple[str, int], tuple[float, str]] = {}
    for t, s, p, n in injections:
        first_injection.setdefault((s, p), (t, n))

    def blocked(t: float, in_scope: Callable[[str, int], bool]) -> bool:
        """Whether a failure at `t` falls in a block: after a trigger in scope that drew
        an injection, with no connection in scope working between the censor's reaction
        and `t` (a block lets nothing through; before the reaction it was not in force)."""
        since = [reacted[ti] for ti, s, p, _n in injections if ti < t and in_scope(s, p)]
        if not since:
            return False
        return not any(max(since) < tj < t and in_scope(s, p) for tj, s, p in worked)

    def block(start: float, server: str, port: int, trigger: str, scope: str,
              failures: list[tuple[float, str, int]]) -> Residual:
        last = max(t for t, _s, _p in failures)
        recovered = next((t for t, s, p, ok, _g in timeline if ok and t > last
                          and (scope == "client" or (s, p) == (server, port))), None)
        return Residual(start, server, port, trigger, scope, last, recovered,
                        {(s, p) for _t, s, p in failures})

    for (server, port), (start, trigger) in first_injection.items():
        def here(s: str, p: int, server: str = server, port: int = port) -> bool:
            return (s, p) == (server, port)
        same = [(t, s, p) for t, s, p, ok, g in timeline
                if not ok and t > start and here(s, p) and g not in failing_anyway
                and blocked(t, here)]
        if same:
            found[(server, port)] = block(start, server, port, trigger, "3-tuple", same)
    start, server, port, trigger = injections[0]
    reachable_before = {(s, p) for t, s, p, ok, _g in timeline if ok and t < start}
    # A failure on another address after a trigger of its own is that address's own
    # residual block (per 3-tuple), not the client's.
    others = [(t, s, p) for t, s, p, ok, g in timeline
              if not ok and t > start and (s, p) != (server, port) and (s, p) in reachable_before
              and g not in failing_anyway and blocked(t, lambda _s, _p: True)
              and not first_injection.get((s, p), (t, ""))[0] < t]
    if others:
        same = [(t, s, p) for t, s, p, ok, g in timeline
                if not ok and t > start and (s, p) == (server, port) and g not in failing_anyway]
        found[CLIENT] = block(start, server, port, trigger, "client", same + others)
    return found

"""Where on the path a censor acts, from TTL-limited repeats of the trigger.

Each repeat of the triggering packet (DNS query, ClientHello, HTTP request,
SYN) sent with IP TTL k either expires at hop k (ICMP time exceeded from that
router), draws the censor's reaction (an injected answer, or silence where the
control at the same TTL still gets further), or reaches the server.  The
censor's hop is the smallest TTL at which its reaction shows; the router is the
last one that answered before it.  This follows CenTrace (Sundara Raman et al.,
CoNEXT 2022) and OONI's tlsmiddlebox.

An injector that copies the trigger's IP TTL into its answer (the GFW's
"Triplet" injector, FOCI 2020) breaks that rule: a trigger sent with TTL k
reaches the censor at hop h with TTL k-(h-1), the answer leaves with that TTL
and crosses the same h-1 routers back, so it arrives with r = k-2(h-1) and
survives only when k >= 2h-1.  The first TTL that shows the answer is then
2h-1, not h; the hop comes from the constant k - r instead: h = (k-r)/2 + 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fingerprint.model import Mode


class Seen(StrEnum):
    """What came back for one TTL-limited repeat of the trigger."""

    ANOMALY = "anomaly"
    """The censor's reaction (an injected answer, a forged packet)."""
    TIME_EXCEEDED = "time_exceeded"
    """ICMP/ICMPv6 time exceeded from a router, nothing else."""
    RESPONSE = "response"
    """The genuine answer."""
    SILENCE = "silence"


@dataclass(slots=True)
class SeriesPoint:
    ttl: int
    outcome: Seen
    router: str | None = None
    """Source of an ICMP time exceeded for this repeat."""
    went_further: bool = False
    """Evidence the trigger itself travelled on past this point (ICMP from a router, genuine answer)."""
    response_ttl: int | None = None
    """IP TTL of the injected response, to detect TTL copying."""


@dataclass(slots=True)
class Location:
    hop: int | None
    router: str | None
    mode: Mode
    ttl_copying: bool | None
    basis: str
    endpoint: bool = False
    """The block came from the server's end (the server or a firewall beside it)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode.value}
        if self.hop is not None:
            out["hop"] = self.hop
        if self.router is not None:
            out["router"] = self.router
        if self.ttl_copying is not None:
            out["ttl_copying"] = self.ttl_copying
        out["basis"] = self.basis
        if self.endpoint:
            out["endpoint"] = True  # added key: the block is at the endpoint, not on the path
        return out


def _routers(points: list[SeriesPoint]) -> dict[int, str]:
    routers: dict[int, str] = {}
    for p in sorted(points, key=lambda p: p.ttl):
        if p.router is not None:
            routers.setdefault(p.ttl, p.router)
    return routers


def locate(target: list[SeriesPoint], control: list[SeriesPoint], kind: str) -> Location | None:
    """`kind` is "inject" (the censor answers) or "drop" (the censor swallows)."""
    if not target:
        return None
    routers = _routers(target + control)
    if kind == "inject":
        anomalies = sorted(p.ttl for p in target if p.outcome is Seen.ANOMALY)
        if not anomalies:
            return None
        # The first TTL from which the reaction shows in most of the higher repeats.
        hop = anomalies[0]
        for candidate in anomalies:
            above = [p for p in target if p.ttl >= candidate]
            if sum(p.outcome is Seen.ANOMALY for p in above) * 2 >= len(above):
                hop = candidate
                break
        first_seen = hop
        copying = _ttl_copying([p for p in target if p.outcome is Seen.ANOMALY and p.response_ttl])
        mirrored = _mirrored_hop(target) if copying else None
        if mirrored is not None and mirrored <= first_seen:
            hop = mirrored
        router = _before(routers, hop)
        beyond = [p for p in target if p.ttl >= first_seen and p.went_further]
        mode = Mode.ON_PATH if beyond else Mode.UNKNOWN
        if hop != first_seen:
            basis = (f"injected response first seen with trigger TTL {first_seen}; its IP TTL "
                     f"copies the trigger's (arrival TTL = trigger TTL - {2 * (hop - 1)}), so the "
                     f"injector sits at hop {hop}")
        else:
            basis = f"injected response first seen with trigger TTL {hop}"
        basis += ((f"; last router before it {router}" if router else "")
                  + ("; the trigger also travelled past the censor" if beyond else ""))
        return Location(hop, router, mode, copying, basis)
    # Drop: the trigger stops getting ICMP answers where the control still does.
    answered = sorted(p.ttl for p in target if p.outcome in (Seen.TIME_EXCEEDED, Seen.RESPONSE))
    silent = sorted(p.ttl for p in target if p.outcome is Seen.SILENCE)
    if not silent:
        return None
    last_answer = max((t for t in answered if t < silent[0]), default=None)
    hop = (last_answer + 1) if last_answer is not None else silent[0]
    control_past = [p for p in control if p.ttl >= hop and p.outcome in (Seen.TIME_EXCEEDED, Seen.RESPONSE)]
    router = _before(routers, hop)
    mode = Mode.IN_PATH if control_past or answered else Mode.UNKNOWN
    basis = (f"trigger silent from TTL {hop}"
             + (f"; router at TTL {hop - 1}: {router}" if router else "")
             + ("; control packets with the same TTL travel further" if control_past else ""))
    return Location(hop, router, mode, None, basis)


def _before(routers: dict[int, str], hop: int) -> str | None:
    earlier = [t for t in routers if t < hop]
    return routers[max(earlier)] if earlier else None


def _copy_delta(points: list[SeriesPoint]) -> tuple[int, int] | None:
    """The most common trigger TTL minus answer TTL, and over how many trigger TTLs it holds."""
    pairs = {(p.ttl, p.response_ttl) for p in points
             if p.outcome is Seen.ANOMALY and p.response_ttl is not None}
    if not pairs:
        return None
    delta, count = Counter(t - r for t, r in pairs).most_common(1)[0]
    return delta, count


def _ttl_copying(points: list[SeriesPoint]) -> bool | None:
    """An injector that copies the probe's TTL answers with a TTL that tracks the trigger's.

    Most (two thirds) of the anomalies, over at least two trigger TTLs, share one
    trigger-minus-answer difference: one stray pairing (a genuine answer taken
    for the injected one, a lost repeat) does not hide the copying.
    """
    pairs = {(p.ttl, p.response_ttl) for p in points if p.response_ttl is not None}
    if len({t for t, _r in pairs}) < 2:
        return None
    found = _copy_delta(points)
    if found is None:
        return None
    _delta, count = found
    return count >= 2 and count * 3 >= len(pairs) * 2 and len({r for _t, r in pairs}) > 1


def _mirrored_hop(points: list[SeriesPoint]) -> int | None:
    """The hop of a TTL-copying injector: h = (k - r)/2 + 1 (module docstring)."""
    found = _copy_delta(points)
    if found is None or found[0] < 0:
        return None
    # An odd difference means the injector changed the TTL by one more (e.g. it
    # decremented it first, as a router would); the lower hop is the one it is at.
    return found[0] // 2 + 1

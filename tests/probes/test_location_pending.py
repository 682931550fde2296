"""Which findings the probe localises with TTL-limited repeats after the sweep."""

from __future__ import annotations

from typing import Any, cast

from fingerprint.analysis.findings import Finding, Verdicts
from fingerprint.model import Technique
from fingerprint.probes.sweep import ProbeConfig, _location_pending


class _Config:
    localise = True


def test_a_suppressed_closed_port_reset_is_localised_too() -> None:
    """A firewall's REJECT looks like a closed port's RST: only TTL-limited SYNs tell them
    apart, so the suppressed ip.reset is localised as a finding is."""
    reset = Finding("signal", "203.0.113.20", Technique.IP_RESET, 0.9, "203.0.113.20",
                    signatures=["fp-linux-closed-port-rst"])
    redirect = Finding("twitter", "twitter.com", Technique.HTTP_BLOCKPAGE, 0.9, "203.0.113.10")
    verdicts = Verdicts(suppressed=[reset, redirect])
    config = cast(ProbeConfig, cast(Any, _Config()))
    assert _location_pending(verdicts, config) == {"signal": [reset]}

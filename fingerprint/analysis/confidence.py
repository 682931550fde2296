"""Every confidence value a rule gives a finding, with the reason for each.

A rule starts from `WITH_CONTROL` or `NO_CONTROL` and adds the adjustments that
apply; the result is capped at `CEILING` (no packet capture proves censorship
beyond doubt) and rounded to two digits.  Signatures add their own confidence
separately (`Finding.signature_confidence`).
"""

from __future__ import annotations

WITH_CONTROL = 0.9
"""The control on the same resolver or address worked: the target's failure is not an outage.
(For tls.mitm of a whole address, a control name whose certificate validates on its own
control address is that control: it proves the trust anchors are fine.)"""
NO_CONTROL = 0.6
"""No control in the capture: the failure may still be an outage or a broken server."""
CEILING = 0.99
"""The highest confidence a rule gives."""

REPEATED_FAILURE = 0.03
"""Two or more attempts failed the same way: not a single lost packet."""
INJECTED_PACKETS = 0.05
"""A closing or data packet differs from the server's own (TTL, IP ID, window): forged."""
RACING_DNS_ANSWERS = 0.05
"""Several different answers to one query: an on-path injector raced the resolver."""
BOGON_ANSWER = 0.05
"""A private/reserved address in the answer: no public name resolves there."""
DNS_DROP_OTHER_NAMES = 0.6
"""Queries unanswered, no control name asked of the same resolver, but other names it was
asked in the capture answered (a browser's capture): the resolver was alive.  With no
answered name at all no drop is claimed (a dead resolver looks the same)."""
CONTROL_UNANSWERED = -0.2
"""An error or empty answer while the control names got no answer either."""
UNPROVEN_REDIRECT = -0.1
"""An answer address with no certificate to check it: a candidate only a signature
(a known blockpage or sinkhole address) promotes."""
CONTROL_FAILED_OTHERWISE = WITH_CONTROL - 0.1
"""At most this when the control failed too, but not as the target did (nothing
injected in it) while other names on the address worked: the control met a block of its
own, yet without a working control the target's failure is less certain."""
REDIRECT_AWAY = -0.1
"""An HTTP redirect to another site: sites redirect for their own reasons too."""
ENDPOINT_REFUSAL = -0.1
"""The server itself refused the Host (nothing forged on the path): a site may refuse
a Host for reasons of its own (a misconfiguration, a geo-block of its own)."""

QUIC_TCP_CONTROL = 0.8
"""QUIC Initials unanswered whatever the SNI while TCP/443 to the same address answered:
the address is up, but the control is another transport (a server may run no QUIC)."""


def base(with_control: bool | None) -> float:
    """The starting confidence: with a working control, or without one."""
    return WITH_CONTROL if with_control else NO_CONTROL


def capped(value: float) -> float:
    return round(min(value, CEILING), 2)

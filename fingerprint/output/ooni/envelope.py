"""The measurement envelope: df-000's top-level keys, the run id and the annotations.

Test name and versions, the template extensions, OONI's time format, the report id
in the collector's form, what the user shares about the vantage point (`ProbeInfo`,
with OONI's privacy defaults) and the annotations every client adds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import platform as host_platform
import secrets
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fingerprint import __version__
from fingerprint.errors import FingerprintError

__all__ = [
    "DATA_FORMAT_VERSION",
    "DEFAULT_PROBE_IP",
    "DEFAULT_RESOLVER_IP",
    "EXTENSIONS",
    "MEASUREMENT_SCHEMA",
    "TEST_NAME",
    "TEST_VERSION",
    "MeasurementError",
    "ProbeInfo",
    "capture_vantage",
    "engine_annotations",
    "new_run_id",
    "normalize_asn",
    "normalize_cc",
    "ooni_time",
]

TEST_NAME = "fingerprint"
TEST_VERSION = "0.1.0"
"""Version of this measurement's layout (test_keys and x_fingerprint), not of the software."""
DATA_FORMAT_VERSION = "0.2.0"
"""The version OONI Probe writes and OONI's collector accepts (the spec's README lists later
numbers for the top-level `resolver_*` keys, which OONI Probe emits under 0.2.0 all the same)."""
EXTENSIONS = {"dnst": 0, "httpt": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0}
"""Template data formats (and versions) used in `test_keys`, as OONI Probe declares them."""
MEASUREMENT_SCHEMA = "fingerprint.measurement/1"
DEFAULT_PROBE_IP = "127.0.0.1"
DEFAULT_RESOLVER_IP = "127.0.0.2"
"""What OONI Probe records when the resolver's address is unknown."""

_OONI_TIME = "%Y-%m-%d %H:%M:%S"


class MeasurementError(FingerprintError):
    """A value given for the measurement envelope is not usable."""


def ooni_time(ts: float) -> str:
    """UTC "YYYY-MM-DD hh:mm:ss", the envelope's time format."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(_OONI_TIME)


_REPORT_ID_CHARS = string.ascii_letters + string.digits


def new_run_id(start: float, cc: str = "ZZ", asn: str = "AS0") -> str:
    """Identifies one run (one probe / analyze invocation) across its measurements.

    OONI's form (the collector's, e.g. `20240214T090617Z_webconnectivity_IT_30722_n1_...`):
    start time, test name, country, network number, `n1`, 16 random letters and digits.
    Consumers read the vantage point from it (report file names, Explorer links).
    """
    stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    number = normalize_asn(asn).removeprefix("AS")
    tail = "".join(secrets.choice(_REPORT_ID_CHARS) for _ in range(16))
    return f"{stamp}_{TEST_NAME}_{normalize_cc(cc)}_{number}_n1_{tail}"


@dataclass(slots=True)
class ProbeInfo:
    """Envelope facts about the vantage point that the user chooses to share.

    Defaults follow OONI's privacy defaults: AS0, ZZ and 127.0.0.1 mean "not
    shared".  `share_ip` keeps the real client address in evidence packets.
    """

    asn: str = "AS0"
    cc: str = "ZZ"
    ip: str = DEFAULT_PROBE_IP
    resolver_ip: str | None = None
    share_ip: bool = False
    annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.asn = normalize_asn(self.asn)
        self.cc = normalize_cc(self.cc)
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise MeasurementError(f"probe IP {self.ip!r} is not an IP address") from None
        if self.resolver_ip is not None:
            try:
                ipaddress.ip_address(self.resolver_ip)
            except ValueError:
                raise MeasurementError(
                    f"resolver IP {self.resolver_ip!r} is not an IP address") from None
        for key, value in self.annotations.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise MeasurementError("annotations map strings to strings")


def capture_vantage(probe: ProbeInfo, notes: Mapping[str, Any]) -> tuple[str, str]:
    """(probe_asn, probe_cc) for the envelope.

    What the user gave wins; a value left at OONI's "not shared" default (AS0,
    ZZ) is taken from the capture's notes, where a probe or lab run records the
    vantage point it measured from (`CaptureHints.raw`).  A note that is not a
    valid ASN or country code is ignored.
    """
    asn, cc = probe.asn, probe.cc
    if asn == "AS0" and isinstance(notes.get("probe_asn"), str | int):
        try:
            asn = normalize_asn(str(notes["probe_asn"]))
        except MeasurementError:
            pass
    if cc == "ZZ" and isinstance(notes.get("probe_cc"), str):
        try:
            cc = normalize_cc(notes["probe_cc"])
        except MeasurementError:
            pass
    return asn, cc


# Go's GOARCH names, which OONI Probe writes in `annotations.architecture`.
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                  "i386": "386", "i686": "386", "x86": "386", "armv7l": "arm", "armv6l": "arm"}
_PLATFORMS = {"linux": "linux", "darwin": "macos", "win32": "windows", "cygwin": "windows"}


def engine_annotations() -> dict[str, str]:
    """The annotations df-000 says a client always adds: what measured, and on what."""
    machine = host_platform.machine().lower()
    return {
        "architecture": _ARCHITECTURES.get(machine, machine or "unknown"),
        "engine_name": "fingerprint",
        "engine_version": __version__,
        "platform": _PLATFORMS.get(sys.platform, sys.platform),
    }


def normalize_asn(text: str) -> str:
    """'AS8193', 'as8193' or '8193' -> 'AS8193'."""
    value = text.strip().upper().removeprefix("AS")
    if not value.isdigit() or int(value) >= 1 << 32:
        raise MeasurementError(f"ASN {text!r} is not AS<number>")
    return f"AS{int(value)}"


def normalize_cc(text: str) -> str:
    value = text.strip().upper()
    if len(value) != 2 or not value.isalpha() or not value.isascii():
        raise MeasurementError(f"country code {text!r} is not two letters (ISO 3166-1)")
    return value

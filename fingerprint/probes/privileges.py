"""Preflight: can this process open the packet socket the probes' sniffer needs?

`geteuid() == 0` is not trusted on its own (capabilities vary between
systems), so the check opens an AF_PACKET socket, as the style guide advises.
Needs CAP_NET_RAW (root has it).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from fingerprint.errors import PrivilegeError

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21


def fingerprint_command() -> str:
    """How to start this very installation under sudo (which resets PATH and VIRTUAL_ENV)."""
    interpreter = sys.executable or "python3"
    venv = os.environ.get("VIRTUAL_ENV") or (sys.prefix if sys.prefix != sys.base_prefix
                                             else None)
    script = Path(venv) / "bin" / "fingerprint" if venv else None
    return str(script) if script is not None and script.exists() else f"{interpreter} -m fingerprint"


def has_capabilities(*capabilities: int) -> bool:
    """Whether every given capability is in this process's effective set (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            line = next((ln for ln in status if ln.startswith("CapEff:")), "CapEff: 0")
    except OSError:
        return os.geteuid() == 0
    effective = int(line.split(":", 1)[1], 16)
    return all(effective >> cap & 1 for cap in capabilities)


def privilege_hint() -> str:
    """One line: what the user can do to give the probe its privileges."""
    runner = fingerprint_command()
    return ("fingerprint probe needs root or CAP_NET_RAW (it sniffs its own packets): run "
            f"`sudo {runner} probe ...`, or grant capabilities to a dedicated interpreter copy "
            "(`cp $(readlink -f python3) ./python-probe && sudo setcap "
            "cap_net_raw,cap_net_admin+eip ./python-probe`)")


def check_privileges() -> None:
    """Raise PrivilegeError (exit code 77) with a one-line hint when raw sockets are refused."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    except PermissionError as exc:
        raise PrivilegeError(privilege_hint()) from exc
    sock.close()

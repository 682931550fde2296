"""Address facts the rules need: is it an address at all, is it a bogon."""

from __future__ import annotations

import ipaddress


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_v6(address: str) -> bool:
    """An IPv6 address (as the capture reader writes them: with colons)."""
    return ":" in address


def is_bogon(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_reserved
                or ip.is_link_local or ip.is_multicast) and not _is_documentation(ip)


_DOC_NETS = tuple(ipaddress.ip_network(n) for n in
                  ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def _is_documentation(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # The lab (and fixtures) use documentation ranges for real servers.
    return any(ip in net for net in _DOC_NETS if net.version == ip.version)

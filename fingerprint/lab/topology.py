"""The lab network: a chain of namespaces joined by veth pairs.

    client - r1 - r2 - censor - r3 - r4 - server

The client side uses 192.0.2.0/24, the router links /30s of 198.51.100.0/24,
the servers 203.0.113.0/24 (RFC 5737 documentation ranges).  Routes cover only
these three prefixes: no namespace has a default route, and none is linked to
the host's namespace, so nothing the lab sends can leave the machine.  Two
routers sit on each side of the censor so TTL-limited localisation has hops to
find; every router answers expired packets with ICMP time exceeded at no rate
limit.  IPv6 is disabled in the lab so stray router solicitations do not
clutter captures.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fingerprint.lab._system import LabError, in_netns, run


def instance_name() -> str:
    """The lab instance this process manages ("" is the default lab).

    FINGERPRINT_LAB_INSTANCE lets several labs run side by side on one machine
    (parallel test sessions, two researchers): each instance has its own
    namespaces and state directory, and `down` touches only its own.
    """
    return check_instance(os.environ.get("FINGERPRINT_LAB_INSTANCE", ""),
                          "FINGERPRINT_LAB_INSTANCE")


def check_instance(name: str, where: str = "--instance") -> str:
    """`name` if it is a valid instance name (1-8 lowercase letters or digits, or "")."""
    if name and not re.fullmatch(r"[a-z0-9]{1,8}", name):
        raise LabError(f"{where}={name!r}: use 1-8 lowercase letters or digits")
    return name


NODES = ("client", "r1", "r2", "censor", "r3", "r4", "server")
ROUTERS = ("r1", "r2", "censor", "r3", "r4")

CLIENT_ADDRESS = "192.0.2.10"
SERVER_PRIMARY = "203.0.113.2"
RESOLVER_ADDRESS = "203.0.113.53"
"""The lab's ordinary (plain DNS) resolver, the one a censor can see and forge."""
CONTROL_RESOLVER_ADDRESS = "203.0.113.54"
"""The control resolver: DoT on 853 and DoH on 443 (/dns-query); no plain DNS."""
CONTROL_SERVER_ADDRESS = "203.0.113.99"
"""Serves the control domain (example.com) over TLS and HTTP."""
FIRST_PLATFORM_ADDRESS = ipaddress.IPv4Address("203.0.113.10")
MAX_PLATFORMS = 40


def namespace(node: str) -> str:
    return f"fp{instance_name()}-{node}"


def all_namespaces() -> tuple[str, ...]:
    return tuple(namespace(n) for n in NODES)


@dataclass(frozen=True)
class Link:
    """A veth pair between NODES[index] (left) and NODES[index + 1] (right)."""

    index: int
    network: str
    left_address: str
    right_address: str

    @property
    def left(self) -> str:
        return NODES[self.index]

    @property
    def right(self) -> str:
        return NODES[self.index + 1]

    @property
    def left_interface(self) -> str:
        return "to-" + self.right

    @property
    def right_interface(self) -> str:
        return "to-" + self.left

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.network).prefixlen

    @property
    def left_mac(self) -> str:
        # Fixed, locally administered MACs: the censor engine injects frames
        # addressed to its neighbours without resolving them.
        return f"02:66:70:{self.index:02x}:00:01"

    @property
    def right_mac(self) -> str:
        return f"02:66:70:{self.index:02x}:00:02"


LINKS = (
    Link(0, "192.0.2.0/24", "192.0.2.10", "192.0.2.1"),
    Link(1, "198.51.100.0/30", "198.51.100.1", "198.51.100.2"),
    Link(2, "198.51.100.4/30", "198.51.100.5", "198.51.100.6"),
    Link(3, "198.51.100.8/30", "198.51.100.9", "198.51.100.10"),
    Link(4, "198.51.100.12/30", "198.51.100.13", "198.51.100.14"),
    Link(5, "203.0.113.0/24", "203.0.113.1", SERVER_PRIMARY),
)

CENSOR_INDEX = NODES.index("censor")
CENSOR_CLIENT_LINK = LINKS[CENSOR_INDEX - 1]
"""The censor's link towards the client (censor is its right end)."""
CENSOR_SERVER_LINK = LINKS[CENSOR_INDEX]
"""The censor's link towards the servers (censor is its left end)."""


def platform_address(index: int) -> str:
    """The lab address of the index-th platform (sorted by id)."""
    if not 0 <= index < MAX_PLATFORMS:
        raise ValueError(f"the lab has room for {MAX_PLATFORMS} platforms")
    return str(FIRST_PLATFORM_ADDRESS + index)


def hop_addresses() -> list[str]:
    """Addresses of the hops a client packet crosses, nearest first (r1 .. r4)."""
    return [LINKS[i].right_address for i in range(len(LINKS) - 1)]


_SYSCTLS_ALL = (
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
)
_SYSCTLS_OPTIONAL = (
    # Global ICMP budget (kernel >= 3.18); raise it so no time-exceeded is lost.
    "net.ipv4.icmp_msgs_per_sec=100000",
    "net.ipv4.icmp_msgs_burst=100000",
)


def _routes_for(node_index: int) -> list[tuple[str, str]]:
    """(destination, next hop) for every lab prefix not connected to the node."""
    routes: list[tuple[str, str]] = []
    for link in LINKS:
        if link.index in (node_index - 1, node_index):
            continue
        if link.index < node_index:
            routes.append((link.network, LINKS[node_index - 1].left_address))
        else:
            routes.append((link.network, LINKS[node_index].right_address))
    return routes


def build(server_addresses: list[str], wait: bool = True) -> None:
    """Create every namespace, link, address and route.

    `server_addresses` are extra /24 addresses for the server namespace (the
    resolvers', the platforms', the control server's).  With `wait` False the
    caller must call `wait_links_up` before sending (it can start services
    meanwhile: the kernel takes up to a second to activate a veth).
    """
    # One `ip -batch` per namespace and one sysctl per namespace instead of a
    # command per setting: `up` is paid by every lab run and test.
    host = [f"netns add {namespace(node)}" for node in NODES]
    per_node: dict[str, list[str]] = {node: ["link set lo up"] for node in NODES}
    sysctls: dict[str, list[str]] = {node: [*_SYSCTLS_ALL, *_SYSCTLS_OPTIONAL]
                                     for node in NODES}
    for node in ROUTERS:
        sysctls[node].append("net.ipv4.ip_forward=1")
    for link in LINKS:
        host.append(f"link add {link.left_interface} netns {namespace(link.left)} "
                    f"address {link.left_mac} type veth "
                    f"peer name {link.right_interface} netns {namespace(link.right)} "
                    f"address {link.right_mac}")
        for node, ifname, address in ((link.left, link.left_interface, link.left_address),
                                      (link.right, link.right_interface, link.right_address)):
            per_node[node] += [f"addr add {address}/{link.prefixlen} dev {ifname}",
                               f"link set {ifname} up"]
            # Fixed per-interface conf: rp_filter off where packets come back asymmetrically.
            sysctls[node].append(f"net.ipv4.conf.{ifname}.rp_filter=0")
    server_if = LINKS[-1].right_interface
    per_node["server"] += [f"addr add {address}/24 dev {server_if}"
                           for address in server_addresses]
    for index, node in enumerate(NODES):
        per_node[node] += [f"route add {destination} via {via}"
                           for destination, via in _routes_for(index)]
    run(["ip", "-batch", "-"], stdin="\n".join(host) + "\n")
    write_resolv_conf()
    for node in NODES:
        ns = namespace(node)
        # Settings first, while the new interfaces are still down (no IPv6 chatter).
        # -e: the optional settings (the global ICMP budget) are missing on old kernels.
        run(in_netns(ns, ["sysctl", "-e", "-q", "-w", *sysctls[node]]))
        run(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(per_node[node]) + "\n")
    if wait:
        wait_links_up()


def wait_links_up(timeout: float = 5.0) -> None:
    """Wait until every lab link is operationally up.

    The kernel activates a new veth's queue from linkwatch, up to a second
    after `link set up`; packets sent before that are silently dropped, which
    would turn the first probe of a run into a false "drop".
    """
    deadline = time.monotonic() + timeout
    for node in NODES:
        while True:
            listing = run(["ip", "-n", namespace(node), "-o", "link", "show"]).stdout
            states = [line for line in listing.splitlines() if " to-" in line]
            if states and all("state UP" in line for line in states):
                break
            if time.monotonic() > deadline:
                raise LabError(f"links in {namespace(node)} did not come up")
            time.sleep(0.05)


NETNS_ETC = Path("/etc/netns")
"""`ip netns exec NS` bind-mounts each file of /etc/netns/NS/ over its /etc namesake."""


def resolv_conf_path(ns: str) -> Path:
    return NETNS_ETC / ns / "resolv.conf"


def write_resolv_conf() -> None:
    """Give every lab namespace a resolv.conf naming the lab resolver.

    Without it a namespace reads the host's resolv.conf, whose resolver the lab
    cannot reach (no route leaves the lab): `fingerprint lab exec -- curl
    https://twitter.com/` could not resolve a name.
    """
    text = (f"# written by `fingerprint lab up` (instance {instance_name() or 'default'})\n"
            f"nameserver {RESOLVER_ADDRESS}\n")
    for ns in all_namespaces():
        path = resolv_conf_path(ns)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def remove_resolv_conf() -> list[str]:
    """Remove what `write_resolv_conf` wrote (and the folder, when nothing else is in it)."""
    removed: list[str] = []
    for ns in all_namespaces():
        path = resolv_conf_path(ns)
        if path.exists():
            path.unlink()
            removed.append(str(path))
        folder = path.parent
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def existing_namespaces() -> list[str]:
    """The lab's namespaces that exist right now."""
    listing = run(["ip", "netns", "list"], check=False).stdout
    present = {line.split()[0] for line in listing.splitlines() if line.strip()}
    return [ns for ns in all_namespaces() if ns in present]

"""The platform catalog: which domains and addresses belong to which platform.

Platforms are data (contracts/catalog.example.yaml).  `--catalog FILE` replaces
the built-in catalog (fingerprint/data/catalog.yaml).  A name belongs to a
platform when it equals one of the platform's domains or is a subdomain of one.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fingerprint._yaml import LocatedYaml, load_located_yaml, save_validated, validate_located
from fingerprint.errors import CatalogError

OTHER = "other"
"""Platform id for targets that match no catalog platform (report contract)."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Platform:
    id: str
    name: str
    domains: tuple[str, ...]
    addresses: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    quic: bool = False
    """The platform's servers answer QUIC (HTTP/3) on UDP/443, as its `sources` show:
    Initials to it unanswered whatever the SNI are then UDP dropping (quic.drop), not
    a server that does not speak QUIC."""

    def owns_address(self, address: str) -> bool:
        """True when `address` is a known-good address of this platform."""
        if address in self.addresses:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in _networks(self.networks))


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Catalog:
    platforms: dict[str, Platform]
    control_domains: tuple[str, ...] = ("example.com",)
    control_addresses: tuple[str, ...] = ()
    source: str = "built-in"
    _suffixes: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for platform in self.platforms.values():
            for domain in platform.domains:
                self._suffixes.setdefault(normalize_name(domain), platform.id)

    def platform_for_name(self, name: str) -> Platform | None:
        """The platform whose domain equals `name` or is a parent of it."""
        labels = normalize_name(name).split(".")
        for i in range(len(labels)):
            pid = self._suffixes.get(".".join(labels[i:]))
            if pid is not None:
                return self.platforms[pid]
        return None

    def platform_domain(self, name: str) -> str | None:
        """The shortest catalog domain that equals `name` or is a parent of it (the
        platform's own domain `name` lies under: facebook.com for m.facebook.com)."""
        labels = normalize_name(name).split(".")
        for i in range(len(labels) - 1, -1, -1):
            suffix = ".".join(labels[i:])
            if suffix in self._suffixes:
                return suffix
        return None

    def is_control_name(self, name: str) -> bool:
        name = normalize_name(name)
        return any(name == c or name.endswith("." + c) for c in self.control_domains)

    def platform_for_address(self, address: str) -> Platform | None:
        for platform in self.platforms.values():
            if platform.owns_address(address):
                return platform
        return None

    def select(self, ids: list[str] | tuple[str, ...]) -> Catalog:
        """A catalog restricted to `ids` (raises CatalogError on an unknown id)."""
        unknown = [i for i in ids if i not in self.platforms]
        if unknown:
            known = ", ".join(sorted(self.platforms))
            raise CatalogError(self.source, f"unknown platform {unknown[0]!r} (known: {known})")
        return Catalog({i: self.platforms[i] for i in ids}, self.control_domains,
                       self.control_addresses, self.source)


def _schema() -> dict[str, Any]:
    text = resources.files("fingerprint").joinpath("schemas/catalog.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _check_addresses(doc: LocatedYaml, values: list[str], key: tuple[str | int, ...],
                     networks: bool) -> None:
    for i, value in enumerate(values):
        try:
            if networks:
                ipaddress.ip_network(value, strict=False)
            else:
                ipaddress.ip_address(value)
        except ValueError:
            what = "network (CIDR)" if networks else "IP address"
            raise CatalogError(doc.path, f"{'/'.join(map(str, key))}: {value!r} is not an {what}",
                               doc.line_of([*key, i])) from None


def catalog_from_document(doc: LocatedYaml) -> Catalog:
    validate_located(doc, _schema(), CatalogError)
    save_validated()
    platforms: dict[str, Platform] = {}
    for pid, entry in doc.data["platforms"].items():
        _check_addresses(doc, entry.get("addresses", []), ("platforms", pid, "addresses"), False)
        _check_addresses(doc, entry.get("networks", []), ("platforms", pid, "networks"), True)
        platforms[pid] = Platform(
            id=pid,
            name=entry.get("name", pid),
            domains=tuple(normalize_name(d) for d in entry["domains"]),
            addresses=tuple(entry.get("addresses", [])),
            networks=tuple(entry.get("networks", [])),
            sources=tuple(entry.get("sources", [])),
            quic=bool(entry.get("quic", False)),
        )
    control = doc.data.get("control", {})
    _check_addresses(doc, control.get("addresses", []), ("control", "addresses"), False)
    return Catalog(
        platforms,
        tuple(normalize_name(d) for d in control.get("domains", ["example.com"])) or ("example.com",),
        tuple(control.get("addresses", [])),
        doc.path,
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalog file, or the built-in catalog when `path` is None."""
    if path is None:
        text = resources.files("fingerprint").joinpath("data/catalog.yaml").read_text()
        return catalog_from_document(load_located_yaml("built-in catalog", text))
    return catalog_from_document(load_located_yaml(path))


def catalog_to_yaml(catalog: Catalog) -> str:
    """The catalog in the contract's YAML format."""
    platforms: dict[str, Any] = {}
    for p in catalog.platforms.values():
        entry: dict[str, Any] = {"name": p.name, "domains": list(p.domains)}
        if p.addresses:
            entry["addresses"] = list(p.addresses)
        if p.networks:
            entry["networks"] = list(p.networks)
        if p.sources:
            entry["sources"] = list(p.sources)
        if p.quic:
            entry["quic"] = True
        platforms[p.id] = entry
    data = {"platforms": platforms, "control": {"domains": list(catalog.control_domains),
                                                "addresses": list(catalog.control_addresses)}}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)

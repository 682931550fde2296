"""Scenarios: which platforms a censor blocks, by which behaviour.

One YAML file per scenario in this folder; the file name is the scenario id.
Keys: `title` (one line: what it emulates), `sources` (where the behaviour is
documented), `rules` (a list of {behaviour, platforms, options}), and optionally
`vantage` ({cc, asn}: the network the scenario emulates, given to the probe as
its vantage point so country-scoped signatures can name the censor) and
`signatures` (ids the run must match: the scenario's censor is recognised), and
`open_may_be_inconclusive` (true: the network degrades what it does not block,
so a platform no rule blocks may come out `inconclusive`, never `blocked`).
The techniques a probe should report per platform follow from the behaviours
(`Behaviour.techniques`); every platform not named by a rule must come out
accessible.  A behaviour without techniques (a path-wide effect such as a slow
middlebox) may omit `platforms`: it applies to every flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from fingerprint.lab._system import LabError
from fingerprint.lab.censors import BEHAVIOURS


@dataclass(frozen=True)
class Rule:
    behaviour: str
    platforms: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    sources: tuple[str, ...]
    rules: tuple[Rule, ...]
    vantage_cc: str | None = None
    vantage_asn: str | None = None
    signatures: tuple[str, ...] = ()
    open_may_be_inconclusive: bool = False
    """Platforms no rule blocks may be `inconclusive` (never `blocked`)."""
    probe_quic: bool = True
    """The probe sends QUIC Initials and ECH ClientHellos, as by default (`probe_quic:
    false` runs it with `--no-quic`)."""

    def expected(self, platform_ids: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
        """Techniques the probe should find per platform ([] means accessible)."""
        expected: dict[str, set[str]] = {p: set() for p in platform_ids}
        for rule in self.rules:
            for platform in rule.platforms:
                expected.setdefault(platform, set()).update(BEHAVIOURS[rule.behaviour].techniques)
        return {p: sorted(t) for p, t in expected.items()}

    def blocked(self) -> set[str]:
        return {p for rule in self.rules for p in rule.platforms}


def scenario_from_data(scenario_id: str, data: Any) -> Scenario:
    where = f"scenario {scenario_id}"
    if not isinstance(data, dict) or not isinstance(data.get("title"), str):
        raise LabError(f"{where}: needs a mapping with a title")
    rules: list[Rule] = []
    for index, raw in enumerate(data.get("rules") or []):
        behaviour = raw.get("behaviour") if isinstance(raw, dict) else None
        if behaviour not in BEHAVIOURS:
            raise LabError(f"{where}: rule {index}: unknown behaviour {behaviour!r}")
        platforms = raw.get("platforms") or []
        path_wide = not BEHAVIOURS[behaviour].techniques
        if not isinstance(platforms, list) or not (platforms or path_wide):
            raise LabError(f"{where}: rule {index}: platforms must be a non-empty list")
        rules.append(Rule(behaviour, tuple(str(p) for p in platforms),
                          dict(raw.get("options") or {})))
    vantage = data.get("vantage") or {}
    if not isinstance(vantage, dict) or set(vantage) - {"cc", "asn"}:
        raise LabError(f"{where}: vantage must be a mapping with cc and/or asn")
    cc, asn = vantage.get("cc"), vantage.get("asn")
    if cc is not None and not (isinstance(cc, str) and len(cc) == 2 and cc.isalpha()):
        raise LabError(f"{where}: vantage cc must be a two-letter country code")
    if asn is not None and not re.fullmatch(r"AS[0-9]{1,10}", str(asn)):
        raise LabError(f"{where}: vantage asn must look like AS8193")
    open_inconclusive = data.get("open_may_be_inconclusive", False)
    if not isinstance(open_inconclusive, bool):
        raise LabError(f"{where}: open_may_be_inconclusive must be true or false")
    probe_quic = data.get("probe_quic", True)
    if not isinstance(probe_quic, bool):
        raise LabError(f"{where}: probe_quic must be true or false")
    signatures = data.get("signatures") or []
    if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
        raise LabError(f"{where}: signatures must be a list of signature ids")
    return Scenario(scenario_id, data["title"].strip(),
                    tuple(str(s) for s in data.get("sources") or []), tuple(rules),
                    cc.upper() if cc else None, str(asn) if asn else None, tuple(signatures),
                    open_inconclusive, probe_quic)


def _folder() -> Any:
    return resources.files("fingerprint.lab.scenarios")


def scenario_ids() -> list[str]:
    return sorted(entry.name[:-5] for entry in _folder().iterdir()
                  if entry.name.endswith(".yaml"))


def load_scenario(scenario_id: str) -> Scenario:
    if scenario_id not in scenario_ids():
        raise LabError(f"unknown scenario {scenario_id!r} (known: {', '.join(scenario_ids())})")
    text = (_folder() / f"{scenario_id}.yaml").read_text(encoding="utf-8")
    return scenario_from_data(scenario_id, yaml.safe_load(text))

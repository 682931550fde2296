"""Bringing a scenario up, tearing it down, and running the probe against it.

Public API (used by `cli.py` and the tests):

* `up(scenario, mode="up") -> LabInfo` builds the network, services and censor;
* `down() -> list[str]` removes every namespace and process the lab created
  (also stale ones), returning what it removed;
* `current() -> LabInfo | None` describes the running lab;
* `probe_command(info, ...)` is the `fingerprint probe` invocation `lab run`
  makes from the client namespace; `run(...)` does up, probe, down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fingerprint.catalog import Catalog, catalog_to_yaml, load_catalog
from fingerprint.interrupt import Interrupted, StopSignal, relay_interruption, run_child
from fingerprint.lab import pki, state, topology
from fingerprint.lab._system import LabError, in_netns
from fingerprint.lab._system import run as run_command
from fingerprint.lab.scenarios import Scenario, load_scenario

READY_TIMEOUT = 30.0


class LabBusyError(LabError):
    """A lab is already running."""


@dataclass(frozen=True)
class LabInfo:
    scenario: Scenario
    state_dir: Path
    catalog: Catalog

    @property
    def catalog_path(self) -> Path:
        return self.state_dir / "catalog.yaml"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def engine_log(self) -> Path:
        return self.state_dir / "censor-events.jsonl"

    resolver = topology.RESOLVER_ADDRESS
    control_resolver = f"tls://{topology.CONTROL_RESOLVER_ADDRESS}"
    control_resolver_doh = f"https://{topology.CONTROL_RESOLVER_ADDRESS}/dns-query"

    @property
    def client_namespace(self) -> str:
        return topology.namespace("client")


def lab_catalog(base: Catalog) -> Catalog:
    """The catalog's platforms moved to lab addresses (one per platform, sorted by id)."""
    platforms = {
        # Every lab platform's server answers QUIC (`services.quic`).
        pid: replace(base.platforms[pid], addresses=(topology.platform_address(index),),
                     networks=(), quic=True)
        for index, pid in enumerate(sorted(base.platforms))
    }
    return Catalog(platforms, base.control_domains, (topology.CONTROL_SERVER_ADDRESS,), "lab")


# -- teardown ---------------------------------------------------------------------------
def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in pids if state.pid_alive(p)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            for pid in alive:
                try:  # reap our own children so they do not linger as zombies
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            alive = [p for p in alive if state.pid_alive(p) and not _zombie(p)]
        if not alive:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _lab_process(pid: int) -> bool:
    try:
        return b"fingerprint.lab" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _processes_naming(directory: Path) -> list[int]:
    """Processes whose command line names a file in `directory` (this instance's
    state directory), but not this process or its ancestors.

    Catches a service (or a `lab run`'s probe) started by an `up` that was
    SIGKILLed before it recorded the pid, including one that entered its
    namespace only after a teardown looked for it there.
    """
    needle = (str(directory) + "/").encode()
    own = {os.getpid()}
    parent = os.getppid()
    while parent > 1 and parent not in own:
        own.add(parent)
        try:
            parent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def _teardown(recorded: state.LabState | None) -> list[str]:
    removed: list[str] = []
    pids = [p for p in (recorded.pids if recorded else []) if _lab_process(p)]
    pids += _processes_naming(state.state_dir())
    for ns in topology.existing_namespaces():
        listed = run_command(["ip", "netns", "pids", ns], check=False).stdout.split()
        pids += [int(p) for p in listed if p.isdigit()]
    if pids:
        _kill(sorted(set(pids)))
        removed.append(f"{len(set(pids))} process(es)")
    for ns in topology.existing_namespaces():
        run_command(["ip", "netns", "del", ns])
        removed.append(f"namespace {ns}")
    removed += topology.remove_resolv_conf()
    state.clear()
    return removed


def down() -> list[str]:
    """Remove the running (or stale) lab; returns what was removed."""
    state.require_root()
    with state.locked():
        return _teardown(state.read())


def current() -> LabInfo | None:
    recorded = state.read()
    if recorded is None or not recorded.running():
        return None
    from fingerprint.catalog import load_catalog as load

    return LabInfo(load_scenario(recorded.scenario), state.state_dir(),
                   load(state.state_dir() / "catalog.yaml"))


# -- bring-up ----------------------------------------------------------------------------
def _write_pki(info: LabInfo) -> tuple[list[dict[str, Any]], Path, Path]:
    directory = info.state_dir / "certs"
    directory.mkdir()
    authority = pki.new_authority("fingerprint lab CA", "fingerprint lab")
    pki.write_authority(authority, info.ca_path, directory / "ca.key")
    sites: list[dict[str, Any]] = []

    def issue(label: str, names: list[str], addresses: list[str]) -> tuple[Path, Path]:
        chain, key = pki.issue(authority, names, addresses)
        cert_path, key_path = directory / f"{label}.pem", directory / f"{label}.key"
        cert_path.write_bytes(chain)
        key_path.write_bytes(key)
        return cert_path, key_path

    for platform in info.catalog.platforms.values():
        names = [n for d in platform.domains for n in (d, f"*.{d}")]
        cert, key = issue(platform.id, names, list(platform.addresses))
        sites.append({"address": platform.addresses[0], "platform": platform.id,
                      "names": list(platform.domains), "cert": str(cert), "key": str(key)})
    control_names = [n for d in info.catalog.control_domains for n in (d, f"*.{d}")]
    cert, key = issue("control", control_names, [topology.CONTROL_SERVER_ADDRESS])
    sites.append({"address": topology.CONTROL_SERVER_ADDRESS, "platform": "control",
                  "names": list(info.catalog.control_domains), "cert": str(cert),
                  "key": str(key)})
    resolver_cert, resolver_key = issue("control-resolver", ["control-resolver.lab"],
                                        [topology.CONTROL_RESOLVER_ADDRESS])
    return sites, resolver_cert, resolver_key


def _start(info: LabInfo, recorded: state.LabState, node: str, name: str,
           module_args: list[str]) -> Path:
    ready = info.state_dir / f"{name}.ready"
    log = (info.state_dir / f"{name}.log").open("ab")
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        in_netns(topology.namespace(node),
                 [sys.executable, "-m", *module_args, "--ready-file", str(ready)]),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    log.close()
    recorded.pids.append(proc.pid)
    state.write(recorded)
    return ready


def _wait_ready(info: LabInfo, readies: dict[str, Path], recorded: state.LabState) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = dict(readies)
    while waiting:
        for name, path in list(waiting.items()):
            if path.exists():
                del waiting[name]
        dead = [p for p in recorded.pids if not state.pid_alive(p) or _zombie(p)]
        if waiting and (dead or time.monotonic() > deadline):
            name = next(iter(waiting))
            tail = (info.state_dir / f"{name}.log").read_text(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else "no output"
            raise LabError(f"lab service {name} did not start: {last}")
        time.sleep(0.05)


def _setup_censor(info: LabInfo, recorded: state.LabState) -> dict[str, Path]:
    # Imported here: the censors load scapy (a third of a second), which only `up` needs;
    # `lab down` runs after every test of the lab.
    from fingerprint.lab.censors import build_behaviour
    from fingerprint.lab.censors.base import CensorSetup
    from fingerprint.lab.censors.engine import QUEUE_NUMBER

    setup = CensorSetup(info.state_dir)
    rules: list[dict[str, Any]] = []
    queues: set[str] = set()
    for rule in info.scenario.rules:
        platforms = [info.catalog.platforms[p] for p in rule.platforms]
        domains = tuple(d for p in platforms for d in p.domains)
        addresses = tuple(a for p in platforms for a in p.addresses)
        behaviour = build_behaviour(rule.behaviour, rule.options, domains, addresses)
        behaviour.prepare(setup)
        queues |= behaviour.queued()
        rules.append({"behaviour": rule.behaviour, "options": rule.options,
                      "domains": list(domains), "addresses": list(addresses)})
    censor_ns = topology.namespace("censor")
    for command in setup.commands:
        run_command(in_netns(censor_ns, command))
    client_if = topology.CENSOR_CLIENT_LINK.right_interface
    queue = ["-j", "NFQUEUE", "--queue-num", str(QUEUE_NUMBER)]
    matches = {"dns": ["-p", "udp", "--dport", "53"], "tls": ["-p", "tcp", "--dport", "443"],
               "http": ["-p", "tcp", "--dport", "80"], "syn": ["-p", "tcp", "--syn"],
               "hello": ["-p", "tcp", "--dport", "443"], "quic": ["-p", "udp", "--dport", "443"]}
    readies: dict[str, Path] = {}
    if queues:
        config = info.state_dir / "censor.json"
        config.write_text(json.dumps({"rules": rules, "log": str(info.engine_log)}, indent=1))
        readies["censor-engine"] = _start(info, recorded, "censor", "censor-engine",
                                          ["fingerprint.lab.censors.engine", str(config)])
        _wait_ready(info, readies, recorded)
        # Queue only once the engine listens: without a listener NFQUEUE drops.
        for kind in sorted(queues):
            run_command(in_netns(censor_ns, ["iptables", "-t", "mangle", "-A", "PREROUTING",
                                              "-i", client_if, *matches[kind], *queue]))
    for index, (name, module_args) in enumerate(setup.processes):
        label = f"{name}-{index}"
        readies[label] = _start(info, recorded, "censor", label, module_args)
    return readies


def up(scenario: Scenario, mode: str = "up", catalog: Catalog | None = None) -> LabInfo:
    """Build the lab for `scenario`; LabBusyError when one is running."""
    state.require_root()
    with state.locked():
        recorded = state.read()
        if recorded is not None and recorded.running():
            instance = topology.instance_name()
            which = f"lab instance {instance!r}" if instance else "a lab"
            option = f" --instance {instance}" if instance else ""
            raise LabBusyError(f"{which} is already running (scenario {recorded.scenario}, "
                               f"pid {recorded.owner_pid}): run `fingerprint lab{option} down` "
                               "first, or use another --instance")
        _teardown(recorded)
        info = LabInfo(scenario, state.state_dir(), lab_catalog(catalog or load_catalog()))
        unknown = sorted(scenario.blocked() - set(info.catalog.platforms))
        if unknown:
            raise LabError(f"scenario {scenario.id} names platforms not in the catalog: "
                           f"{', '.join(unknown)}")
        recorded = state.LabState(scenario.id, os.getpid(), mode)
        state.write(recorded)
        try:
            info.catalog_path.write_text(catalog_to_yaml(info.catalog))
            sites, resolver_cert, resolver_key = _write_pki(info)
            server_addresses = [topology.RESOLVER_ADDRESS, topology.CONTROL_RESOLVER_ADDRESS,
                                *(s["address"] for s in sites)]
            # The services start while the kernel activates the veths (up to a second):
            # both are waited for before the lab counts as up.
            topology.build(server_addresses, wait=False)
            zone = {d: list(p.addresses) for p in info.catalog.platforms.values()
                    for d in p.domains}
            zone.update({d: [topology.CONTROL_SERVER_ADDRESS]
                         for d in info.catalog.control_domains})
            (info.state_dir / "zone.json").write_text(json.dumps({"names": zone}, indent=1))
            (info.state_dir / "sites.json").write_text(json.dumps({"sites": sites}, indent=1))
            readies: dict[str, Path] = {}
            readies["resolver"] = _start(info, recorded, "server", "resolver", [
                "fingerprint.lab.services.resolver", "--zone", str(info.state_dir / "zone.json"),
                "--udp", topology.RESOLVER_ADDRESS, "--dot", topology.CONTROL_RESOLVER_ADDRESS,
                "--doh", topology.CONTROL_RESOLVER_ADDRESS, "--cert", str(resolver_cert),
                "--key", str(resolver_key)])
            readies["web"] = _start(info, recorded, "server", "web", [
                "fingerprint.lab.services.web", "--sites", str(info.state_dir / "sites.json")])
            # QUIC (UDP 443) on the same addresses and certificates (issue 14).
            readies["quic"] = _start(info, recorded, "server", "quic", [
                "fingerprint.lab.services.quic", "--sites", str(info.state_dir / "sites.json")])
            readies.update(_setup_censor(info, recorded))
            _wait_ready(info, readies, recorded)
            topology.wait_links_up()
        except BaseException:
            _teardown(recorded)
            raise
        recorded.complete = True
        state.write(recorded)
        return info


# -- run -----------------------------------------------------------------------------------
def probe_command(info: LabInfo, timeout: float, pcap_out: Path | None,
                  extra: Sequence[str] = ()) -> list[str]:
    """`extra`: more probe options (--jsonl FILE, --probe-cc CC, ...), paths absolute."""
    args = [sys.executable, "-m", "fingerprint", "probe", "--catalog", str(info.catalog_path),
            "--resolver", info.resolver, "--control-resolver", info.control_resolver,
            "--ca-file", str(info.ca_path), "--timeout", str(timeout), "--json"]
    if pcap_out is not None:
        args += ["--pcap-out", str(pcap_out.resolve())]
    return in_netns(info.client_namespace, [*args, *extra])


def replay_files(pcap_out: Path) -> tuple[Path, Path]:
    """Where `lab run --pcap-out FILE` keeps the lab's catalog and CA: FILE's stem plus
    .catalog.yaml and .ca.pem (the CA is gone with the lab, and the replay needs it)."""
    stem = pcap_out.with_suffix("")
    if stem.suffix in (".pcap", ".pcapng"):  # evidence.pcapng.gz
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".catalog.yaml"), stem.with_name(stem.name + ".ca.pem")


def keep_replay_files(info: LabInfo, pcap_out: Path) -> None:
    catalog, ca = replay_files(pcap_out)
    for source, target in ((info.catalog_path, catalog), (info.ca_path, ca)):
        with contextlib.suppress(OSError):  # a probe that never started leaves no capture either
            shutil.copyfile(source, target)


LAB_MAX_HOPS = ["--max-hops", str(len(topology.LINKS) + 2)]
"""`lab run`'s TTL-limited series stop two hops past the lab's server (the probe's default,
16, is for real paths): TTLs beyond the server learn nothing and cost pacing time."""


def run(scenario_id: str, timeout: float, pcap_out: Path | None,
        probe_args: Sequence[str] = ()) -> dict[str, Any]:
    """up, `fingerprint probe` from the client namespace, down; the report with lab keys.

    SIGINT/SIGTERM are passed on to the probe (which keeps its finished
    measurements and its capture), the lab is torn down, and `Interrupted`
    (exit 130 / 143) is raised.  A signal during `up` or `down` takes effect
    after it, so the lab is never left half built.
    """
    scenario = load_scenario(scenario_id)
    stop = StopSignal()
    with stop.installed():
        info = up(scenario, mode="run")
        try:
            proc = None if stop.is_set() else run_child(
                probe_command(info, timeout, pcap_out, [*LAB_MAX_HOPS, *probe_args]), stop)
        finally:
            if pcap_out is not None:
                keep_replay_files(info, pcap_out)
            down()
    if proc is None or proc.signum is not None:
        # A signal that came only during `down` found the probe done: the report stands.
        signum = stop.signum or signal.SIGINT
        raise Interrupted(signum, relay_interruption(
            "run", signum, proc.stderr if proc is not None else "") + "; lab torn down")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError("fingerprint probe failed in the lab: "
                       + (lines[-1] if lines else f"exit code {proc.returncode}")) from None
    report["source"] = "lab"
    report["scenario"] = scenario.id
    report["expected"] = scenario.expected(sorted(info.catalog.platforms))
    if scenario.vantage_cc or scenario.vantage_asn:
        report["vantage"] = {key: value for key, value in
                             (("cc", scenario.vantage_cc), ("asn", scenario.vantage_asn)) if value}
    return report

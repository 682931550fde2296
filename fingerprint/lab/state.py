"""The lab's state directory: lock, what was created, and which process owns it.

`/run/fingerprint-lab/` (`/run/fingerprint-lab-NAME/` for instance NAME of
FINGERPRINT_LAB_INSTANCE; FINGERPRINT_LAB_STATE overrides both) holds `lock`
(flock'ed while a lab is being built or torn down, so two commands never
interleave), `state.json` (scenario, owner pid, mode, complete, pids), and
the files of the running lab (catalog, CA, certificates, configs, logs).

A lab is *running* when `state.json` says so and either it was brought up by
`lab up` and completed, or its owner (`lab run`) is still alive.  Anything
else found on disk or as `fp-` namespaces is stale (a crash, a SIGKILL) and
is removed by the next `up` or `down`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fingerprint.errors import PrivilegeError
from fingerprint.lab.topology import instance_name


def state_dir() -> Path:
    instance = instance_name()  # validated: a bad name must not create a directory
    default = "/run/fingerprint-lab" + (f"-{instance}" if instance else "")
    return Path(os.environ.get("FINGERPRINT_LAB_STATE", default))


@dataclass
class LabState:
    scenario: str
    owner_pid: int
    mode: str  # "up" (left running) or "run" (torn down by its owner)
    complete: bool = False
    pids: list[int] = field(default_factory=list)

    def running(self) -> bool:
        if self.mode == "up":
            return self.complete
        return pid_alive(self.owner_pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_root() -> None:
    from fingerprint.probes.privileges import (
        CAP_NET_ADMIN,
        CAP_SYS_ADMIN,
        fingerprint_command,
        has_capabilities,
    )

    # Root whose capabilities were dropped (capsh, some containers) cannot build namespaces
    # either, so euid 0 alone is not enough.
    if os.geteuid() != 0 or not has_capabilities(CAP_SYS_ADMIN, CAP_NET_ADMIN):
        raise PrivilegeError("needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN (network "
                             f"namespaces, iptables): run `sudo {fingerprint_command()} lab ...`")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    directory = state_dir()
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (directory / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read() -> LabState | None:
    path = state_dir() / "state.json"
    try:
        data = json.loads(path.read_text())
        return LabState(**data)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def write(state: LabState) -> None:
    path = state_dir() / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(path)


def clear() -> None:
    """Remove everything in the state directory but the lock."""
    directory = state_dir()
    if not directory.exists():
        return
    for entry in directory.iterdir():
        if entry.name == "lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)

"""Running system tools (ip, iptables, tc, sysctl) with argument lists."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from fingerprint.errors import FingerprintError


class LabError(FingerprintError):
    """The lab could not be built or torn down."""


def run(args: Sequence[str], *, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command (`stdin`: its input); with `check`, a failure raises LabError
    naming the command."""
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False, input=stdin)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {proc.returncode}"
        raise LabError(f"`{' '.join(args)}` failed: {last}")
    return proc


def in_netns(namespace: str, args: Sequence[str]) -> list[str]:
    """The argument list running `args` inside `namespace`."""
    return ["ip", "netns", "exec", namespace, *args]

"""The tool's own exceptions.

Network outcomes (a reset, a timeout, a forged answer) are data, never
exceptions.  These are for faults of the tool or of the user's input, and the
CLI turns each into one line on stderr.
"""

from __future__ import annotations


class FingerprintError(Exception):
    """fingerprint failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InputError(FingerprintError):
    """A file given by the user cannot be used; the message names the file (and line)."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class CaptureError(InputError):
    """A capture file cannot be read."""

    def __init__(self, path: str, message: str, frame: int | None = None) -> None:
        self.frame = frame
        if frame is not None:
            message = f"packet {frame}: {message}"
        super().__init__(path, message)


class SignatureError(InputError):
    """A signature file is malformed."""


class CatalogError(InputError):
    """A catalog file is malformed."""


class PrivilegeError(FingerprintError):
    """This command needs root or CAP_NET_RAW/CAP_NET_ADMIN."""

    exit_code = 77

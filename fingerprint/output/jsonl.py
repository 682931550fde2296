"""JSONL output: one measurement per line, on disk as soon as it is written.

    with JsonlWriter("results.jsonl") as out:
        for measurement in measurements:
            out.write(measurement)

Lines are appended (several runs, days or vantage points can share one file,
which `fingerprint report` combines) and flushed one by one, so a run that is
killed leaves every finished measurement readable; at worst the last line is
cut short, and `fingerprint report` skips it by name.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from fingerprint.errors import InputError

__all__ = ["JsonlWriter", "dumps_line"]


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps_line(measurement: dict[str, Any]) -> str:
    """One compact JSON line (bytes as base64, sets as sorted lists), newline included."""
    return json.dumps(measurement, ensure_ascii=False, separators=(",", ":"),
                      default=_default) + "\n"


class JsonlWriter:
    """Appends measurements to `path` ("-" for stdout), flushing after each line."""

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        self.path = str(path)
        self.count = 0
        self._own = self.path != "-"
        if self._own:
            try:
                self._out: IO[str] = open(self.path, "a" if append else "w",
                                          encoding="utf-8")
            except OSError as exc:
                raise InputError(self.path, f"cannot write: {exc.strerror or exc}") from None
        else:
            self._out = sys.stdout

    def write(self, measurement: dict[str, Any]) -> None:
        line = dumps_line(measurement)
        try:
            self._out.write(line)
            self._out.flush()
        except OSError as exc:
            raise InputError(self.path, f"write failed: {exc.strerror or exc}") from None
        self.count += 1

    def close(self) -> None:
        if self._own and not self._out.closed:
            self._out.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

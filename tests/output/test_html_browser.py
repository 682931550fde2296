"""The HTML report rendered by a real browser (headless Chromium) is a coloured grid, not a blank page."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from synthetic import START, censored_network

from fingerprint.output.aggregate import aggregate
from fingerprint.output.jsonl import JsonlWriter
from fingerprint.output.ooni.envelope import ProbeInfo
from fingerprint.output.ooni.measurements import measurements_from_pipeline
from fingerprint.output.render_html import STATUS_COLOURS, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/bootstrap installs Debian's "
    "`chromium` package)")


def _png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) to RGB pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack_from("!I4s", data, pos)
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack("!IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[i:i + 3]) for i in range(0, stride, channels))  # type: ignore[misc]
        previous = line
    return width, height, pixels


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _near(pixel: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(pixel, target, strict=True))


def test_report_renders_as_a_coloured_grid(analyze: Any, tmp_path: Path) -> None:
    jsonl = tmp_path / "runs.jsonl"
    with JsonlWriter(jsonl) as out:
        for day, blocked in enumerate((True, True, False, True)):
            capture = censored_network(START + day * 86400, twitter_blocked=blocked).write(
                tmp_path / f"day{day}.pcapng")
            result = analyze(capture)
            for m in measurements_from_pipeline(result.pipeline, result.verdicts,
                                                ProbeInfo(asn="AS8193", cc="UZ")):
                out.write(m)
    page = tmp_path / "report.html"
    page.write_text(render_html(aggregate([str(jsonl)])))
    shot = tmp_path / "shot.png"
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        f"--screenshot={shot}", "--window-size=1280,900", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    colours = Counter(pixels)
    assert len(colours) > 100, "a page of text and a grid has many distinct colours"
    # Most of the page is background, but not all of it: something was drawn.
    assert colours.most_common(1)[0][1] < 0.95 * len(pixels)
    blocked = sum(n for c, n in colours.items() if _near(c, _rgb(STATUS_COLOURS["blocked"])))
    accessible = sum(n for c, n in colours.items()
                     if _near(c, _rgb(STATUS_COLOURS["accessible"])))
    # Grid cells and timeline squares are solid blocks of the status colours.
    assert blocked > 2000 and accessible > 100

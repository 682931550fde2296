"""A minimal HTTP/1.1 request reader and response writer for the lab servers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

MAX_HEADER_BYTES = 16384
MAX_BODY_BYTES = 65536


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def host(self) -> str:
        return self.headers.get("host", "").split(":")[0].lower()


async def read_request(reader: asyncio.StreamReader, timeout: float) -> Request | None:
    """The next request, or None when the peer closed, sent garbage or went idle."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
            ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or len(head) > MAX_HEADER_BYTES:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = b""
    length = int(headers.get("content-length", "0") or "0")
    if 0 < length <= MAX_BODY_BYTES:
        try:
            body = await asyncio.wait_for(reader.readexactly(length), timeout)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            return None
    return Request(parts[0], parts[1], headers, body)


def response(status: int, reason: str, body: bytes, content_type: str = "text/plain") -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            "Server: fingerprint-lab\r\n\r\n")
    return head.encode("ascii") + body

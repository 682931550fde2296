"""Plain HTTP/1.x requests and responses (RFC 9112), the parts that reveal blocking.

Requests: method, target and Host header (the trigger many censors still key
on).  Responses: status, headers (Location for redirects to blockpages,
Server) and the start of the body.
"""

from __future__ import annotations

from dataclasses import dataclass

_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"CONNECT ", b"DELETE ", b"PATCH ")
MAX_HEAD = 16384


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    host: str | None


@dataclass(slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


def looks_like_request(data: bytes) -> bool:
    return data.startswith(_METHODS)


def _split_head(data: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = data[:MAX_HEAD].partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data[:MAX_HEAD].partition(b"\n\n")
        if sep:
            body = data[len(head) + 2:]
    else:
        body = data[len(head) + 4:]
    return head.replace(b"\r\n", b"\n").split(b"\n"), body


def _headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[:100]:
        name, colon, value = line.partition(b":")
        if colon:
            headers.setdefault(name.strip().lower().decode("latin-1"),
                               value.strip().decode("latin-1"))
    return headers


def parse_request(data: bytes) -> HttpRequest | None:
    if not looks_like_request(data):
        return None
    lines, _ = _split_head(data)
    parts = lines[0].split(b" ")
    if len(parts) < 2:
        return None
    host = _headers(lines[1:]).get("host")
    if host is not None:
        host = host.lower()
        if host.startswith("[") and "]" in host:
            host = host[1:host.index("]")]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
    return HttpRequest(parts[0].decode("latin-1"), parts[1].decode("latin-1"), host)


def parse_response(data: bytes) -> HttpResponse | None:
    if not data.startswith(b"HTTP/"):
        return None
    lines, body = _split_head(data)
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return None
    reason = parts[2].decode("latin-1", "replace") if len(parts) > 2 else ""
    return HttpResponse(status, reason, _headers(lines[1:]), body[:65536])

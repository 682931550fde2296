"""Plain HTTP/1.x requests and responses (RFC 9112), the parts that reveal blocking.

Requests: method, target and Host header (the trigger many censors still key
on).  Responses: status, headers (Location for redirects to blockpages,
Server) and the start of the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"CONNECT ", b"DELETE ", b"PATCH ")
MAX_HEAD = 16384


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    host: str | None
    headers_list: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Every header line in order, name and value as sent (names keep their case)."""
    body: bytes = b""

    @property
    def body_is_truncated(self) -> bool:
        """The body seen is shorter than the Content-Length the client announced."""
        length = next((v.decode("latin-1") for n, v in self.headers_list
                       if n.lower() == b"content-length"), "")
        return _body_is_truncated({"content-length": length}, self.body)


@dataclass(slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    headers_list: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Every header line in order, name and value as sent (names keep their case)."""

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    @property
    def body_is_truncated(self) -> bool:
        """The body seen is shorter than the Content-Length the server announced."""
        return _body_is_truncated(self.headers, self.body)


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


def _header_pairs(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for line in lines[:100]:
        name, colon, value = line.partition(b":")
        if colon:
            pairs.append((name.strip(), value.strip()))
    return pairs


def _body_is_truncated(headers: dict[str, str], body: bytes) -> bool:
    length = headers.get("content-length", "").strip()
    return length.isdigit() and int(length) > len(body)


def parse_request(data: bytes) -> HttpRequest | None:
    if not looks_like_request(data):
        return None
    lines, body = _split_head(data)
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
    return HttpRequest(parts[0].decode("latin-1"), parts[1].decode("latin-1"), host,
                       _header_pairs(lines[1:]), body)


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
    return HttpResponse(status, reason, _headers(lines[1:]), body[:65536],
                        _header_pairs(lines[1:]))

"""HTTP blockpage: a plain-HTTP request whose Host matches is dropped and the
client gets a forged response (a redirect or a page), then the connection is
closed by the forged FIN.

Profiles:

* `uzbekistan`: 302 with Location http://reestr.mitc.uz/ (OONI fingerprint
  ooni.uz_0, `header.location` prefix, ooni/pipeline PR #374, 2022-01-27).
* `iran`: 403 whose body is an iframe to http://10.10.34.34 (ooni.org/post/
  2018-iran-protests-pt2).
* `russia`: 302 to an ISP blockpage; Russian ISP DPI redirects plain HTTP
  (ValdikSS/GoodbyeDPI README).  The exact Location differs per ISP; the
  one used here (RKN's registry site) is a lab choice.

The forged segment carries the request's ack as its seq, like the server's
own answer would, with header values from the options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from fingerprint.lab.censors import _tcp
from fingerprint.lab.censors._wire import Packet
from fingerprint.lab.censors.base import Behaviour, Verdict

if TYPE_CHECKING:
    from fingerprint.lab.censors.base import CensorContext


def _redirect(location: str) -> str:
    return (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n")


_IRAN_BODY = ('<html><head><title>blocked</title></head><body>'
              '<iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" '
              'style="width: 100%; height: 100%" frameborder="0"></iframe></body></html>')
IRAN_PAGE = ("HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n"
             f"Content-Length: {len(_IRAN_BODY)}\r\nConnection: close\r\n\r\n{_IRAN_BODY}")


class HttpBlockpage(Behaviour):
    name = "http_blockpage"
    techniques = ("http.blockpage",)
    title = "forged HTTP blockpage or redirect for a matching Host"
    queues = frozenset({"http"})
    defaults: ClassVar[dict[str, Any]] = {
        "response": _redirect("http://reestr.mitc.uz/"), "ttl": 64, "ip_id": "random",
        "window": 8192, "df": False,
    }
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "uzbekistan": {"response": _redirect("http://reestr.mitc.uz/")},
        "iran": {"response": IRAN_PAGE},
        "russia": {"response": _redirect("http://blocklist.rkn.gov.ru/")},
    }

    def on_http(self, ctx: CensorContext, packet: Packet, host: str) -> Verdict | None:
        if not self.matches_name(host):
            return None
        spec = {"to": "client", "flags": "FPA", "payload": str(self.options["response"]),
                **{k: self.options[k] for k in ("ttl", "ip_id", "window", "df")}}
        ctx.drop_flow(packet.flow)
        _tcp.inject(ctx, [spec], packet)
        return Verdict(drop=True)

"""`fingerprint report --format html`: one self-contained page to attach to a report.

Inline CSS only (no scripts, fonts, images or links outside the page), so the
file reads the same offline, in a mail client or years later.  Per network:
the platform x technique matrix as a coloured grid (each cell links to its
evidence further down), a timeline of each platform's status when the runs
span more than one run, and per finding the packets it rests on (for an HTTP
finding also the response: status line, telling headers, a body excerpt).
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from fingerprint import __version__
from fingerprint.output.aggregate import (
    Aggregate,
    Cell,
    Network,
    PlatformRow,
    cell_anchor,
    rows_in_order,
)

__all__ = ["STATUS_COLOURS", "render_html"]

STATUS_COLOURS = {"blocked": "#c62828", "accessible": "#2e7d32", "inconclusive": "#f9a825"}
PARTIAL_COLOUR = "#ef6c00"
"""A technique seen in some but not most of the runs that tested the platform."""
CLEAN_COLOUR = "#e8f5e9"
MAX_PACKETS = 12
MAX_REFS = 6

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d1d1f;
background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;padding-top:8px;
border-top:2px solid #ddd}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555;margin:0 0 12px}
table.grid{border-collapse:separate;border-spacing:3px;margin:8px 0}
.grid th{font-weight:600;font-size:12px;padding:4px 6px;text-align:center;color:#333}
.grid th.plat{text-align:left}
.grid td{min-width:92px;height:40px;text-align:center;border-radius:4px;font-size:13px}
.grid td.name{text-align:left;background:#fff;border:1px solid #ddd;padding:0 10px;
font-weight:600;min-width:140px}
.grid td a{color:inherit;text-decoration:none;display:block;padding:4px}
.grid td a:hover{text-decoration:underline}
.grid td .sig{display:block;font-size:11px;opacity:.9}
.on{color:#fff;font-weight:600}
.none{background:#f0f0f0;color:#999}
.clean{background:#e8f5e9;color:#2e7d32}
.legend span{display:inline-block;padding:2px 8px;border-radius:3px;margin-right:6px;
font-size:12px}
table.timeline{border-collapse:separate;border-spacing:2px}
.timeline td.name{padding-right:10px;font-weight:600;white-space:nowrap}
.timeline td.dot{width:26px;height:18px;border-radius:3px}
.timeline th{font-weight:400;font-size:10px;color:#666;writing-mode:vertical-rl;
transform:rotate(180deg);padding:2px}
section.ev{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;
margin:10px 0}
section.ev h4{margin:0 0 6px;font-size:14px}
.facts{margin:0;padding-left:18px;color:#333}
details{margin:6px 0}summary{cursor:pointer;color:#333}
table.pk{border-collapse:collapse;font:12px/1.3 ui-monospace,Menlo,Consolas,monospace;
margin:6px 0}
.pk th,.pk td{border:1px solid #e0e0e0;padding:2px 6px;text-align:left;vertical-align:top}
.pk th{background:#f5f5f5}
.pk tr.injected td{background:#ffebee}.pk tr.genuine td{background:#f1f8e9}
.pk tr.trigger td{background:#e3f2fd}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f0f0f0;padding:0 3px;
border-radius:3px}
.skipped{color:#8a4b00}
.page pre{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;background:#fffde7;
border:1px solid #eee;padding:6px;margin:4px 0;white-space:pre-wrap;max-height:18em;overflow:auto}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _cell_colour(cell: Cell, row: PlatformRow) -> str:
    share = len(cell.runs) / max(1, len(row.runs))
    return STATUS_COLOURS["blocked"] if share >= 0.5 else PARTIAL_COLOUR


def _grid(net: Network) -> str:
    techniques = net.techniques
    head = "".join(f"<th>{_e(t)}</th>" for t in techniques)
    rows = []
    for row in rows_in_order(net):
        status = row.latest_status
        colour = STATUS_COLOURS.get(status, "#9e9e9e")
        counts = row.status_counts()
        summary = status if len(row.runs) <= 1 else \
            f"{status}<span class=sig>{counts.get('blocked', 0)}/{len(row.runs)} runs blocked</span>"
        cells = [f'<td class="name">{_e(row.name)}</td>',
                 f'<td class="on" style="background:{colour}">{summary}</td>']
        for tech in techniques:
            cell = row.cells.get(tech)
            if cell is None:
                css = "clean" if status != "inconclusive" else "none"
                cells.append(f'<td class="{css}" title="not seen">&ndash;</td>')
                continue
            sig = cell.signatures.most_common(1)[0][0] if cell.signatures else "no known censor"
            title = (f"{row.name} {tech}: {len(cell.runs)} of {len(row.runs)} runs; "
                     f"first {cell.first_seen}, last {cell.last_seen}")
            cells.append(
                f'<td class="on" style="background:{_cell_colour(cell, row)}" title="{_e(title)}">'
                f'<a href="#{cell_anchor(net, row.platform, tech)}">{len(cell.runs)}/'
                f'{len(row.runs)}<span class="sig">{_e(sig)}</span></a></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="grid"><tr><th class="plat">platform</th><th>status</th>{head}</tr>'
            + "".join(rows) + "</table>")


def _timeline(net: Network) -> str:
    runs = sorted(net.runs.items(), key=lambda item: item[1])
    if len(runs) < 2:
        return ""
    head = "".join(f"<th>{_e(time)}</th>" for _run, time in runs)
    rows = []
    for row in rows_in_order(net):
        dots = []
        for run, time in runs:
            status = row.runs.get(run)
            if status is None:
                dots.append(f'<td class="dot none" title="{_e(time)}: not tested"></td>')
            else:
                dots.append(f'<td class="dot" style="background:{STATUS_COLOURS.get(status)}" '
                            f'title="{_e(time)}: {_e(status)}"></td>')
        rows.append(f'<tr><td class="name">{_e(row.name)}</td>{"".join(dots)}</tr>')
    return ('<h3>Timeline</h3><table class="timeline"><tr><th></th>' + head + "</tr>"
            + "".join(rows) + "</table>")


def _page(page: dict[str, Any]) -> str:
    """An HTTP finding's response: status line, telling headers, a bounded body excerpt
    (all escaped: the page is the censor's text, never markup of this report)."""
    head = [str(page.get("status_line", ""))]
    head += [f"{name}: {value}" for name, value in page.get("headers", [])]
    length = page.get("body_length", 0)
    if page.get("body_is_binary"):
        body = f"({length} bytes, not text)"
    else:
        body = str(page.get("body_excerpt", ""))
        if page.get("excerpt_is_partial"):
            body += f"\n[... excerpt of {length} bytes]"
    return (f'<div class="page"><p>response to <code>{_e(str(page.get("url", "")))}</code>'
            f"</p><pre>{_e(chr(10).join(head))}</pre><pre>{_e(body)}</pre></div>")


def _packets(packets: list[dict[str, object]]) -> str:
    head = ("<tr><th>frame</th><th>in evidence capture</th><th>role</th><th>time (UTC)</th>"
            "<th>source</th><th>destination</th><th>IP TTL</th><th>IP ID</th><th>TCP / ICMP</th>"
            "<th>DNS answer</th><th>why</th></tr>")
    rows = []
    for p in packets[:MAX_PACKETS]:
        frame = f"{p.get('capture')}#{p.get('frame')}" if p.get("capture") else f"#{p.get('frame')}"
        ts = p.get("time")
        when = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S.%f")[:-3] \
            if isinstance(ts, int | float) else ""
        src = f"{p.get('src')}" + (f":{p.get('sport')}" if p.get("sport") else "")
        dst = f"{p.get('dst')}" + (f":{p.get('dport')}" if p.get("dport") else "")
        if "tcp_flags" in p:
            transport = f"{p.get('tcp_flags') or '-'} win={p.get('window')}"
        elif "icmp_type" in p:
            transport = f"icmp {p.get('icmp_type')}/{p.get('icmp_code')}"
        else:
            transport = ""
        answer = p.get("dns_answer")
        answers = ", ".join(map(str, answer)) if isinstance(answer, list) else ""
        reasons = p.get("reasons")
        why = "; ".join(map(str, reasons)) if isinstance(reasons, list) else ""
        role = str(p.get("role", ""))
        copied = p.get("evidence_frame")
        copy = f"#{copied}" if isinstance(copied, int) else ""
        rows.append(f'<tr class="{_e(role)}"><td>{_e(frame)}</td><td>{_e(copy)}</td>'
                    f"<td>{_e(role)}</td>"
                    f"<td>{_e(when)}</td><td>{_e(src)}</td><td>{_e(dst)}</td>"
                    f"<td>{_e(p.get('ip_ttl', ''))}</td><td>{_e(p.get('ip_id', ''))}</td>"
                    f"<td>{_e(transport)}</td><td>{_e(answers)}</td><td>{_e(why)}</td></tr>")
    more = len(packets) - MAX_PACKETS
    tail = f"<p>{more} more packets in the measurement.</p>" if more > 0 else ""
    return f'<table class="pk">{head}{"".join(rows)}</table>{tail}'


def _evidence(net: Network) -> str:
    parts = []
    for row in rows_in_order(net):
        for tech, cell in sorted(row.cells.items()):
            sigs = ", ".join(f"<code>{_e(s)}</code> ({n})" for s, n in
                             cell.signatures.most_common(8)) or "none known"
            pcaps = sorted({r.pcap for r in cell.evidence if r.pcap})
            facts = [f"seen in {len(cell.runs)} of {len(row.runs)} runs; first "
                     f"{_e(cell.first_seen)}, last {_e(cell.last_seen)}",
                     "targets: " + ", ".join(f"<code>{_e(t)}</code>" for t in sorted(cell.targets)),
                     f"signatures: {sigs}", f"highest confidence {cell.max_confidence:.2f}"]
            if pcaps:
                facts.append("evidence captures: " + ", ".join(
                    f"<code>{_e(p)}</code>" for p in pcaps[:8]) + (" &hellip;" if len(pcaps) > 8
                                                                   else ""))
            refs = []
            for n, ref in enumerate(cell.evidence[:MAX_REFS]):
                notes = "".join(f"<li>{_e(t)}</li>" for t in ref.notes[:6])
                refs.append(
                    f"<details{' open' if n == 0 else ''}><summary><code>{_e(ref.where)}</code> "
                    + (f"<code>{_e(ref.pcap)}</code> " if ref.pcap else "")
                    + f"{_e(ref.time)} &middot; {_e(ref.target)} &middot; confidence "
                    f"{ref.confidence:.2f}</summary><ul class=facts>{notes}</ul>"
                    f"{_page(ref.page) if ref.page else ''}"
                    f"{_packets(ref.packets) if ref.packets else ''}</details>")
            more = cell.evidence_total - min(len(cell.evidence), MAX_REFS)
            if more > 0:
                refs.append(f"<p>{more} more findings in the measurements.</p>")
            parts.append(
                f'<section class="ev" id="{cell_anchor(net, row.platform, tech)}">'
                f"<h4>{_e(row.name)}: {_e(tech)}</h4><ul class=facts>"
                + "".join(f"<li>{f}</li>" for f in facts) + "</ul>" + "".join(refs) + "</section>")
    return "".join(parts)


def _network_title(net: Network) -> str:
    title = f"{_e(net.asn)} &middot; {_e(net.cc)}"
    return title + (f" &middot; lab: {_e(net.lab_scenario)}" if net.lab_scenario else "")


def render_html(agg: Aggregate, title: str = "fingerprint report") -> str:
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    legend = ('<p class="legend">'
              f'<span class="on" style="background:{STATUS_COLOURS["blocked"]}">blocked / seen in '
              f'most runs</span><span class="on" style="background:{PARTIAL_COLOUR}">seen in some '
              f'runs</span><span class="on" style="background:{STATUS_COLOURS["accessible"]}">'
              f'accessible</span><span style="background:{STATUS_COLOURS["inconclusive"]}">'
              f'inconclusive</span><span class="clean">&ndash; not seen</span></p>')
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="meta">{agg.measurements} measurements from {len(agg.files)} file(s): '
            + ", ".join(f"<code>{_e(f)}</code>" for f in agg.files[:20])
            + f". Generated {generated} by fingerprint {_e(__version__)}.</p>"]
    if agg.skipped_total:
        body.append(f'<p class="skipped">{agg.skipped_total} input line(s) skipped: '
                    + "; ".join(_e(str(s)) for s in agg.skipped[:5])
                    + ("&hellip;" if agg.skipped_total > 5 else "") + "</p>")
    body.append(legend)
    for net in agg.ordered_networks():
        span = net.first_time if net.first_time == net.last_time else \
            f"{net.first_time} &ndash; {net.last_time}"
        body.append(f"<h2>{_network_title(net)}</h2>"
                    f'<p class="meta">{len(net.runs)} run(s), {span} UTC, '
                    f"{net.measurements} measurements</p>")
        body.append(_grid(net))
        body.append(_timeline(net))
    # Evidence after every network's matrix, so the first screen compares networks.
    evidence = [(net, _evidence(net)) for net in agg.ordered_networks()]
    if any(text for _net, text in evidence):
        body.append("<h2>Evidence</h2>")
    for net, text in evidence:
        if text:
            body.append(f"<h3>{_network_title(net)}</h3>{text}")
    if not agg.networks:
        body.append("<p>No measurements.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(b for b in body if b) + "</body></html>\n")

"""`fingerprint report` as a terminal table or Markdown."""

from __future__ import annotations

from fingerprint.output.aggregate import (
    Aggregate,
    Cell,
    Network,
    PlatformRow,
    cell_anchor,
    packet_line,
    rows_in_order,
)

__all__ = ["render_markdown", "render_table"]

MAX_REFS_SHOWN = 5


def _ratio(cell: Cell | None, row: PlatformRow) -> str:
    if cell is None:
        return "-"
    return f"{len(cell.runs)}/{len(row.runs)}"


def _status(row: PlatformRow) -> str:
    counts = row.status_counts()
    blocked = counts.get("blocked", 0)
    if len(row.runs) > 1:
        return f"{row.latest_status} ({blocked}/{len(row.runs)} blocked)"
    return row.latest_status


def _span(net: Network) -> str:
    if net.first_time == net.last_time:
        return net.first_time
    return f"{net.first_time} .. {net.last_time}"


def _signatures(cell: Cell, limit: int = 3) -> str:
    return ", ".join(f"{s} ({n})" for s, n in cell.signatures.most_common(limit)) or "none known"


def _refs(cell: Cell) -> str:
    shown = cell.evidence[:MAX_REFS_SHOWN]
    where = list(dict.fromkeys(r.where for r in shown))  # a line with two findings: once
    more = cell.evidence_total - len(shown)
    return ", ".join(where) + (f" and {more} more" if more > 0 else "")


def _pcaps(cell: Cell) -> list[str]:
    out: list[str] = []
    for ref in cell.evidence:
        if ref.pcap:
            frames = ",".join(str(p["evidence_frame"]) for p in ref.packets
                              if p.get("evidence_frame"))
            item = f"{ref.pcap}#{frames}" if frames else ref.pcap
            if item not in out:
                out.append(item)
    return out


def render_table(agg: Aggregate) -> str:
    lines: list[str] = []
    note = 0
    for net in agg.ordered_networks():
        if lines:
            lines.append("")
        lines.append(f"{net.key}: {len(net.runs)} run(s), {_span(net)}, "
                     f"{net.measurements} measurements")
        techniques = net.techniques
        header = ["PLATFORM", "STATUS", *techniques]
        table: list[list[str]] = [header]
        notes: list[str] = []
        for row in rows_in_order(net):
            cells = []
            for tech in techniques:
                cell = row.cells.get(tech)
                text = _ratio(cell, row)
                if cell is not None:
                    note += 1
                    text += f" [{note}]"
                    notes.append(f"[{note}] {row.name} {tech}: seen in {len(cell.runs)} of "
                                 f"{len(row.runs)} runs, first {cell.first_seen}, last "
                                 f"{cell.last_seen}; signatures: {_signatures(cell)}; "
                                 f"evidence: {_refs(cell)}"
                                 + ("; pcap: " + ", ".join(_pcaps(cell)[:3]) if _pcaps(cell)
                                    else ""))
                cells.append(text)
            table.append([row.name, _status(row), *cells])
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines.extend("  ".join(r[i].ljust(widths[i]) for i in range(len(header))).rstrip()
                     for r in table)
        if notes:
            lines.append("")
            lines.extend(notes)
    if not agg.networks:
        lines.append("(no measurements)")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(agg: Aggregate, title: str = "fingerprint report") -> str:
    lines = [f"# {_md(title)}", "",
             f"{agg.measurements} measurements from {len(agg.files)} file(s)"
             + (f"; {agg.skipped_total} line(s) skipped" if agg.skipped_total else "") + "."]
    for net in agg.ordered_networks():
        techniques = net.techniques
        lab = f", lab: {_md(net.lab_scenario)}" if net.lab_scenario else ""
        lines += ["", f"## {net.asn} ({net.cc}{lab})", "",
                  f"{len(net.runs)} run(s), {_span(net)}, {net.measurements} measurements.", "",
                  "| Platform | Status | " + " | ".join(f"`{t}`" for t in techniques) + " |"
                  if techniques else "| Platform | Status |",
                  "|---|---|" + "---|" * len(techniques)]
        for row in rows_in_order(net):
            cells = []
            for tech in techniques:
                cell = row.cells.get(tech)
                if cell is None:
                    cells.append("-")
                    continue
                sig = f" {_md(cell.signatures.most_common(1)[0][0])}" if cell.signatures else ""
                cells.append(f"[**{_ratio(cell, row)}**](#{cell_anchor(net, row.platform, tech)})"
                             + sig)
            lines.append(f"| {_md(row.name)} | {_md(_status(row))} | " + " | ".join(cells)
                         + (" |" if cells else "|"))
        timeline_rows = [r for r in rows_in_order(net) if len(r.runs) > 1]
        if timeline_rows:
            lines += ["", "### Timeline", ""]
            for row in timeline_rows:
                lines.append(f"- {_md(row.name)}: " + ", ".join(
                    f"{time} {status}" for time, _run, status in row.timeline()))
        evidence = [(row, tech, cell) for row in rows_in_order(net)
                    for tech, cell in sorted(row.cells.items())]
        if evidence:
            lines += ["", "### Evidence"]
        for row, tech, cell in evidence:
            lines += ["", f'<a id="{cell_anchor(net, row.platform, tech)}"></a>', "",
                      f"#### {_md(row.name)}: `{tech}`", "",
                      f"- seen in {len(cell.runs)} of {len(row.runs)} runs; first "
                      f"{cell.first_seen}, last {cell.last_seen}",
                      f"- targets: {', '.join(sorted(cell.targets))}",
                      f"- signatures: {_md(_signatures(cell, 10))}",
                      f"- highest confidence: {cell.max_confidence:.2f}"]
            for pcap in _pcaps(cell)[:5]:
                lines.append(f"- evidence capture: `{pcap}`")
            for ref in cell.evidence[:MAX_REFS_SHOWN]:
                lines.append(f"- `{ref.where}` ({ref.time}, {_md(ref.target)}, confidence "
                             f"{ref.confidence:.2f})")
                for text in ref.notes[:4]:
                    lines.append(f"  - {_md(text)}")
                if ref.packets:
                    lines.append("")
                    lines.append("    ```")
                    lines.extend("    " + packet_line(p) for p in ref.packets[:8])
                    lines.append("    ```")
    return "\n".join(lines) + "\n"

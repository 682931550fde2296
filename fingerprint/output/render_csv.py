"""`fingerprint report --format csv`: one row per network x platform x technique."""

from __future__ import annotations

import csv
import io

from fingerprint.output.aggregate import Aggregate, rows_in_order

__all__ = ["CSV_COLUMNS", "render_csv"]

CSV_COLUMNS = ["probe_asn", "probe_cc", "platform", "platform_name", "latest_status",
               "runs_tested", "runs_blocked", "technique", "runs_seen", "first_seen", "last_seen",
               "targets", "signatures", "max_confidence", "evidence", "pcap", "lab_scenario"]


def render_csv(agg: Aggregate) -> str:
    """A platform with no technique seen still gets one row (technique empty).  The
    evidence column names each measurement line once, however many findings it holds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for net in agg.ordered_networks():
        for row in rows_in_order(net):
            base = [net.asn, net.cc, row.platform, row.name, row.latest_status, len(row.runs),
                    row.status_counts().get("blocked", 0)]
            if not row.cells:
                writer.writerow([*base, "", 0, "", "", ";".join(sorted(row.targets)), "", "", "",
                                 "", net.lab_scenario])
                continue
            for tech, cell in sorted(row.cells.items()):
                pcaps = sorted({r.pcap for r in cell.evidence if r.pcap})
                writer.writerow([*base, tech, len(cell.runs), cell.first_seen, cell.last_seen,
                                 ";".join(sorted(cell.targets)),
                                 ";".join(s for s, _n in cell.signatures.most_common()),
                                 f"{cell.max_confidence:.2f}",
                                 ";".join(dict.fromkeys(r.where for r in cell.evidence)), ";".join(pcaps),
                                 net.lab_scenario])
    return out.getvalue()
